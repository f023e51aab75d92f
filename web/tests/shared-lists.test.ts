/**
 * What the web app mirrors of the Python code equals what the Python code says:
 * tests/vectors/shared_lists.json is generated from it by tests/vectors/lists.py (and
 * tests/test_shared_lists.py fails until it is regenerated after a Python change), so a list that
 * drifts on either side fails here.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ARCHITECTURES, type ArchitectureId, buildArchitecture } from "../src/app/composables/architectures";
import { settingField } from "../src/app/composables/ruleSettings";
import { KNOWN_OPTIONS } from "../src/app/composables/taskChoices";
import { TASK_ID as FORM_TASK_ID } from "../src/app/composables/taskForm";
import { AGGREGATION_DEFAULTS, AGGREGATIONS, aggregationOf } from "../src/core/aggregationTask";
import { LAYER_SETTINGS, MODEL_FORMAT, checkModel } from "../src/core/models/validate";
import {
  CAPABILITIES,
  DECENTRALIZED_TYPES,
  ERROR_CODES,
  MAX_NUM_SAMPLES,
  MAX_SAFE_INT,
  MESSAGE_TYPES,
  METRIC_NAMES,
  PEER_TYPES,
  PROTOCOL_VERSION,
  SESSION_STATES,
} from "../src/core/protocol";
import { secureAggregationOf } from "../src/core/secureTask";
import {
  ACTIVATIONS,
  CHANNELS,
  COLUMN_DEFAULTS,
  DATA_TYPES,
  DISPLAY_DEFAULTS,
  LAYER_TYPES,
  LOSSES,
  type ModelSpec,
  OPTIMIZERS,
  PADDINGS,
  SCHEMES,
  SECURE_AGGREGATION_BOUNDS,
  SECURE_AGGREGATION_DEFAULTS,
  SECURE_MAX_PEERS,
  SECURE_MIN_PARTICIPANTS,
  TASK_ID_PATTERN,
  TRAINING_DEFAULTS,
  layerNames,
  parseTask,
} from "../src/core/task";
import { MAX_SEQUENCE_LENGTH, MAX_VOCAB_SIZE, MIN_VOCAB_SIZE, TOKENIZER_DIGEST_PATTERN } from "../src/core/textTask";

type Json = Record<string, unknown>;

interface WebCase {
  task?: string;
  architecture: ArchitectureId;
  input: { height: number; width: number; channels: number; columns: number };
  classes: number;
  model: ModelSpec;
}

interface Shared {
  task_id: { pattern: string; accepted: string[]; refused: string[] };
  task: {
    data_types: string[];
    schemes: string[];
    aggregations: string[];
    aggregation_defaults: Record<string, Json>;
    optimizers: string[];
    channels: number[];
    training_required: string[];
    training_defaults: Json;
    column_defaults: Json;
    display_defaults: Json;
    secure_aggregation: { defaults: Json; bounds: Record<string, Json>; min_participants: number; max_peers: number };
    text: {
      max_sequence_length: number;
      vocab_size: [number, number];
      tokenizer_digest_pattern: string;
      tasks: { name: string; task: Json; accepted: boolean }[];
    };
  };
  model: {
    format: string;
    activations: string[];
    losses: string[];
    paddings: string[];
    layer_types: string[];
    layer_settings: Record<string, { required: string[]; defaults: Json }>;
  };
  protocol: {
    version: number;
    max_safe_int: number;
    max_num_samples: number;
    message_types: string[];
    capabilities: string[];
    decentralized_types: string[];
    peer_types: string[];
    client_kinds: string[];
    error_codes: string[];
    session_states: string[];
    metric_names: string[];
  };
  catalog: { id: string; title: string; data_type: string; scheme: string; architecture: string | null }[];
  architectures: { python: string[]; web: WebCase[] };
}

const shared = JSON.parse(
  readFileSync(new URL("../../tests/vectors/shared_lists.json", import.meta.url), "utf8"),
) as Shared;

/** A task document Python accepts, with `id` as its id. */
function taskWithId(id: string): Json {
  return {
    id,
    display: { title: "t" },
    training: { data_type: "image", image_height: 28, image_width: 28, labels: ["a", "b"] },
    model: { input_shape: [28, 28, 1], layers: [{ type: "flatten" }, { type: "dense", units: 2, activation: "softmax" }], loss: "categorical_crossentropy" },
  };
}

/** A model document as Python completes it: each layer named, unset settings at their defaults. */
function completed(doc: ModelSpec): ModelSpec {
  const names = layerNames(doc);
  const settings = shared.model.layer_settings;
  return {
    ...doc,
    layers: doc.layers.map((layer, i) => ({ ...settings[layer.type]?.defaults, ...layer, name: names[i] })),
  } as ModelSpec;
}

