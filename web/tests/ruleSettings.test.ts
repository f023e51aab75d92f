/**
 * Each aggregation rule's settings read from the server's task schema (pydantic's discriminated
 * union): number fields with their help, default, bounds, whole numbers and "automatic" (null),
 * checked with a plain message, and sent with the rule in the task the form builds.
 */
import { describe, expect, it } from "vitest";
import { checkSetting, rangeText, rulesFromSchema, type SettingField } from "../src/app/composables/ruleSettings";
import { emptyForm } from "../src/app/composables/taskForm";
import { fillRuleDefaults } from "../src/app/composables/taskFormAggregation";
import { buildTask } from "../src/app/composables/taskFormBuild";
import { formKey, serverErrors } from "../src/app/composables/taskFormErrors";

// what `Task.json_schema()` gives for the rules (trimmed to what matters), with a rule of
// settings this page has no words for
const SCHEMA = {
  $defs: {
    TrainingInfo: {
      properties: {
        aggregation: {
          discriminator: {
            propertyName: "rule",
            mapping: {
              mean: "#/$defs/MeanRule",
              median: "#/$defs/MedianRule",
              trimmed_mean: "#/$defs/TrimmedMeanRule",
              multi_krum: "#/$defs/MultiKrumRule",
            },
          },
          oneOf: [{ $ref: "#/$defs/MeanRule" }],
        },
      },
    },
    MeanRule: {
      description: "FedAvg: updates averaged, no one's share above\n``max_share``.",
      properties: {
        rule: { const: "mean", default: "mean", type: "string" },
        max_share: {
          default: 0.5,
          description: "largest share of a round one participant's update can have",
          exclusiveMinimum: 0,
          maximum: 1,
          title: "Max Share",
          type: "number",
        },
      },
    },
    MedianRule: {
      description: "Coordinate-wise median of the updates.",
      properties: { rule: { const: "median", type: "string" } },
    },
    TrimmedMeanRule: {
      properties: {
        rule: { const: "trimmed_mean", type: "string" },
        beta: { default: 0.1, description: "share dropped at each end", exclusiveMaximum: 0.5, minimum: 0, type: "number" },
      },
    },
    MultiKrumRule: {
      description: "Multi-Krum.",
      properties: {
        rule: { const: "multi_krum", type: "string" },
        f: { default: 1, minimum: 0, type: "integer", title: "F", description: "dishonest participants tolerated" },
        m: {
          anyOf: [{ minimum: 1, type: "integer" }, { type: "null" }],
          default: null,
          description: "updates averaged; empty: n - f",
          title: "M",
        },
        noise_scale: { default: 2, exclusiveMinimum: 0, type: "number", title: "Noise Scale" },
        verbose: { default: false, type: "boolean" },
      },
    },
  },
};

function field(rule: string, key: string): SettingField {
  const f = rulesFromSchema(SCHEMA)[rule]?.settings.find((s) => s.key === key);
  if (!f) throw new Error(`no field ${rule}.${key}`);
  return f;
}

describe("rules from the schema", () => {
  it("lists every rule of the union with its own explanation and settings", () => {
    const rules = rulesFromSchema(SCHEMA);
    expect(Object.keys(rules)).toEqual(["mean", "median", "trimmed_mean", "multi_krum"]);
    expect(rules.mean?.about).toBe("FedAvg: updates averaged, no one's share above max_share.");
    expect(rules.median?.settings).toEqual([]);
    // every property but `rule`; a setting that is not a number is left to the server's default
    expect(rules.multi_krum?.settings.map((s) => s.key)).toEqual(["f", "m", "noise_scale"]);
  });

  it("reads bounds, defaults, whole numbers and the description as help", () => {
    expect(field("mean", "max_share")).toEqual({
      key: "max_share",
      label: "Largest share of one person",
      help: "Largest share of a round one participant's update can have.",
      integer: false,
      nullable: false,
      default: 0.5,
      min: { value: 0, exclusive: true },
      max: { value: 1, exclusive: false },
    });
    const f = field("multi_krum", "f");
    expect([f.integer, f.default, f.min, f.max]).toEqual([true, 1, { value: 0, exclusive: false }, null]);
    // a setting this page has no name for is named from the schema's title
    expect(field("multi_krum", "noise_scale").label).toBe("Noise Scale");
  });

  it("reads a nullable setting (int | None) as one that may be left empty", () => {
    const m = field("multi_krum", "m");
    expect([m.nullable, m.integer, m.default, m.min]).toEqual([true, true, null, { value: 1, exclusive: false }]);
  });

  it("falls back to the rules' oneOf members, and to nothing without a schema", () => {
    const schema = {
      $defs: {
        TrainingInfo: { properties: { aggregation: { oneOf: [{ $ref: "#/$defs/MedianRule" }] } } },
        MedianRule: SCHEMA.$defs.MedianRule,
      },
    };
    expect(Object.keys(rulesFromSchema(schema))).toEqual(["median"]);
    expect(rulesFromSchema(null)).toEqual({});
    expect(rulesFromSchema({ $defs: {} })).toEqual({});
  });
});

