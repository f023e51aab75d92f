/**
 * The GPT layers in TF.js: canonical weights, shapes, the causal mask, validation errors, and
 * training on token windows. Numerical agreement with PyTorch is tests/web/test_conformance.py's.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkModel } from "../src/core/models/validate";
import { ModelError, buildModel, isTokenModel, setWeights, takesTokens, weightSlots } from "../src/core/models";
import type { ModelSpec } from "../src/core/task";
import { partValidation } from "../src/core/schedule";
import { windowsAt } from "../src/core/training/tokens";
import { Trainer, evaluate, predict, type TrainingEvent } from "../src/core/training/trainer";
import { Weights } from "../src/core/weights";

const VOCAB = 11;
const CONTEXT = 6;
const WIDTH = 8;

function gpt(blocks = 2, dropout = 0): ModelSpec {
  return {
    input_shape: [CONTEXT],
    layers: [
      { type: "token_embedding", vocab_size: VOCAB, units: WIDTH },
      ...Array.from({ length: blocks }, () => ({ type: "transformer_block" as const, heads: 2, dropout })),
      { type: "layer_norm" },
      { type: "tied_output" },
    ],
    loss: "next_token_crossentropy",
  };
}

/** Deterministic pseudo-random weights for every slot (normal-ish, small). */
function randomWeights(model: tf.LayersModel, spec: ModelSpec, seed: number): Weights {
  const slots = weightSlots(model, spec);
  let state = seed;
  const next = (): number => {
    state = (state * 1664525 + 1013904223) % 2 ** 32;
    return state / 2 ** 32 - 0.5;
  };
  return new Weights(
    slots.map((s) => s.name),
    slots.map((s) => s.shape),
    slots.map((s) => Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => next() * 0.6)),
  );
}

const models: tf.LayersModel[] = [];
function build(spec: ModelSpec, training = {}): tf.LayersModel {
  const model = buildModel(spec, training);
  models.push(model);
  return model;
}

beforeAll(async () => {
  await tf.setBackend("cpu");
});

afterEach(() => {
  for (const m of models.splice(0)) m.dispose();
});