describe("task ids", () => {
  it("use Python's pattern, in the task parser and in the task form", () => {
    expect(TASK_ID_PATTERN.source).toBe(shared.task_id.pattern);
    expect(TASK_ID_PATTERN.flags).toBe("");
    expect(FORM_TASK_ID.source).toBe(shared.task_id.pattern);
  });

  it.each(shared.task_id.accepted.map((id) => [JSON.stringify(id), id]))("accepts %s, as Python does", (_, id) => {
    expect(TASK_ID_PATTERN.test(id)).toBe(true);
    expect(parseTask(taskWithId(id)).id).toBe(id);
  });

  it.each(shared.task_id.refused.map((id) => [JSON.stringify(id), id]))("refuses %s, as Python does", (_, id) => {
    expect(TASK_ID_PATTERN.test(id)).toBe(false);
    expect(FORM_TASK_ID.test(id)).toBe(false);
    expect(() => parseTask(taskWithId(id))).toThrow(/bad task id/);
  });
});

describe("the task's choices and defaults", () => {
  it("lists the same data types, schemes, aggregation rules, optimizers and channels", () => {
    expect([...DATA_TYPES]).toEqual(shared.task.data_types);
    expect([...SCHEMES]).toEqual(shared.task.schemes);
    expect([...AGGREGATIONS]).toEqual(shared.task.aggregations);
    expect([...OPTIMIZERS]).toEqual(shared.task.optimizers);
    expect([...CHANNELS]).toEqual(shared.task.channels);
  });

  it("fills in each aggregation rule's settings as Python does", () => {
    expect(AGGREGATION_DEFAULTS).toEqual(shared.task.aggregation_defaults);
    expect(Object.keys(AGGREGATION_DEFAULTS)).toEqual(shared.task.aggregations);
    for (const [rule, defaults] of Object.entries(shared.task.aggregation_defaults)) {
      expect(aggregationOf(rule)).toEqual(defaults);
      expect(aggregationOf({ rule })).toEqual(defaults);
    }
  });

  it("offers the same schemes and rules in the form when the server's schema cannot be read", () => {
    expect([...KNOWN_OPTIONS.schemes].sort()).toEqual([...shared.task.schemes].sort());
    expect([...KNOWN_OPTIONS.aggregations].sort()).toEqual([...shared.task.aggregations].sort());
  });

  it("fills in every training default Python has, and only those", () => {
    expect(TRAINING_DEFAULTS).toEqual(shared.task.training_defaults);
    expect(Object.keys(TRAINING_DEFAULTS).sort()).toEqual(Object.keys(shared.task.training_defaults).sort());
    expect(shared.task.training_required).toEqual(["data_type"]);
  });

  it("fills in the display and column defaults Python has", () => {
    expect(DISPLAY_DEFAULTS).toEqual(shared.task.display_defaults);
    expect(COLUMN_DEFAULTS).toEqual(shared.task.column_defaults);
    const task = parseTask({
      id: "t",
      display: { title: "t" },
      training: { data_type: "tabular", input_columns: [{ name: "a" }], output_column: "y" },
      model: { input_shape: [1], layers: [{ type: "dense", units: 1, activation: "sigmoid" }], loss: "binary_crossentropy" },
    });
    expect(task.display).toEqual({ title: "t", ...shared.task.display_defaults });
    expect(task.training.input_columns).toEqual([{ name: "a", ...shared.task.column_defaults }]);
    const { data_type: _, input_columns: __, output_column: ___, ...rest } = task.training;
    const { input_columns: _c, output_column: _o, ...defaults } = shared.task.training_defaults;
    expect(rest).toEqual(defaults);
  });
});

describe("a text task's settings", () => {
  const python = () => shared.task.text;

  it("have Python's bounds and digest pattern", () => {
    expect(MAX_SEQUENCE_LENGTH).toBe(python().max_sequence_length);
    expect([MIN_VOCAB_SIZE, MAX_VOCAB_SIZE]).toEqual(python().vocab_size);
    expect(TOKENIZER_DIGEST_PATTERN.source).toBe(python().tokenizer_digest_pattern);
  });

  it.each(shared.task.text.tasks.map((c) => [c.name, c] as const))("%s: judged as Python judges it", (_, c) => {
    if (c.accepted) expect(parseTask(c.task).training.tokenizer_digest).toBe((c.task["training"] as Json)["tokenizer_digest"]);
    else expect(() => parseTask(c.task)).toThrow(/invalid task: (training|model)\./);
  });
});

