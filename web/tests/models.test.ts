/**
 * The portable model in TF.js: every catalog architecture builds with Python's canonical weight
 * names, shapes and order; weights round-trip; bad specs and weights get clear errors; the
 * trainer emits its events and leaks no tensors.
 *
 * `fixtures/catalog.json` is what Python says about the catalog. Regenerate it with
 *   .venv/bin/python -c "import json, disco.catalog as c; print(json.dumps([{'task':
 *   t.model_dump(mode='json'), 'weights': [{'name': n, 'shape': list(i.shape), 'trainable':
 *   i.trainable} for n, i in t.model.weight_infos()]} for t in c.all_tasks()], indent=1))"
 *   > web/tests/fixtures/catalog.json
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { makeDataset, subset } from "../src/core/data/dataset";
import { WeightsError } from "../src/core/errors";
import { ModelError, buildModel, getWeights, getWeightsAsync, setWeights, weightSlots } from "../src/core/models";
import { type EpochPart, epochPart, partBatches, partValidation, rounds } from "../src/core/schedule";
import { type ModelSpec, type Task, layerNames, parseTask } from "../src/core/task";
import { type TrainingEvent, Trainer, classesFromOutputs, evaluate, partOrder, predict } from "../src/core/training/trainer";
import { Weights } from "../src/core/weights";

interface Entry {
  task: Task;
  weights: { name: string; shape: number[]; trainable: boolean }[];
}
const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as Entry[];

function randomWeights(names: readonly string[], shapes: readonly (readonly number[])[], seed: number): Weights {
  let state = seed;
  const next = (): number => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  return new Weights(names, shapes, shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, next)));
}

beforeAll(async () => {
  await tf.setBackend("cpu");
});

describe.each(catalog.map((e) => [e.task.id, e] as const))("catalog task %s", (_, entry) => {
  it("parses, builds, and has Python's canonical weights in order", () => {
    const task = parseTask(JSON.stringify(entry.task));
    const model = buildModel(task.model, task.training);
    const slots = weightSlots(model, task.model);
    expect(slots.map((s) => s.name)).toEqual(entry.weights.map((w) => w.name));
    expect(slots.map((s) => s.shape)).toEqual(entry.weights.map((w) => w.shape));
    expect(slots.map((s) => s.trainable)).toEqual(entry.weights.map((w) => w.trainable));
    const output = model.outputs[0]?.shape.slice(1);
    if (task.model.loss === "next_token_crossentropy") {
      expect(output?.at(-1)).toBe(task.training.vocab_size); // a score per token of the vocabulary
    } else {
      expect(output).toEqual(
        task.model.loss === "binary_crossentropy" ? [1] : [task.training.labels.length],
      );
    }
    model.dispose();
  });

  it("round-trips weights exactly, by name", async () => {
    const spec = entry.task.model;
    const model = buildModel(spec);
    const w = randomWeights(entry.weights.map((e) => e.name), entry.weights.map((e) => e.shape), 7);
    setWeights(model, spec, w);
    expect(getWeights(model, spec).equals(w)).toBe(true);
    expect((await getWeightsAsync(model, spec)).equals(w)).toBe(true);
    // any order: matched by name
    const reversed = new Weights([...w.names].reverse(), [...w.shapes].reverse(), [...w.values].reverse());
    setWeights(model, spec, reversed);
    expect(getWeights(model, spec).equals(w)).toBe(true);
    model.dispose();
  });
});

describe("errors", () => {
  const spec = catalog[0]?.task.model as ModelSpec;
  const names = catalog[0]?.weights.map((w) => w.name) ?? [];
  const shapes = catalog[0]?.weights.map((w) => w.shape) ?? [];

  it("setWeights names the tensor and changes nothing on a bad input", () => {
    const model = buildModel(spec);
    const good = randomWeights(names, shapes, 1);
    setWeights(model, spec, good);
    const badShapes = shapes.map((s, i) => (i === 1 ? [s[0] as number + 1] : s));
    expect(() => setWeights(model, spec, randomWeights(names, badShapes, 2))).toThrow(
      new WeightsError("weights: tensor 'dense_1.bias' has shape [125], the model expects [124]"),
    );
    expect(() => setWeights(model, spec, randomWeights(names.slice(1), shapes.slice(1), 2))).toThrow(
      "missing ['dense_1.kernel'], unexpected none",
    );
    const nan = randomWeights(names, shapes, 3);
    (nan.values[2] as Float32Array)[0] = Number.NaN;
    expect(() => setWeights(model, spec, nan)).toThrow("tensor 'dense_2.kernel' contains NaN or infinite values");
    expect(getWeights(model, spec).equals(good)).toBe(true);
    model.dispose();
  });

  it("buildModel explains specs TF.js cannot realise as disco means them", () => {
    const conv: ModelSpec = {
      input_shape: [8, 8, 1],
      layers: [{ type: "conv2d", filters: 2, kernel_size: 3 }, { type: "dense", units: 2, activation: "softmax" }],
      loss: "categorical_crossentropy",
    };
    expect(() => buildModel(conv)).toThrow(ModelError);
    expect(() => buildModel(conv)).toThrow("layer 'dense_1': dense needs a 1-D input but gets shape [6, 6, 2]");
    const big: ModelSpec = { ...conv, layers: [{ type: "max_pool2d", pool_size: 9 }] };
    expect(() => buildModel(big)).toThrow("layer 'max_pool2d_1'");
    const unknown = { ...conv, layers: [{ type: "lstm" }] } as unknown as ModelSpec;
    expect(() => buildModel(unknown)).toThrow("unknown layer type 'lstm'");
    expect(() => parseTask({ ...catalog[0]?.task, model: unknown })).toThrow("unknown layer type");
  });

  it("fills layer names like Python and counts rounds", () => {
    const spec: ModelSpec = {
      input_shape: [4],
      layers: [{ type: "dense", units: 3 }, { type: "dense", units: 2, name: "head" }, { type: "dense", units: 1 }],
      loss: "mse",
    };
    expect(layerNames(spec)).toEqual(["dense_1", "head", "dense_3"]);
    expect(weightSlots(buildModel(spec), spec).map((s) => s.name)).toEqual([
      "dense_1.kernel", "dense_1.bias", "head.kernel", "head.bias", "dense_3.kernel", "dense_3.bias",
    ]);
    expect(rounds({ epochs: 20, epochs_per_round: 2 })).toBe(10);
    expect(rounds({ epochs: 5, epochs_per_round: 2 })).toBe(3);
    expect(rounds({ epochs: 3, epochs_per_round: 1, rounds_per_epoch: 4 })).toBe(12);
  });
});

describe("Trainer", () => {
  const entry = catalog.find((e) => e.task.id === "titanic") as Entry;
  const task = entry.task;
  const n = 70;
  let seed = 3;
  const rand = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const x = Float32Array.from({ length: n * 6 }, rand);
  const y = Int32Array.from({ length: n }, (_, i) => ((x[6 * i] as number) + (x[6 * i + 2] as number) > 0 ? 1 : 0));
  const data = makeDataset(x, y, [6]);

  it("runs epochs_per_round epochs, emits events and learns, without leaking tensors", async () => {
    const baseline = tf.memory().numTensors;
    const model = buildModel(task.model, { ...task.training, learning_rate: 0.01 });
    const events: TrainingEvent[] = [];
    const trainer = new Trainer(model, task, (e) => events.push(e), { lossEveryMs: 0 });
    const before = await evaluate(model, data);
    await trainer.trainRound(1, data, data); // warm-up: the optimizer creates its slots
    const tensors = tf.memory().numTensors;
    const history = await trainer.trainRound(2, data, data);
    expect(tf.memory().numTensors).toBe(tensors);

    expect(history.map((m) => [m.round, m.epoch])).toEqual([[2, 1], [2, 2]]);
    const kinds = events.filter((e) => e.round === 2).map((e) => e.kind);
    const batches = Math.ceil(n / task.training.batch_size);
    expect(kinds).toEqual([
      "round_start", ...Array<string>(batches).fill("batch_end"), "epoch_end",
      ...Array<string>(batches).fill("batch_end"), "epoch_end", "round_end",
    ]);
    const batchEvents = events.filter((e) => e.kind === "batch_end" && e.round === 2);
    expect(batchEvents.map((e) => e.batch).slice(0, batches)).toEqual([1, 2, 3]);
    expect(batchEvents.every((e) => e.batches === batches && typeof e.loss === "number")).toBe(true);
    const last = history[1];
    expect(last?.train_accuracy).toBeGreaterThan(0.5);
    expect(last?.val_loss).toBeLessThan(before.loss);
    expect(events.at(-1)?.metrics).toEqual(last);

    const outputs = await predict(model, data);
    expect(outputs.length).toBe(n);
    expect(classesFromOutputs(outputs, n).length).toBe(n);
    expect(tf.memory().numTensors).toBe(tensors);
    model.dispose(); // with its optimizer's state
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it("throttles batch losses and refuses empty data", async () => {
    const model = buildModel(task.model, task.training);
    const events: TrainingEvent[] = [];
    const trainer = new Trainer(model, task, (e) => events.push(e), { lossEveryMs: 60_000 });
    await trainer.trainRound(1, data);
    const losses = events.filter((e) => e.kind === "batch_end" && e.loss !== undefined);
    expect(losses.length).toBe(1); // only the first batch of the round carries one
    await expect(trainer.trainRound(2, makeDataset(new Float32Array(), new Int32Array(), [6]))).rejects.toThrow(
      "no training data",
    );
    model.dispose();
  });

  it("trains a part of an epoch: its batches of the epoch's one order, evaluated on its share", async () => {
    const plan = { epochs: 1, epochs_per_round: 1, rounds_per_epoch: 3 };
    const batchSize = task.training.batch_size;
    const parts = [1, 2, 3].map((k) => epochPart(plan, k) as EpochPart);
    // the parts' samples: every sample once, in one shuffled order
    const order = parts.flatMap((p) => Array.from(partOrder(p, n, batchSize, 7)));
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(order).not.toEqual(Array.from({ length: n }, (_, i) => i));
    const otherOrder = Array.from(partOrder(parts[0] as EpochPart, n, batchSize, 8));
    expect(otherOrder).not.toEqual(order.slice(0, otherOrder.length));

    const tensors = tf.memory().numTensors;
    const model = buildModel(task.model, task.training);
    const events: TrainingEvent[] = [];
    const trainer = new Trainer(model, task, (e) => events.push(e), { lossEveryMs: 0 });
    const val = makeDataset(data.x.slice(0, 20 * 6), data.y.slice(0, 20), [6]);
    const part = parts[1] as EpochPart;
    const history = await trainer.trainRound(2, data, val, undefined, part);
    const [start, stop] = partBatches(part, Math.ceil(n / batchSize));
    const batches = events.filter((e) => e.kind === "batch_end");
    expect(batches.length).toBe(stop - start);
    expect(batches.every((e) => e.batches === stop - start)).toBe(true);
    expect(history).toHaveLength(1);
    const share = subset(val, partValidation(part, val.n));
    expect(share.n).toBe(7); // samples 1, 4, 7, … 19 of 20
    const again = await evaluate(model, share);
    expect(history[0]?.val_loss).toBeCloseTo(again.loss, 5);
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensors);
  });
});
