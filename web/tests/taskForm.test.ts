/**
 * The task form's logic: a CSV file's columns measured for the task (the answer column chosen,
 * not assumed last), a column typed by hand never scaled silently, the scheme and aggregation
 * options read from the server's schema, `wait_for_others_s` checked against the deadline, and
 * secure aggregation: off by default, its settings from the schema, its refusals on their fields.
 */
import { describe, expect, it } from "vitest";
import { answersIn, guessAnswer, inputColumns, measure, readTable } from "../src/app/composables/csvColumns";
import { secureFromSchema } from "../src/app/composables/ruleSettings";
import {
  KNOWN_OPTIONS,
  SECURE_WORDS,
  aggregationChoices,
  optionsFromSchema,
  schemeChoices,
} from "../src/app/composables/taskChoices";
import { type TaskForm, emptyColumn, emptyForm, remeasure, setAnswer, setTable } from "../src/app/composables/taskForm";
import { fillSecureDefaults } from "../src/app/composables/taskFormAggregation";
import { buildTask } from "../src/app/composables/taskFormBuild";
import { formKey, serverErrors } from "../src/app/composables/taskFormErrors";

// the answer first, a column around 750, a text column, and rows without a "grade"
const CSV = [
  "species,weight,length,colour,grade",
  "setosa,740,5.1,red,a",
  "setosa,752,4.9,red,",
  "versicolor,761,6.0,blue,b",
  "virginica,748,6.7,green,b",
  "virginica,,6.3,green,a",
  "versicolor,770,5.8,blue,",
].join("\n");

const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
/** Population standard deviation: what the form measures (dividing by n). */
const pstd = (v: number[]): number => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
const close = (a: number | string, b: number): void => expect(Number(a)).toBeCloseTo(b, 2);

function tableForm(): TaskForm {
  const f = emptyForm();
  f.data_type = "tabular";
  f.architecture = "dense";
  f.id = "plants";
  f.title = "Plants";
  return f;
}

describe("a CSV file's columns", () => {
  const table = readTable(CSV, "plants.csv");

  it("measures numbers with their average and population spread", () => {
    const s = measure(table.file, table.header, table.rows, "weight");
    const w = [740, 752, 761, 748, 770];
    close(s.mean, mean(w));
    close(s.std, pstd(w));
    expect(s.fill).toBe(String(Number(mean(w).toPrecision(5)))); // one empty cell
    expect(s.about).toContain("typical value 754.2");
    expect(s.about).toContain("1 empty cell will get 754.2");
  });

  it("lists the values of a text column", () => {
    const s = measure(table.file, table.header, table.rows, "colour");
    expect(s.categories).toBe("red, blue, green");
    expect(s.about).toContain("Text, 3 different values");
  });

  it("says when a column cannot help", () => {
    const t = readTable("a,b\n1,x\n1,y\n", "c.csv");
    expect(measure(t.file, t.header, t.rows, "a")).toMatchObject({ mean: 1, std: 1 });
    expect(measure(t.file, t.header, t.rows, "a").about).toContain("cannot help the model");
  });

  it("guesses the answer only from a telling name", () => {
    expect(guessAnswer(table.header)).toBe("");
    expect(guessAnswer(["Survived", "Pclass", "Age"])).toBe("Survived");
    expect(guessAnswer(["x1", "x2", "target"])).toBe("target");
  });

  it("measures the inputs on the rows that have an answer", () => {
    const byGrade = inputColumns(table, "grade");
    expect(byGrade.map((c) => c.name)).toEqual(["species", "weight", "length", "colour"]);
    close(byGrade[1]?.mean ?? "", mean([740, 761, 748]));
    close(byGrade[1]?.std ?? "", pstd([740, 761, 748]));
    expect(answersIn(table, "grade")).toEqual({ labels: ["a", "b"], count: 2 });
    expect(answersIn(table, "weight").count).toBe(5);
  });

  it("refuses a header that names a column twice", () => {
    expect(() => readTable("a,b,a\n1,2,3\n", "d.csv")).toThrow("names the column “a” twice");
  });
});

