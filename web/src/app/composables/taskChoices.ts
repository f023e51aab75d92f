// How a task can be trained (schemes) and how updates can be combined (aggregation rules), in
// plain words. The lists are read from the server's task schema (`GET /api/schema/task`), so a
// rule the server adds appears in the form without a change here, with its settings
// (`./ruleSettings`) and, until this page has plainer words for it, the schema's explanation.
import { shallowRef } from "vue";
import { AGGREGATIONS } from "../../core/aggregationTask";
import { serverUrl } from "./api";
import { type RuleSchema, plainDoc, rulesFromSchema, secureFromSchema } from "./ruleSettings";

/** One option of the form: the value the task document holds, a name and one plain sentence. */
export interface Choice {
  readonly value: string;
  readonly label: string;
  readonly about: string;
  /** False for a way of training nobody can use yet (still offered, with its note). */
  readonly ready: boolean;
}

type Words = Omit<Choice, "value" | "ready"> & { ready?: boolean };

const SCHEME_WORDS: Record<string, Words> = {
  federated: {
    label: "Together, through the server",
    about: "Each person trains on their own data; the server combines everyone's updates into one shared model, round after round.",
  },
  local: {
    label: "Alone",
    about: "Each person trains their own model on their own data; nothing is shared.",
  },
  decentralized: {
    label: "Together, directly between participants",
    about: "Participants send their updates directly to each other and each combines them; the server only introduces them and keeps no model after the initial one. Browsers can take part when updates are averaged; with other rules, people take part with disco train.",
  },
};

const AGGREGATION_WORDS: Record<string, Words> = {
  mean: {
    label: "Average",
    about: "The average of everyone's updates, weighted by how many examples each person has, with a limit so that no one can take the model over (by default, no one counts for more than half of a round). Best when every participant is trusted.",
  },
  median: {
    label: "Median",
    about: "For each of the model's numbers (its weights), the middle value of everyone's updates: a few participants sending bad updates cannot pull it away. Everyone counts equally, whatever their number of examples.",
  },
  trimmed_mean: {
    label: "Trimmed average",
    about: "For each of the model's numbers, a share of the highest and of the lowest values is left out (by default a tenth at each end) and the rest averaged, everyone counting equally: it resists a few bad updates. With few participants nothing may be left out.",
  },
  krum: {
    label: "Krum",
    about: "The one update closest to most of the others is used, alone: up to a set number of dishonest participants cannot move the model, whatever they send. It needs enough honest participants, and uses only one person's work each round.",
  },
  multi_krum: {
    label: "Multi-Krum",
    about: "The updates closest to most of the others are kept and averaged: like Krum, it resists up to a set number of dishonest participants, but uses the work of several people each round.",
  },
  centered_clipping: {
    label: "Centred clipping",
    about: "Starts from the last round's combined update and moves towards each person's update, but limits how far any one update can pull it: a few bad updates cannot drag the model far, and honest ones still count.",
  },
  cosine_trust: {
    label: "Trust by direction",
    about: "The updates that point the way the model has been moving over the last rounds are averaged; updates pointing the other way are left out, however many examples their senders claim, and no one counts for more examples than the middle participant. If fewer than half point that way, the round takes the middle of all updates. Works when most participants' data agree: people whose data differ a lot from everyone else's may be left out.",
  },
};

/** Secure aggregation in plain words, for someone creating their first task. */
export const SECURE_WORDS = {
  label: "Secure aggregation: only the total is seen",
  about:
    "Updates are masked so that whoever adds them up — the server, or each participant when they train directly with each other — learns only the total, never one person's update. Needs at least 3 participants per round and the 'average' rule.",
} as const;

/** What the server's task schema allows, in the server's order. */
export interface TrainingOptions {
  schemes: string[];
  aggregations: string[];
  /** Each rule's explanation and settings, from the schema ({} when it cannot be read). */
  rules: Record<string, RuleSchema>;
  /**
   * Secure aggregation's explanation and settings, from the schema (without settings when the
   * schema does not describe them: the server's defaults).
   */
  secure: RuleSchema;
}

/**
 * What this page knows when the server's schema cannot be read: the rules by name only (a task
 * then gets each rule's defaults from the server).
 */
