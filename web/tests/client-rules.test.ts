/**
 * The client rules both languages share, read from the vectors Python writes
 * (tests/vectors/client_rules.py): the epoch schedule and the update pipeline.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { aggregationOf } from "../src/core/aggregationTask";
import { prepareUpdate, type RawMetrics } from "../src/core/client/update";
import { SessionError } from "../src/core/errors";
import { l2Norm, subtract } from "../src/core/privacy";
import { epochPart, epochsInRound, partBatches, partValidation, rounds, roundWork } from "../src/core/schedule";
import { parseTask, type PrivacyConfig } from "../src/core/task";
import { Weights } from "../src/core/weights";

type Num = number | "NaN" | "Infinity" | "-Infinity" | null;
type WeightsDoc = Record<string, { shape: number[]; values: Num[] }>;

function vectors<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../tests/vectors/${name}`, import.meta.url), "utf8")) as T;
}

const num = (x: Num): number | null => (typeof x === "string" ? Number(x) : x);

function weights(doc: WeightsDoc): Weights {
  const names = Object.keys(doc);
  return new Weights(
    names,
    names.map((n) => doc[n]!.shape),
    names.map((n) => Float32Array.from(doc[n]!.values.map((v) => num(v) as number))),
  );
}

interface ScheduleCase {
  epochs: number;
  epochs_per_round: number;
  rounds_per_epoch: number;
  rounds: number;
  schedule: { epochs: number; part: [number, number, number] | null }[];
}

interface PartCase {
  index: number;
  count: number;
  batches: number;
  batch_range: [number, number];
  validation: number;
  validation_indices: number[];
}

interface PipelineCase {
  name: string;
  received: WeightsDoc;
  trained: WeightsDoc;
  num_samples: number;
  metrics: Record<string, Num>;
  privacy: PrivacyConfig | null;
  expected:
    | { error: "not_finite" | "invalid" }
    | { weights: WeightsDoc; num_samples: number; metrics: Record<string, number>; dropped_metrics: string[]; clipped: boolean };
}

describe("epoch schedule (tests/vectors/epoch_schedule.json)", () => {
  const doc = vectors<{ cases: ScheduleCase[]; parts: PartCase[] }>("epoch_schedule.json");
  it.each(doc.cases)("$epochs epochs, $epochs_per_round per round, $rounds_per_epoch rounds an epoch", (c) => {
    expect(rounds(c)).toBe(c.rounds);
    const plan = c.schedule.map((_, i) => {
      const part = epochPart(c, i + 1);
      return { epochs: epochsInRound(c, i + 1), part: part === null ? null : [part.epoch, part.index, part.count] };
    });
    expect(plan).toEqual(c.schedule);
  });
  it.each(doc.parts)("part $index of $count of $batches batches", (c) => {
    const part = { epoch: 1, index: c.index, count: c.count };
    expect(partBatches(part, c.batches)).toEqual(c.batch_range);
    expect(partValidation(part, c.validation)).toEqual(c.validation_indices);
  });
  it("counts rounds from 1 and says what a round trains", () => {
    expect(() => epochsInRound({ epochs: 3, epochs_per_round: 1 }, 0)).toThrow(/counted from 1/);
    expect(() => epochPart({ epochs: 3, epochs_per_round: 1, rounds_per_epoch: 2 }, 0)).toThrow(/counted from 1/);
    expect(() => partBatches({ epoch: 1, index: 1, count: 2 }, 0)).toThrow(/at least one batch/);
    expect(roundWork({ epochs: 2, epochs_per_round: 1, rounds_per_epoch: 3 }, 4)).toBe("part 1 of 3 of epoch 2");
    expect(roundWork({ epochs: 3, epochs_per_round: 2 }, 1)).toBe("2 epochs");
    expect(roundWork({ epochs: 3, epochs_per_round: 2 }, 2)).toBe("1 epoch");
  });
  it("refuses rounds_per_epoch with more than one epoch a round", () => {
    const doc = { id: "t", display: { title: "T" }, model: { input_shape: [2], layers: [{ type: "dense", units: 1 }], loss: "mse" } };
    expect(() => parseTask({ ...doc, training: { data_type: "tabular", epochs: 4, epochs_per_round: 2, rounds_per_epoch: 3 } })).toThrow(
      /rounds_per_epoch/,
    );
  });
});

describe("update pipeline (tests/vectors/update_pipeline.json)", () => {
  const cases = vectors<{ cases: PipelineCase[] }>("update_pipeline.json").cases;
  it.each(cases)("$name", (c) => {
    const received = weights(c.received);
    const trained = weights(c.trained);
    const metrics: RawMetrics = Object.fromEntries(Object.entries(c.metrics).map(([k, v]) => [k, num(v)]));
    const run = (): ReturnType<typeof prepareUpdate> => prepareUpdate(received, trained, c.num_samples, metrics, c.privacy);
    if ("error" in c.expected) {
      expect(run).toThrow(SessionError);
      expect(run).toThrow(c.expected.error === "not_finite" ? /NaN or infinite/ : /sample count/);
      return;
    }
    const out = run();
    expect(out.numSamples).toBe(c.expected.num_samples);
    expect(out.metrics).toEqual(c.expected.metrics);
    expect([...out.droppedMetrics].sort()).toEqual([...c.expected.dropped_metrics].sort());
    expect(out.clipped).toBe(c.expected.clipped);
    const want = weights(c.expected.weights);
    expect(out.weights.names).toEqual(want.names);
    out.weights.values.forEach((values, i) => {
      values.forEach((v, j) => expect(Math.abs(v - (want.values[i]![j] as number))).toBeLessThanOrEqual(1e-6));
    });
    if (c.privacy !== null && c.expected.clipped) {
      expect(l2Norm(subtract(out.weights, received))).toBeCloseTo(c.privacy.clipping_radius, 5);
    }
  });
});

describe("the wait for others in a task document", () => {
  const doc = (training: Record<string, unknown>): unknown => ({
    id: "t",
    display: { title: "T" },
    training: { data_type: "tabular", input_columns: [{ name: "a" }, { name: "b" }], output_column: "y", ...training },
    model: { input_shape: [2], layers: [{ type: "dense", units: 1 }], loss: "mse" },
  });
  it("defaults to 600 s, or the round deadline when that is longer (as in Python)", () => {
    expect(parseTask(doc({})).training.wait_for_others_s).toBe(600);
    expect(parseTask(doc({ round_deadline_s: 900 })).training.wait_for_others_s).toBe(900);
    expect(parseTask(doc({ round_deadline_s: 900, wait_for_others_s: 1200 })).training.wait_for_others_s).toBe(1200);
  });
  it("must be a finite number of seconds", () => {
    expect(() => parseTask(doc({ wait_for_others_s: null }))).toThrow(/wait_for_others_s/);
    expect(() => parseTask(doc({ round_deadline_s: -1 }))).toThrow(/round_deadline_s/);
  });
});

describe("a task's aggregation (Python's AggregationConfig)", () => {
  it("fills a rule's defaults, from a rule name or a partial object, as Python does", () => {
    expect(aggregationOf("median")).toEqual({ rule: "median", bucket_size: 1 });
    expect(aggregationOf({ rule: "mean" })).toEqual({ rule: "mean", max_share: 0.5 });
    expect(aggregationOf({ rule: "trimmed_mean", beta: 0.2 })).toEqual({ rule: "trimmed_mean", beta: 0.2, bucket_size: 1 });
    expect(aggregationOf({ rule: "krum", f: 2 })).toEqual({ rule: "krum", f: 2, bucket_size: 1 });
    expect(aggregationOf({ rule: "multi_krum", m: 3 })).toEqual({ rule: "multi_krum", f: 1, m: 3, bucket_size: 1 });
    expect(aggregationOf("centered_clipping")).toEqual({
      rule: "centered_clipping",
      tau: null,
      iterations: 1,
      momentum: 0.5,
      bucket_size: 1,
    });
    expect(aggregationOf("cosine_trust")).toEqual({ rule: "cosine_trust", min_cosine: 0, momentum: 0.9 });
    expect(aggregationOf({ rule: "cosine_trust", min_cosine: 0.2 })).toEqual({ rule: "cosine_trust", min_cosine: 0.2, momentum: 0.9 });
    expect(() => aggregationOf("geometric_median")).toThrow(/unknown rule "geometric_median"/);
    expect(() => aggregationOf({ max_share: 1 })).toThrow(/unknown rule/);
  });
});

describe("a text task's model and tokenizer (Python's Task._check_text)", () => {
  const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as {
    task: { id: string; model: { layers: Record<string, unknown>[] } };
  }[];
  const shakespeare = catalog.find((e) => e.task.id === "shakespeare")!.task;
  it("takes the catalog's text task, and refuses a token embedding of another vocabulary", () => {
    expect(parseTask(shakespeare).training.vocab_size).toBe(shakespeare.model.layers[0]!["vocab_size"]);
    const smaller = structuredClone(shakespeare);
    smaller.model.layers[0]!["vocab_size"] = 300;
    expect(() => parseTask(smaller)).toThrow(/token_embedding has 300 tokens but the task's tokenizer has 2048: they must be equal/);
  });
});
