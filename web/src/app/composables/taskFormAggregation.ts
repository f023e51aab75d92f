// The task form's aggregation rule and secure aggregation: their settings prefilled with the
// server's defaults, checked against the schema's bounds into the task document, and what secure
// aggregation refuses in the other settings shown on the fields it concerns.
import type { AggregationConfig } from "../../core/aggregationTask";
import {
  SECURE_AGGREGATION_DEFAULTS,
  type Scheme,
  type SecureAggregationConfig,
  secureAggregationProblems,
} from "../../core/task";
import { type RuleSchema, type SettingField, checkSetting } from "./ruleSettings";
import type { FieldErrors, TaskForm } from "./taskForm";
import { serverErrors } from "./taskFormErrors";

/** Prefill the settings of `rule` not typed yet with the schema's defaults (none: empty). */
export function fillRuleDefaults(f: TaskForm, rule: string, fields: readonly SettingField[]): void {
  const typed = (f.aggregation_settings[rule] ??= {});
  for (const field of fields) typed[field.key] ??= field.default ?? "";
}

/** Prefill secure aggregation's settings not typed yet with the schema's defaults (none: empty). */
export function fillSecureDefaults(f: TaskForm, fields: readonly SettingField[]): void {
  for (const field of fields) f.secure_settings[field.key] ??= field.default ?? "";
}

/**
 * Secure aggregation's settings as typed (an empty threshold is sent as null: automatic),
 * checked against the schema's bounds; problems go into `errors` as
 * `secure_aggregation.<setting>`. Null when it is off, or in a local task (nothing is combined:
 * the choice is not shown).
 */
export function secureDoc(f: TaskForm, fields: readonly SettingField[], errors: FieldErrors): Record<string, unknown> | null {
  if (!f.secure_aggregation || f.scheme === "local") return null;
  return typedSettings(fields, f.secure_settings, "secure_aggregation", errors);
}

/**
 * The settings typed in `values` (an empty nullable setting as null: automatic), each checked
 * against its schema bounds; a problem goes into `errors` as `<prefix>.<setting>`. A setting never
 * shown is left out (the server's default).
 */
function typedSettings(
  fields: readonly SettingField[],
  values: Record<string, number | string>,
  prefix: string,
  errors: FieldErrors,
): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.key];
    if (raw === undefined) continue;
    const checked = checkSetting(field, raw);
    if ("error" in checked) errors[`${prefix}.${field.key}`] = checked.error;
    else doc[field.key] = checked.value;
  }
  return doc;
}

/**
 * What secure aggregation refuses in these settings (`secureAggregationProblems`, Python's own
 * words), each on the field it concerns as the server's refusal would be; settings already wrong
 * on their own are left to their messages.
 */
export function secureConflicts(
  f: TaskForm,
  secure: Record<string, unknown> | null,
  aggregation: Record<string, unknown>,
  minParticipants: number,
  errors: FieldErrors,
): void {
  const own = ["min_participants", "secure_aggregation.clip", "secure_aggregation.weight_cap", "secure_aggregation.threshold"];
  if (!secure || own.some((k) => errors[k])) return;
  const problems = secureAggregationProblems({
    scheme: f.scheme as Scheme,
    aggregation: aggregation as AggregationConfig,
    min_participants: minParticipants,
    secure_aggregation: { ...SECURE_AGGREGATION_DEFAULTS, ...secure } as SecureAggregationConfig,
  });
  const { errors: found } = serverErrors(problems.map((message) => ({ field: "training", message })));
  for (const [key, message] of Object.entries(found)) errors[key] ??= message;
}

/**
 * The chosen rule with its settings, `{"rule": "trimmed_mean", "beta": 0.2}` (an empty nullable
 * setting is sent as null: automatic), checked against the schema's bounds; problems go into
 * `errors` as `aggregation.<setting>`.
 */
export function aggregationDoc(f: TaskForm, rules: Record<string, RuleSchema>, errors: FieldErrors): Record<string, unknown> {
  const doc: Record<string, unknown> = { rule: f.aggregation };
  if (f.scheme === "local") return doc; // nothing is combined: the settings are not shown
  const typed = f.aggregation_settings[f.aggregation] ?? {};
  return { ...doc, ...typedSettings(rules[f.aggregation]?.settings ?? [], typed, "aggregation", errors) };
}