export const KNOWN_OPTIONS: TrainingOptions = {
  schemes: ["federated", "local", "decentralized"],
  aggregations: [...AGGREGATIONS],
  rules: {},
  secure: { about: "", settings: [] },
};

/** A value this page has no words for: named from its id, said plainly that it is not described. */
function unknown(value: string, what: string): Words {
  const name = value.replace(/[_-]+/g, " ");
  return {
    label: name.charAt(0).toUpperCase() + name.slice(1),
    about: `A ${what} this server offers; this page has no plain description of it yet.`,
  };
}

function choice(value: string, words: Words | undefined, what: string): Choice {
  const w = words ?? unknown(value, what);
  return { value, label: w.label, about: w.about, ready: w.ready ?? true };
}

/** The schemes as form options: the ones people can use first, in the server's order. */
export function schemeChoices(values: readonly string[]): Choice[] {
  const all = values.map((v) => choice(v, SCHEME_WORDS[v], "way of training"));
  return [...all.filter((c) => c.ready), ...all.filter((c) => !c.ready)];
}

/**
 * The aggregation rules as form options, in the server's order; a rule without words of this
 * page's is explained by the schema's own description of it (`rules`), when there is one.
 */
export function aggregationChoices(values: readonly string[], rules: Record<string, RuleSchema> = {}): Choice[] {
  return values.map((v) => {
    const about = plainDoc(rules[v]?.about ?? "");
    const words = AGGREGATION_WORDS[v] ?? (about ? { ...unknown(v, ""), about: sentence(about) } : undefined);
    return choice(v, words, "way of combining updates");
  });
}

/** The name a rule goes by in this page ("Trimmed average"), its id's words for one it lacks. */
export function ruleLabel(rule: string): string {
  return (AGGREGATION_WORDS[rule] ?? unknown(rule, "")).label;
}

function sentence(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? "" : "."}`;
}

/**
 * The values a TrainingInfo field takes: its `enum`, or the tags of a discriminated union in the
 * order of its `oneOf` (the server's order: pydantic sorts the mapping's tags).
 */
function enumOf(schema: unknown, field: string): string[] | null {
  const defs = (schema as { $defs?: Record<string, { properties?: Record<string, unknown> }> } | null)?.$defs;
  const prop = defs?.TrainingInfo?.properties?.[field] as
    | { enum?: unknown; oneOf?: unknown; discriminator?: { mapping?: Record<string, unknown> } }
    | undefined;
  const mapping = prop?.discriminator?.mapping;
  const refs = Array.isArray(prop?.oneOf) ? prop.oneOf.map((m) => (m as { $ref?: unknown } | null)?.$ref) : [];
  const place = (tag: string): number => {
    const i = refs.indexOf(mapping?.[tag]);
    return i < 0 ? refs.length : i;
  };
  const tags = mapping ? Object.keys(mapping).sort((a, b) => place(a) - place(b)) : undefined;
  const values = prop?.enum ?? tags;
  return Array.isArray(values) && values.length && values.every((v) => typeof v === "string") ? values : null;
}

/** The schemes and aggregation rules of a task JSON Schema; `KNOWN_OPTIONS` for what it lacks. */
export function optionsFromSchema(schema: unknown): TrainingOptions {
  return {
    schemes: enumOf(schema, "scheme") ?? KNOWN_OPTIONS.schemes,
    aggregations: enumOf(schema, "aggregation") ?? KNOWN_OPTIONS.aggregations,
    rules: rulesFromSchema(schema),
    secure: secureFromSchema(schema) ?? KNOWN_OPTIONS.secure,
  };
}

const options = shallowRef<TrainingOptions>(KNOWN_OPTIONS);
let asked: Promise<void> | null = null;

/** The server's training options, read once per page load (the known ones until it answers). */
export function useTrainingOptions(): typeof options {
  asked ??= (async () => {
    try {
      const res = await fetch(`${serverUrl()}/api/schema/task`);
      if (res.ok) options.value = optionsFromSchema(await res.json());
    } catch {
      // the known options stay; publishing still checks against the server
    }
  })();
  return options;
}