describe("the form with a CSV file", () => {
  it("waits for the answer column when none is named like one, then reads the file for it", () => {
    const f = tableForm();
    setTable(f, readTable(CSV, "plants.csv"));
    expect(f.output_column).toBe("");
    expect(f.columns).toEqual([]);
    expect(buildTask(f).errors.output_column).toContain("Choose the column holding the answer");

    setAnswer(f, "species");
    expect(f.columns.map((c) => c.name)).toEqual(["weight", "length", "colour", "grade"]);
    expect(f.labels).toBe("setosa, versicolor, virginica");
    close(f.columns[0]?.mean ?? "", mean([740, 752, 761, 748, 770]));
    expect(f.columns[0]?.from).toBe("plants.csv");
    const { doc, errors } = buildTask(f);
    expect(errors).toEqual({});
    const training = doc?.training as { output_column: string; labels: string[]; input_columns: { std: number }[] };
    expect(training.output_column).toBe("species");
    expect(training.labels).toEqual(["setosa", "versicolor", "virginica"]);
    expect(training.input_columns[0]?.std).toBeGreaterThan(9);

    setAnswer(f, "grade");
    expect(f.columns.map((c) => c.name)).toEqual(["species", "weight", "length", "colour"]);
    expect(f.columns[0]?.categories).toBe("setosa, versicolor, virginica");
    close(f.columns[1]?.mean ?? "", mean([740, 761, 748]));
    expect(f.labels).toBe("a, b");
  });

  it("measures a column added by hand from the file, and refuses names the file lacks", () => {
    const f = tableForm();
    setTable(f, readTable(CSV, "plants.csv"));
    setAnswer(f, "species");
    f.columns = [emptyColumn()];
    const col = f.columns[0] as (typeof f.columns)[number];
    col.name = "weight";
    remeasure(f, col);
    close(col.mean, mean([740, 752, 761, 748, 770]));
    close(col.std, pstd([740, 752, 761, 748, 770]));
    col.name = "weigh"; // values measured for another name are dropped
    remeasure(f, col);
    expect(col.mean).toBe("");
    expect(buildTask(f).errors["columns.0.name"]).toContain("plants.csv has no column named “weigh”");
  });
});

describe("a column without a file", () => {
  it("is never sent with a silent mean 0 and spread 1", () => {
    const f = tableForm();
    f.columns = [emptyColumn("weight")];
    f.output_column = "species";
    f.labels = "a, b";
    const { doc, errors } = buildTask(f);
    expect(doc).toBeNull();
    expect(errors["columns.0.mean"]).toContain("pick the CSV file above");
    expect(errors["columns.0.std"]).toContain("pick the CSV file above");
    f.columns[0] = { ...emptyColumn("weight"), mean: 750, std: 12 };
    expect(buildTask(f).errors).toEqual({});
  });

  it("takes a text column's positions as they are", () => {
    const f = tableForm();
    f.columns = [{ ...emptyColumn("colour"), categories: "red, blue" }];
    f.output_column = "species";
    f.labels = "a, b";
    const cols = (buildTask(f).doc?.training as { input_columns: unknown[] }).input_columns;
    expect(cols).toEqual([{ name: "colour", fill: null, mean: 0, std: 1, categories: ["red", "blue"] }]);
  });
});

describe("schemes and aggregation rules", () => {
  it("reads the rules of a discriminated aggregation union (the server's schema)", () => {
    const schema = {
      $defs: {
        TrainingInfo: {
          properties: {
            aggregation: { discriminator: { propertyName: "rule", mapping: { mean: "#/a", median: "#/b", krum: "#/c" } } },
          },
        },
      },
    };
    expect(optionsFromSchema(schema).aggregations).toEqual(["mean", "median", "krum"]);
    // pydantic sorts the mapping's tags: the union's own order (`oneOf`) is the server's
    const sorted = {
      $defs: {
        TrainingInfo: {
          properties: {
            aggregation: {
              discriminator: { propertyName: "rule", mapping: { krum: "#/K", mean: "#/A", median: "#/M", zeta: "#/Z" } },
              oneOf: [{ $ref: "#/A" }, { $ref: "#/M" }, { $ref: "#/K" }],
            },
          },
        },
      },
    };
    expect(optionsFromSchema(sorted).aggregations).toEqual(["mean", "median", "krum", "zeta"]);
  });
  const schema = {
    $defs: {
      TrainingInfo: {
        properties: {
          scheme: { enum: ["federated", "decentralized", "local"] },
          aggregation: { enum: ["mean", "median", "trimmed_mean", "geomed"] },
        },
      },
    },
  };

  it("come from the server's schema, each explained; an unknown rule still appears", () => {
    const options = optionsFromSchema(schema);
    expect(options.aggregations).toEqual(["mean", "median", "trimmed_mean", "geomed"]);
    const rules = aggregationChoices(options.aggregations);
    expect(rules.map((r) => r.label)).toEqual(["Average", "Median", "Trimmed average", "Geomed"]);
    expect(rules[0]?.about).toContain("weighted by how many examples");
    expect(rules[3]?.about).toContain("no plain description");
    expect(optionsFromSchema({})).toEqual(KNOWN_OPTIONS);
    // an unknown rule the schema describes is explained by its description (its docstring)
    const described = aggregationChoices(["geomed"], {
      geomed: { about: "Geometric median of the ``updates``", settings: [] },
    });
    expect(described[0]?.about).toBe("Geometric median of the updates.");
  });

  it("offer decentralized training, ready now that browsers are peers", () => {
    const schemes = schemeChoices(optionsFromSchema(schema).schemes);
    expect(schemes.map((s) => s.value)).toEqual(["federated", "decentralized", "local"]); // the server's order
    expect(schemes[1]?.ready).toBe(true);
    expect(schemes[1]?.label).toBe("Together, directly between participants");
    expect(schemes[1]?.about).toContain("keeps no model after the initial one");
  });

  it("go into the task document", () => {
    const f = tableForm();
    f.columns = [{ ...emptyColumn("w"), mean: 1, std: 2 }];
    f.output_column = "y";
    f.labels = "a, b";
    f.aggregation = "median";
    f.wait_for_others_s = 300;
    const training = buildTask(f).doc?.training as Record<string, unknown>;
    expect(training.aggregation).toEqual({ rule: "median" });
    expect(training.wait_for_others_s).toBe(300);
  });
});