describe("GPT layers", () => {
  it("have the canonical weights, in Python's order", () => {
    const spec = gpt(1);
    const slots = weightSlots(build(spec), spec);
    expect(slots.map((s) => [s.name, s.shape])).toEqual([
      ["token_embedding_1.tokens", [VOCAB, WIDTH]],
      ["token_embedding_1.positions", [CONTEXT, WIDTH]],
      ["transformer_block_1.ln1_gamma", [WIDTH]],
      ["transformer_block_1.ln1_beta", [WIDTH]],
      ["transformer_block_1.qkv_kernel", [WIDTH, 3 * WIDTH]],
      ["transformer_block_1.qkv_bias", [3 * WIDTH]],
      ["transformer_block_1.attn_proj_kernel", [WIDTH, WIDTH]],
      ["transformer_block_1.attn_proj_bias", [WIDTH]],
      ["transformer_block_1.ln2_gamma", [WIDTH]],
      ["transformer_block_1.ln2_beta", [WIDTH]],
      ["transformer_block_1.fc_kernel", [WIDTH, 4 * WIDTH]],
      ["transformer_block_1.fc_bias", [4 * WIDTH]],
      ["transformer_block_1.mlp_proj_kernel", [4 * WIDTH, WIDTH]],
      ["transformer_block_1.mlp_proj_bias", [WIDTH]],
      ["layer_norm_1.gamma", [WIDTH]],
      ["layer_norm_1.beta", [WIDTH]],
    ]);
    expect(slots.every((s) => s.trainable)).toBe(true);
  });

  it("give logits (B, T, V) for any length up to the context, and probabilities from predict", async () => {
    const spec = gpt();
    const model = build(spec);
    setWeights(model, spec, randomWeights(model, spec, 1));
    expect(takesTokens(spec)).toBe(true);
    expect(isTokenModel(model)).toBe(true);
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], [2, CONTEXT], "int32");
    const short = tf.tensor2d([[1, 2, 3]], [1, 3], "int32");
    try {
      const logits = model.predict(x) as tf.Tensor;
      expect(logits.shape).toEqual([2, CONTEXT, VOCAB]);
      const shortLogits = model.predict(short) as tf.Tensor;
      expect(shortLogits.shape).toEqual([1, 3, VOCAB]);
      // the first three positions do not depend on what follows them
      const full = logits.slice([0, 0, 0], [1, 3, VOCAB]).dataSync() as Float32Array;
      const gap = Math.max(...Array.from(shortLogits.dataSync()).map((v, i) => Math.abs(v - (full[i] as number))));
      expect(gap).toBeLessThan(1e-5);
      const probs = await predict(model, x);
      for (let row = 0; row < 2 * CONTEXT; row++) {
        const sum = probs.slice(row * VOCAB, (row + 1) * VOCAB).reduce((a, b) => a + b, 0);
        expect(sum).toBeCloseTo(1, 5);
      }
      tf.dispose([logits, shortLogits]);
    } finally {
      tf.dispose([x, short]);
    }
  });

  it("are causal: changing a later token leaves earlier logits unchanged", () => {
    const spec = gpt();
    const model = build(spec);
    setWeights(model, spec, randomWeights(model, spec, 2));
    const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, CONTEXT], "int32");
    const b = tf.tensor2d([[1, 2, 3, 9, 5, 6]], [1, CONTEXT], "int32");
    const [la, lb] = [a, b].map((x) => (model.predict(x) as tf.Tensor).arraySync() as number[][][]);
    const diff = (p: number): number => Math.max(...(la?.[0]?.[p] ?? []).map((v, k) => Math.abs(v - (lb?.[0]?.[p]?.[k] ?? 0))));
    for (const p of [0, 1, 2]) expect(diff(p)).toBeLessThan(1e-6);
    for (const p of [3, 4, 5]) expect(diff(p)).toBeGreaterThan(1e-3);
    tf.dispose([a, b]);
  });

  it("refuse GPT layers out of place, with the layer named", () => {
    const spec = gpt(1);
    const [emb, block, norm, head] = spec.layers as ModelSpec["layers"];
    const bad = (layers: ModelSpec["layers"], loss: ModelSpec["loss"] = "next_token_crossentropy"): (() => void) =>
      () => build({ input_shape: [CONTEXT], layers, loss });
    expect(bad([block, emb, norm, head] as ModelSpec["layers"])).toThrow(ModelError);
    expect(bad([block, emb, norm, head] as ModelSpec["layers"])).toThrow(/token_embedding_1.*first layer/);
    expect(bad([emb, head, norm] as ModelSpec["layers"])).toThrow(/tied_output must be the last layer/);
    expect(bad([emb, block, norm, head] as ModelSpec["layers"], "categorical_crossentropy")).toThrow(/next_token_crossentropy/);
    expect(() => build({ input_shape: [5], layers: [{ type: "layer_norm" }, { type: "dense", units: 2, activation: "softmax" }], loss: "categorical_crossentropy" }))
      .toThrow(/layer_norm needs a \(positions, features\) input/);
  });

  it("pass the model-file check, whose errors name bad settings", () => {
    const doc = { format: "disco.model/1", ...gpt() };
    expect(checkModel(doc)).toEqual([]);
    expect(checkModel({ ...doc, loss: "categorical_crossentropy" }).join("\n")).toMatch(/next_token_crossentropy goes with/);
    expect(checkModel({ ...doc, layers: [...doc.layers].reverse() }).join("\n")).toMatch(/token_embedding must be the first layer/);
    const problems = checkModel({ ...doc, layers: [{ type: "token_embedding", units: 8 }, { type: "transformer_block", heads: 0 }, { type: "tied_output" }] });
    expect(problems.join("\n")).toMatch(/vocab_size is missing/);
    expect(problems.join("\n")).toMatch(/heads must be a whole number above 0/);
  });
});