describe("checking a setting", () => {
  it("says the range in words, exclusive ends included", () => {
    expect(rangeText(field("mean", "max_share"))).toBe("above 0 and at most 1");
    expect(rangeText(field("trimmed_mean", "beta"))).toBe("at least 0 and below 0.5");
    expect(rangeText({ ...field("trimmed_mean", "beta"), max: { value: 0.5, exclusive: false } })).toBe(
      "between 0 and 0.5",
    );
    expect(rangeText(field("multi_krum", "f"))).toBe("a whole number of at least 0");
    // a whole number above 0 is at least 1
    expect(rangeText({ ...field("multi_krum", "f"), min: { value: 0, exclusive: true }, max: { value: 10, exclusive: false } })).toBe(
      "a whole number from 1 to 10",
    );
  });

  it("accepts values in bounds and refuses the others with one plain message", () => {
    const beta = field("trimmed_mean", "beta");
    expect(checkSetting(beta, 0.2)).toEqual({ value: 0.2 });
    expect(checkSetting(beta, "0")).toEqual({ value: 0 });
    const message = "Share left out at each end must be at least 0 and below 0.5.";
    for (const bad of [0.5, -0.1, "", "abc"]) expect(checkSetting(beta, bad)).toEqual({ error: message });
    const f = field("multi_krum", "f");
    expect(checkSetting(f, 1.5)).toEqual({ error: "Dishonest participants to resist must be a whole number of at least 0." });
    expect(checkSetting(f, 2)).toEqual({ value: 2 });
  });

  it("reads an empty nullable setting as automatic (null)", () => {
    const m = field("multi_krum", "m");
    expect(checkSetting(m, "")).toEqual({ value: null });
    expect(checkSetting(m, 0)).toEqual({
      error: "Updates kept must be a whole number of at least 1, or left empty (automatic).",
    });
  });
});

describe("the settings in the task the form builds", () => {
  const rules = rulesFromSchema(SCHEMA);

  function formWith(rule: string): ReturnType<typeof emptyForm> {
    const f = emptyForm();
    Object.assign(f, { id: "shapes", title: "Shapes", labels: "circle, square", aggregation: rule });
    fillRuleDefaults(f, rule, rules[rule]?.settings ?? []);
    return f;
  }

  it("start at the schema's defaults (empty for automatic) and go with the rule", () => {
    const f = formWith("multi_krum");
    expect(f.aggregation_settings.multi_krum).toEqual({ f: 1, m: "", noise_scale: 2 });
    f.aggregation_settings.multi_krum!.f = 2;
    const training = buildTask(f, rules).doc?.training as Record<string, unknown>;
    expect(training.aggregation).toEqual({ rule: "multi_krum", f: 2, m: null, noise_scale: 2 });
  });

  it("are kept per rule, and a value typed is not overwritten by the default", () => {
    const f = formWith("trimmed_mean");
    f.aggregation_settings.trimmed_mean!.beta = 0.2;
    fillRuleDefaults(f, "mean", rules.mean!.settings);
    fillRuleDefaults(f, "trimmed_mean", rules.trimmed_mean!.settings);
    expect(f.aggregation_settings).toEqual({ trimmed_mean: { beta: 0.2 }, mean: { max_share: 0.5 } });
    const training = buildTask(f, rules).doc?.training as Record<string, unknown>;
    expect(training.aggregation).toEqual({ rule: "trimmed_mean", beta: 0.2 });
  });

  it("out of bounds block the task, with the message on the setting's field", () => {
    const f = formWith("trimmed_mean");
    f.aggregation_settings.trimmed_mean!.beta = 0.7;
    const { doc, errors } = buildTask(f, rules);
    expect(doc).toBeNull();
    expect(errors["aggregation.beta"]).toBe("Share left out at each end must be at least 0 and below 0.5.");
  });

  it("are not checked when nobody combines anything (training alone)", () => {
    const f = formWith("trimmed_mean");
    f.aggregation_settings.trimmed_mean!.beta = 0.7;
    f.scheme = "local";
    expect(buildTask(f, rules).errors).toEqual({});
  });

  it("are left to the server's defaults when its schema could not be read", () => {
    const f = formWith("trimmed_mean");
    const training = buildTask(f).doc?.training as Record<string, unknown>;
    expect(training.aggregation).toEqual({ rule: "trimmed_mean" });
  });

  it("land on their field when the server refuses them", () => {
    expect(formKey("training.aggregation.beta")).toBe("aggregation.beta");
    expect(formKey("training.aggregation.krum.f")).toBe("aggregation.f");
    expect(formKey("training.aggregation")).toBe("aggregation");
    expect(formKey("training.aggregation.rule")).toBe("aggregation");
    const { errors, rest } = serverErrors([
      { field: "training.aggregation.beta", message: "Input should be less than 0.5" },
    ]);
    expect(rest).toEqual([]);
    expect(errors["aggregation.beta"]).toBe("Must be less than 0.5.");
    // a rule's problem with the task as a whole lands on the rule, in words
    const krum = serverErrors([
      {
        field: "training",
        message:
          "Value error, krum with f=1 needs at least 5 updates in a round: set min_participants to at least 5 (it is 2)",
      },
    ]);
    expect(krum.errors.aggregation).toBe(
      "Krum with f=1 needs at least 5 updates in a round: set the minimum participants to at least 5 (it is 2).",
    );
  });
});
