// The settings of each aggregation rule, read from the server's task schema (`GET
// /api/schema/task`): every property of a rule but `rule` becomes a number field with its label,
// its description as help, its default, its bounds and whether it is whole or may be left empty
// ("automatic"). Nothing here names a rule, so a rule or a setting the server adds appears in the
// form by itself; `SETTING_LABELS` only gives plainer names to settings it knows. Secure
// aggregation's settings (`TrainingInfo.secure_aggregation`) are read the same way.

/** One end of a setting's range, as the schema says it (`minimum` or `exclusiveMinimum`, …). */
export interface Bound {
  readonly value: number;
  readonly exclusive: boolean;
}

/** One setting of a rule, as a form field. */
export interface SettingField {
  readonly key: string;
  readonly label: string;
  /** The schema's description as one plain sentence ("" when it has none). */
  readonly help: string;
  /** A whole number (`"type": "integer"`). */
  readonly integer: boolean;
  /** May be left empty, meaning "chosen automatically" (`int | None`). */
  readonly nullable: boolean;
  /** What the form starts with; null: empty. */
  readonly default: number | null;
  readonly min: Bound | null;
  readonly max: Bound | null;
}

/** What the schema says of one rule: its own explanation (docstring) and its settings. */
export interface RuleSchema {
  readonly about: string;
  readonly settings: readonly SettingField[];
}