describe("rounds per epoch", () => {
  it("cuts each epoch into rounds, with one epoch a round", () => {
    const f = tableForm();
    f.columns = [{ ...emptyColumn("w"), mean: 1, std: 2 }];
    f.output_column = "y";
    f.labels = "a, b";
    f.epochs_per_round = 1;
    f.rounds_per_epoch = 4;
    expect((buildTask(f).doc?.training as Record<string, unknown>).rounds_per_epoch).toBe(4);
    f.epochs_per_round = 2;
    expect(buildTask(f).errors.rounds_per_epoch).toContain("set epochs per round to 1");
    f.rounds_per_epoch = 0;
    expect(buildTask(f).errors.rounds_per_epoch).toContain("Rounds per epoch");
  });
});

describe("waiting for the others", () => {
  it("must last at least the round deadline", () => {
    const f = emptyForm();
    f.round_deadline_s = 120;
    f.wait_for_others_s = 60;
    expect(buildTask(f).errors.wait_for_others_s).toContain("at least as long as the round deadline (120 seconds)");
    f.wait_for_others_s = "";
    expect(buildTask(f).errors.wait_for_others_s).toContain("Waiting time must be a number above 0");
  });

  it("lands on its field when the server refuses it", () => {
    const message =
      "wait_for_others_s (60) must be at least round_deadline_s (120): participants would stop waiting before a round's deadline";
    const { errors, rest } = serverErrors([{ field: "training", message }]);
    expect(rest).toEqual([]);
    expect(errors.wait_for_others_s).toBe(
      "Wait at least as long as the round deadline (120 seconds), or people stop waiting before a round can close.",
    );
  });
});

// what `Task.json_schema()` gives for secure aggregation (trimmed to what matters)
const SECURE_SCHEMA = {
  $defs: {
    TrainingInfo: {
      properties: {
        secure_aggregation: {
          anyOf: [{ $ref: "#/$defs/SecureAggregationConfig" }, { type: "null" }],
          default: null,
          description: "the server learns only the sum of each round's updates",
        },
      },
    },
    SecureAggregationConfig: {
      description: "Secure aggregation: the server learns only the sum of a\nround's updates.",
      properties: {
        clip: {
          default: 1.0,
          description: "clip range: every value of an update's change is clamped to [-clip, clip]",
          exclusiveMinimum: 0,
          maximum: 1000000.0,
          title: "Clip",
          type: "number",
        },
        weight_cap: {
          default: 1024,
          description: "a participant's sample count counts at most this much",
          maximum: 65536,
          minimum: 1,
          title: "Weight Cap",
          type: "integer",
        },
        threshold: {
          anyOf: [{ maximum: 10000, minimum: 3, type: "integer" }, { type: "null" }],
          default: null,
          description: "how many of a round's participants must stay to the end (empty: automatic)",
          title: "Threshold",
        },
      },
    },
  },
};
const SECURE_FIELDS = secureFromSchema(SECURE_SCHEMA)?.settings ?? [];