describe("training a GPT on token windows", () => {
  it("learns a repeating text, reporting loss, perplexity and token accuracy", async () => {
    const spec = gpt(1);
    const training = { optimizer: "adamw" as const, learning_rate: 0.01, weight_decay: 0.1, gradient_clip: 1 };
    const model = build(spec, training);
    setWeights(model, spec, randomWeights(model, spec, 3));
    const stream = Array.from({ length: 7 * 40 }, (_, i) => (i % 7) + 1);
    const windows: number[] = [];
    for (let s = 0; s + CONTEXT + 1 <= stream.length; s += CONTEXT) windows.push(...stream.slice(s, s + CONTEXT + 1));
    const tokens = Int32Array.from(windows);
    const events: TrainingEvent[] = [];
    const task = { training: { epochs_per_round: 8, batch_size: 8 }, model: spec };
    const trainer = new Trainer(model, task, (e) => events.push(e), { lossEveryMs: 0 });
    const history = await trainer.trainRound(1, { tokens, context: CONTEXT }, { tokens: tokens.slice(0, 3 * (CONTEXT + 1)), context: CONTEXT });
    const first = history[0];
    const last = history[history.length - 1];
    expect(history).toHaveLength(8);
    expect(last?.train_loss).toBeLessThan((first?.train_loss ?? 0) / 2);
    expect(last?.train_perplexity).toBeCloseTo(Math.exp(last?.train_loss ?? 0), 4);
    expect(last?.val_accuracy).toBeGreaterThan(0.8);
    const again = await evaluate(model, { tokens: tokens.slice(0, 3 * (CONTEXT + 1)), context: CONTEXT });
    expect(again.loss).toBeCloseTo(last?.val_loss ?? 0, 4);
    // a later round leaks nothing (the optimizer's moments exist since the first step)
    const before = tf.memory().numTensors;
    await trainer.trainRound(2, { tokens, context: CONTEXT }, undefined, 1);
    expect(tf.memory().numTensors).toBe(before);
    expect(events.filter((e) => e.kind === "batch_end" && e.loss !== undefined).length).toBeGreaterThan(0);
    expect(events[events.length - 1]?.kind).toBe("round_end");
  });

  it("trains a part of an epoch on token windows: its batches, evaluated on its share", async () => {
    const spec = gpt(1);
    const model = build(spec);
    const tokens = Int32Array.from({ length: 45 * (CONTEXT + 1) }, (_, i) => (i % 7) + 1); // 45 windows
    const val = { tokens: tokens.slice(0, 10 * (CONTEXT + 1)), context: CONTEXT };
    const events: TrainingEvent[] = [];
    const task = { training: { epochs_per_round: 1, batch_size: 8 }, model: spec };
    const trainer = new Trainer(model, task, (e) => events.push(e), { lossEveryMs: 0 });
    const part = { epoch: 1, index: 2, count: 4 }; // 6 batches: part 2 is batches 1 and 2
    const history = await trainer.trainRound(5, { tokens, context: CONTEXT }, val, undefined, part);
    const batches = events.filter((e) => e.kind === "batch_end");
    expect(batches.map((e) => [e.batch, e.batches])).toEqual([[1, 2], [2, 2]]);
    expect(history).toHaveLength(1);
    const share = windowsAt(val, partValidation(part, 10)); // windows 1, 5 and 9
    expect(share.tokens.length).toBe(3 * (CONTEXT + 1));
    const again = await evaluate(model, share);
    expect(history[0]?.val_loss).toBeCloseTo(again.loss, 5);
  });

  it("refuses windows cut for another context", async () => {
    const spec = gpt(1);
    const model = build(spec);
    const trainer = new Trainer(model, { training: { epochs_per_round: 1, batch_size: 4 }, model: spec });
    await expect(trainer.trainRound(1, { tokens: new Int32Array(10), context: 4 })).rejects.toThrow(/context of 4 tokens; the model reads 6/);
    await expect(evaluate(model, { tokens: new Int32Array(10), context: 4 })).rejects.toThrow(/the model reads 6/);
    const outside = new Int32Array(2 * (CONTEXT + 1)).fill(VOCAB);
    await expect(trainer.trainRound(1, { tokens: outside, context: CONTEXT })).rejects.toThrow(/token ids must be 0 to 10/);
  });
});