describe("secure aggregation's settings", () => {
  const python = () => shared.task.secure_aggregation;

  it("have Python's defaults, bounds, and fewest and most participants of a round", () => {
    expect(SECURE_AGGREGATION_DEFAULTS).toEqual(python().defaults);
    expect(SECURE_AGGREGATION_BOUNDS).toEqual(python().bounds);
    expect(Object.keys(SECURE_AGGREGATION_BOUNDS)).toEqual(Object.keys(python().defaults));
    expect(SECURE_MIN_PARTICIPANTS).toBe(python().min_participants);
    expect(SECURE_MAX_PEERS).toBe(python().max_peers);
    expect(secureAggregationOf({})).toEqual(python().defaults);
    expect(secureAggregationOf(null)).toBeNull();
  });

  it("refuse what Python refuses at each bound, and take what it takes", () => {
    for (const [key, b] of Object.entries(SECURE_AGGREGATION_BOUNDS)) {
      const low = b.exclusiveMinimum ?? (b.minimum as number) - 1;
      const high = b.maximum as number;
      expect(() => secureAggregationOf({ [key]: low }), `${key} ${low}`).toThrow(`training.secure_aggregation.${key}`);
      expect(() => secureAggregationOf({ [key]: high + 1 }), `${key} ${high + 1}`).toThrow(`must be at most ${high}`);
      expect(secureAggregationOf({ [key]: high })).toMatchObject({ [key]: high });
      if (b.type === "integer") expect(() => secureAggregationOf({ [key]: 3.5 })).toThrow("should be a whole number");
    }
    expect(() => secureAggregationOf({ clip: Number.POSITIVE_INFINITY })).toThrow("should be a finite number");
    expect(() => secureAggregationOf({ noise: 1 })).toThrow(
      "training.secure_aggregation.noise: is not a setting of secure aggregation (its settings: clip, weight_cap, threshold)",
    );
  });

  it("become the form's fields with Python's bounds and defaults", () => {
    for (const [key, b] of Object.entries(python().bounds)) {
      const prop = b.nullable
        ? { anyOf: [{ ...b, nullable: undefined }, { type: "null" }], default: python().defaults[key] }
        : { ...b, nullable: undefined, default: python().defaults[key] };
      const field = settingField(key, prop);
      expect(field?.integer, key).toBe(b.type === "integer");
      expect(field?.nullable, key).toBe(b.nullable);
      expect(field?.default ?? null, key).toBe(python().defaults[key]);
      const min = b.exclusiveMinimum ?? b.minimum;
      expect(field?.min, key).toEqual({ value: min, exclusive: b.exclusiveMinimum !== undefined });
    }
  });
});

describe("the portable model", () => {
  it("has the same format, activations, losses, paddings and layer types", () => {
    expect(MODEL_FORMAT).toBe(shared.model.format);
    expect([...ACTIVATIONS]).toEqual(shared.model.activations);
    expect([...LOSSES]).toEqual(shared.model.losses);
    expect([...PADDINGS]).toEqual(shared.model.paddings);
    expect([...LAYER_TYPES]).toEqual(shared.model.layer_types);
  });

  it("checks the settings Python's layers have: the required ones, and no others", () => {
    expect(Object.keys(LAYER_SETTINGS)).toEqual(shared.model.layer_types);
    for (const [type, python] of Object.entries(shared.model.layer_settings)) {
      const web = LAYER_SETTINGS[type as keyof typeof LAYER_SETTINGS];
      expect([...web.required], type).toEqual(python.required);
      expect(Object.keys(web.fields).sort(), type).toEqual([...python.required, ...Object.keys(python.defaults)].sort());
    }
  });
});

describe("the protocol", () => {
  it("has the same version, limits and names", () => {
    expect(PROTOCOL_VERSION).toBe(shared.protocol.version);
    expect(MAX_SAFE_INT).toBe(shared.protocol.max_safe_int);
    expect(MAX_NUM_SAMPLES).toBe(shared.protocol.max_num_samples);
    expect([...MESSAGE_TYPES]).toEqual(shared.protocol.message_types);
    expect([...CAPABILITIES]).toEqual(shared.protocol.capabilities);
    expect([...DECENTRALIZED_TYPES]).toEqual(shared.protocol.decentralized_types); // both sorted
    expect([...PEER_TYPES]).toEqual(shared.protocol.peer_types);
    expect([...ERROR_CODES]).toEqual(shared.protocol.error_codes);
    expect([...SESSION_STATES]).toEqual(shared.protocol.session_states);
    expect([...METRIC_NAMES]).toEqual(shared.protocol.metric_names);
    expect(shared.protocol.client_kinds).toEqual(["python", "browser"]); // `ClientKind`
  });
});

describe("the task form's architectures", () => {
  it("are Python's built-in ones (besides the form's own dense network)", () => {
    const ids = ARCHITECTURES.map((a) => a.id).filter((id) => id !== "dense");
    for (const id of ids) expect(shared.architectures.python).toContain(id);
    expect(new Set(shared.architectures.web.map((c) => c.architecture))).toEqual(new Set(ARCHITECTURES.map((a) => a.id)));
  });

  it("are those of the catalog tasks their descriptions name", () => {
    for (const [id, task] of [["mnist_cnn", "mnist"], ["lus_covid_cnn", "lus_covid"], ["cifar10_cnn", "cifar10"]]) {
      expect(shared.catalog.find((t) => t.id === task)?.architecture).toBe(id);
    }
  });

  it.each(shared.architectures.web.map((c) => [`${c.architecture} ${c.task ?? JSON.stringify(c.input)} ${c.classes}`, c] as const))(
    "%s builds Python's model document",
    (_, c) => {
      const doc = buildArchitecture(c.architecture, c.input, c.classes);
      expect(completed(doc as unknown as ModelSpec)).toEqual(c.model);
      expect(checkModel(doc)).toEqual([]);
    },
  );
});