/** Plainer names for settings the page knows; any other is named from the schema's title. */
const SETTING_LABELS: Record<string, string> = {
  max_share: "Largest share of one person",
  beta: "Share left out at each end",
  f: "Dishonest participants to resist",
  m: "Updates kept",
  bucket_size: "Group size",
  tau: "Largest pull of one update",
  iterations: "Passes each round",
  momentum: "Memory of earlier updates",
  min_cosine: "Agreement needed to count",
  clip: "Clip range",
  weight_cap: "Weight cap (examples)",
  threshold: "Participants needed to unmask",
};

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** "``beta`` fraction of\nextremes" → "beta fraction of extremes" (a docstring read as words). */
export function plainDoc(text: string): string {
  return text.replace(/``?([^`]+)``?/g, "$1").replace(/\s+/g, " ").trim();
}

/** A description as a sentence: capital first letter, full stop at the end. */
function sentence(text: string): string {
  const t = plainDoc(text);
  if (!t) return "";
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}${/[.!?)]$/.test(t) ? "" : "."}`;
}

/** "bucket_size" → "Bucket size", for a setting without a title. */
function named(key: string): string {
  const words = key.replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function bound(schema: Json, inclusive: string, exclusive: string): Bound | null {
  if (finite(schema[exclusive])) return { value: schema[exclusive], exclusive: true };
  if (finite(schema[inclusive])) return { value: schema[inclusive], exclusive: false };
  return null;
}

/** A number field from one property of a rule, or null when the setting is not a number. */
export function settingField(key: string, prop: unknown): SettingField | null {
  if (!isObject(prop)) return null;
  const branches = Array.isArray(prop.anyOf) ? prop.anyOf.filter(isObject) : [prop];
  const numeric = branches.find((b) => b.type === "number" || b.type === "integer");
  if (!numeric) return null;
  const nullable = branches.some((b) => b.type === "null");
  const given = prop.default;
  const min = bound(numeric, "minimum", "exclusiveMinimum") ?? bound(prop, "minimum", "exclusiveMinimum");
  const max = bound(numeric, "maximum", "exclusiveMaximum") ?? bound(prop, "maximum", "exclusiveMaximum");
  const title = typeof prop.title === "string" && prop.title.trim() ? prop.title.trim() : named(key);
  return {
    key,
    label: SETTING_LABELS[key] ?? title,
    help: typeof prop.description === "string" ? sentence(prop.description) : "",
    integer: numeric.type === "integer",
    nullable,
    default: finite(given) ? given : null,
    min,
    max,
  };
}

/** `#/$defs/Name` → the definition, or null. */
function resolve(schema: Json, ref: unknown): Json | null {
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) return null;
  const defs = schema.$defs;
  const def = isObject(defs) ? defs[ref.slice("#/$defs/".length)] : undefined;
  return isObject(def) ? def : null;
}

/** One rule's definition as its explanation and number fields. */
function ruleSchema(def: Json): RuleSchema {
  const props = isObject(def.properties) ? def.properties : {};
  const settings = Object.entries(props)
    .filter(([key]) => key !== "rule")
    .map(([key, prop]) => settingField(key, prop))
    .filter((f): f is SettingField => f !== null);
  return { about: typeof def.description === "string" ? plainDoc(def.description) : "", settings };
}

/**
 * Every rule of a task JSON Schema with its settings: the rules of `TrainingInfo.aggregation`,
 * a discriminated union (its `discriminator.mapping`, or its `oneOf` members' `rule` const).
 * A rule whose definition is missing has no settings; a schema without rules gives `{}`.
 */
export function rulesFromSchema(schema: unknown): Record<string, RuleSchema> {
  if (!isObject(schema)) return {};
  const defs = isObject(schema.$defs) ? schema.$defs : {};
  const training = defs.TrainingInfo;
  const props = isObject(training) && isObject(training.properties) ? training.properties : {};
  const union = props.aggregation;
  if (!isObject(union)) return {};
  const rules: Record<string, RuleSchema> = {};
  const mapping = isObject(union.discriminator) ? union.discriminator.mapping : undefined;
  if (isObject(mapping)) {
    for (const [rule, ref] of Object.entries(mapping)) {
      const def = resolve(schema, ref);
      rules[rule] = def ? ruleSchema(def) : { about: "", settings: [] };
    }
    return rules;
  }
  for (const member of Array.isArray(union.oneOf) ? union.oneOf : []) {
    const def = isObject(member) ? (resolve(schema, member.$ref) ?? member) : null;
    const ruleProp = def && isObject(def.properties) ? def.properties.rule : undefined;
    const rule = isObject(ruleProp) ? ruleProp.const : undefined;
    if (def && typeof rule === "string") rules[rule] = ruleSchema(def);
  }
  return rules;
}

/**
 * Secure aggregation's explanation and settings from a task JSON Schema
 * (`TrainingInfo.secure_aggregation`, an optional object); null when the schema does not offer it.
 */
export function secureFromSchema(schema: unknown): RuleSchema | null {
  if (!isObject(schema)) return null;
  const defs = isObject(schema.$defs) ? schema.$defs : {};
  const training = defs.TrainingInfo;
  const props = isObject(training) && isObject(training.properties) ? training.properties : {};
  const prop = props.secure_aggregation;
  if (!isObject(prop)) return null;
  const branches = Array.isArray(prop.anyOf) ? prop.anyOf.filter(isObject) : [prop];
  for (const branch of branches) {
    const def = resolve(schema, branch.$ref) ?? (isObject(branch.properties) ? branch : null);
    if (def) return ruleSchema(def);
  }
  return { about: typeof prop.description === "string" ? plainDoc(prop.description) : "", settings: [] };
}

// -- checking a value -------------------------------------------------------------------------

function text(n: number): string {
  return String(Number(n.toPrecision(12)));
}

/** The values a setting takes, in words: "between 0 and 1", "a whole number of at least 1", … */
export function rangeText(field: SettingField): string {
  let { min, max } = field;
  if (field.integer) {
    // a whole number above 0 is a whole number of at least 1
    if (min) min = { value: min.exclusive ? Math.floor(min.value) + 1 : Math.ceil(min.value), exclusive: false };
    if (max) max = { value: max.exclusive ? Math.ceil(max.value) - 1 : Math.floor(max.value), exclusive: false };
    if (min && max) return `a whole number from ${text(min.value)} to ${text(max.value)}`;
    if (min) return `a whole number of at least ${text(min.value)}`;
    if (max) return `a whole number of at most ${text(max.value)}`;
    return "a whole number";
  }
  if (min && max && !min.exclusive && !max.exclusive) return `between ${text(min.value)} and ${text(max.value)}`;
  const parts = [
    min ? `${min.exclusive ? "above" : "at least"} ${text(min.value)}` : "",
    max ? `${max.exclusive ? "below" : "at most"} ${text(max.value)}` : "",
  ].filter(Boolean);
  return parts.length ? parts.join(" and ") : "a number";
}

/** What a setting must be, as the form says it under the field. */
export function settingMessage(field: SettingField): string {
  return `${field.label} must be ${rangeText(field)}${field.nullable ? ", or left empty (automatic)" : ""}.`;
}

/** A value typed in a setting's field: the number to send (null: automatic), or what is wrong. */
export function checkSetting(field: SettingField, raw: number | string): { value: number | null } | { error: string } {
  const blank = typeof raw === "string" && raw.trim() === "";
  if (blank) return field.nullable ? { value: null } : { error: settingMessage(field) };
  const v = typeof raw === "number" ? raw : Number(raw);
  const { min, max } = field;
  const ok =
    Number.isFinite(v) &&
    (!field.integer || Number.isInteger(v)) &&
    (!min || (min.exclusive ? v > min.value : v >= min.value)) &&
    (!max || (max.exclusive ? v < max.value : v <= max.value));
  return ok ? { value: v } : { error: settingMessage(field) };
}
