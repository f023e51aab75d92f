/**
 * The task form's logic: a CSV file's columns measured for the task (the answer column chosen,
 * not assumed last), a column typed by hand never scaled silently, the scheme and aggregation
 * options read from the server's schema, and `wait_for_others_s` checked against the deadline.
 */
import { describe, expect, it } from "vitest";
import { answersIn, guessAnswer, inputColumns, measure, readTable } from "../src/app/composables/csvColumns";
import { KNOWN_OPTIONS, aggregationChoices, optionsFromSchema, schemeChoices } from "../src/app/composables/taskChoices";
import {
  type TaskForm,
  buildTask,
  emptyColumn,
  emptyForm,
  remeasure,
  serverErrors,
  setAnswer,
  setTable,
} from "../src/app/composables/taskForm";

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