/** A valid image task form with secure aggregation on (3 participants a round, its defaults). */
function secureForm(): TaskForm {
  const f = emptyForm();
  f.id = "xrays";
  f.title = "X-rays";
  f.labels = "healthy, sick";
  f.min_participants = 3;
  f.secure_aggregation = true;
  fillSecureDefaults(f, SECURE_FIELDS);
  return f;
}

describe("secure aggregation in the form", () => {
  it("is off by default and explained in plain words", () => {
    const f = emptyForm();
    expect(f.secure_aggregation).toBe(false);
    f.id = "xrays";
    f.title = "X-rays";
    f.labels = "healthy, sick";
    const { doc, errors } = buildTask(f, {}, SECURE_FIELDS);
    expect(errors).toEqual({});
    expect((doc?.training as Record<string, unknown>).secure_aggregation).toBeNull();
    expect(SECURE_WORDS.about).toBe(
      "Updates are masked so that whoever adds them up — the server, or each participant when they train directly with each other — learns only the total, never one person's update. Needs at least 3 participants per round and the 'average' rule.",
    );
    // browsers take part in such tasks too: nothing says they cannot
    expect(Object.keys(SECURE_WORDS)).toEqual(["label", "about"]);
    expect(Object.values(SECURE_WORDS).join(" ")).not.toMatch(/browser|disco train/);
  });

  it("has its three settings from the server's schema, the threshold automatic when empty", () => {
    const secure = optionsFromSchema(SECURE_SCHEMA).secure;
    expect(secure.about).toBe("Secure aggregation: the server learns only the sum of a round's updates.");
    expect(secure.settings.map((s) => [s.key, s.label, s.default, s.integer, s.nullable])).toEqual([
      ["clip", "Clip range", 1, false, false],
      ["weight_cap", "Weight cap (examples)", 1024, true, false],
      ["threshold", "Participants needed to unmask", null, true, true],
    ]);
    expect(secure.settings[0]?.min).toEqual({ value: 0, exclusive: true });
    expect(secure.settings[0]?.max).toEqual({ value: 1_000_000, exclusive: false });
    expect(secure.settings[2]?.min).toEqual({ value: 3, exclusive: false });
    // without a schema the choice stays, with the server's defaults
    expect(optionsFromSchema({}).secure).toEqual({ about: "", settings: [] });
    expect(KNOWN_OPTIONS.secure.settings).toEqual([]);
  });

  it("goes into the task document with its settings", () => {
    const f = secureForm();
    expect(f.secure_settings).toEqual({ clip: 1, weight_cap: 1024, threshold: "" });
    let built = buildTask(f, {}, SECURE_FIELDS);
    expect(built.errors).toEqual({});
    expect((built.doc?.training as Record<string, unknown>).secure_aggregation).toEqual({
      clip: 1,
      weight_cap: 1024,
      threshold: null,
    });
    f.secure_settings = { clip: "0.5", weight_cap: 100, threshold: 3 };
    built = buildTask(f, {}, SECURE_FIELDS);
    expect((built.doc?.training as Record<string, unknown>).secure_aggregation).toEqual({
      clip: 0.5,
      weight_cap: 100,
      threshold: 3,
    });
    // a local task combines nothing: the choice is not shown, nor sent
    f.scheme = "local";
    expect((buildTask(f, {}, SECURE_FIELDS).doc?.training as Record<string, unknown>).secure_aggregation).toBeNull();
  });

  it("checks each setting against its bounds, on its field", () => {
    const f = secureForm();
    f.secure_settings = { clip: 0, weight_cap: 70000, threshold: 2 };
    const { doc, errors } = buildTask(f, {}, SECURE_FIELDS);
    expect(doc).toBeNull();
    expect(errors["secure_aggregation.clip"]).toBe("Clip range must be above 0 and at most 1000000.");
    expect(errors["secure_aggregation.weight_cap"]).toBe("Weight cap (examples) must be a whole number from 1 to 65536.");
    expect(errors["secure_aggregation.threshold"]).toBe(
      "Participants needed to unmask must be a whole number from 3 to 10000, or left empty (automatic).",
    );
  });

  it("refuses rounds of fewer than 3, on the minimum participants", () => {
    const f = secureForm();
    f.min_participants = 2;
    const { doc, errors } = buildTask(f, {}, SECURE_FIELDS);
    expect(doc).toBeNull();
    expect(errors.min_participants).toBe(
      "Secure aggregation needs at least 3 participants in a round (with 2, each could subtract its own update from the sum and read the other's): set the minimum participants to at least 3 (it is 2).",
    );
  });

  it("refuses a rule other than the average, saying why", () => {
    const f = secureForm();
    f.aggregation = "median";
    const { doc, errors } = buildTask(f, {}, SECURE_FIELDS);
    expect(doc).toBeNull();
    expect(errors.secure_aggregation).toBe(
      "Secure aggregation shows the server only the sum of the updates; 'median' needs each participant's own update — use 'mean' or turn secure aggregation off.",
    );
  });

  it("takes decentralized tasks of at most 64 peers a round, saying why on the minimum participants", () => {
    const f = secureForm();
    f.scheme = "decentralized";
    const taken = buildTask(f, {}, SECURE_FIELDS);
    expect(taken.errors).toEqual({});
    expect((taken.doc?.training as Record<string, unknown>).scheme).toBe("decentralized");
    f.min_participants = 64;
    expect(buildTask(f, {}, SECURE_FIELDS).errors).toEqual({});
    f.min_participants = 65;
    const { doc, errors } = buildTask(f, {}, SECURE_FIELDS);
    expect(doc).toBeNull();
    expect(errors.min_participants).toBe(
      "A secure decentralized round takes at most 64 peers (each opens a channel to every other and receives every masked input): set the minimum participants to at most 64 (it is 65), or train together through the server.",
    );
    f.scheme = "federated";
    expect(buildTask(f, {}, SECURE_FIELDS).errors).toEqual({});
  });

  it("refuses a threshold above the minimum participants, on the threshold", () => {
    const f = secureForm();
    f.min_participants = 4;
    f.secure_settings.threshold = 5;
    expect(buildTask(f, {}, SECURE_FIELDS).errors["secure_aggregation.threshold"]).toBe(
      "Secure aggregation's threshold (5) cannot be more than the minimum participants (4): a round of 4 could never unmask its sum and would always abort; lower the threshold or raise the minimum participants.",
    );
  });

  it("refuses a ring too small for the smallest round, on the clip range", () => {
    const f = secureForm();
    f.secure_settings = { clip: 1_000_000, weight_cap: 65536, threshold: "" };
    const error = buildTask(f, {}, SECURE_FIELDS).errors["secure_aggregation.clip"] ?? "";
    expect(error).toMatch(/^Secure aggregation's clip range and weight cap do not fit a round of 3 participants: /);
    expect(error).toContain("lower the clip range or the weight cap");
  });

  it("puts the server's refusals on the same fields", () => {
    expect(formKey("training.secure_aggregation.clip")).toBe("secure_aggregation.clip");
    expect(formKey("training.secure_aggregation")).toBe("secure_aggregation");
    const problems = [
      { field: "training.secure_aggregation.threshold", message: "must be at least 3" },
      {
        field: "training",
        message:
          "secure aggregation shows the server only the sum of the updates; 'krum' needs each participant's own update — use 'mean' or turn secure aggregation off",
      },
      {
        field: "training",
        message:
          "secure aggregation needs at least 3 participants in a round (with 2, each could subtract its own update from the sum and read the other's): set min_participants to at least 3 (it is 2)",
      },
      {
        field: "training",
        message:
          "secure aggregation's threshold (5) cannot be more than min_participants (4): a round of 4 could never unmask its sum and would always abort; lower the threshold or raise min_participants",
      },
      {
        field: "training",
        message:
          "secure aggregation's clip range and weight cap do not fit a round of 3 participants: n × W × c = 3 × 65536 × 1e+06 is too large for the 32-bit ring",
      },
      {
        field: "training",
        message:
          "a secure decentralized round takes at most 64 peers (each opens a channel to every other and receives every masked input): set min_participants to at most 64 (it is 65), or use the federated scheme",
      },
    ];
    const { errors, rest } = serverErrors(problems);
    expect(rest).toEqual([]);
    expect(Object.keys(errors).sort()).toEqual([
      "min_participants",
      "secure_aggregation",
      "secure_aggregation.clip",
      "secure_aggregation.threshold",
    ]);
    expect(errors["secure_aggregation.threshold"]).toContain("Must be at least 3.");
    expect(errors["secure_aggregation.threshold"]).toContain("cannot be more than the minimum participants (4)");
    expect(errors.secure_aggregation?.split("\n")).toHaveLength(1);
    expect(errors.min_participants?.split("\n")).toHaveLength(2);
    expect(errors.min_participants).toContain("set the minimum participants to at least 3");
    expect(errors.min_participants).toContain("set the minimum participants to at most 64 (it is 65)");
  });
});
