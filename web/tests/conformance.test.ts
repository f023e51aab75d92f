/**
 * Conformance with disco's PyTorch engine: the same weights and batch give the same loss, the
 * same weights after one optimizer step (batch-norm moving statistics included) and the same
 * inference outputs afterwards.
 *
 * The fixtures come from `tests/web/test_conformance.py` (pytest), which runs this file with
 * DISCO_CONFORMANCE_DIR set; without it the suite is skipped. Measured errors go to
 * `$DISCO_CONFORMANCE_DIR/report.json`. Both the cpu backend and the wasm backend (the browser
 * default) are checked. A GPT case (token ids in, next-token loss, AdamW with clipping) takes its
 * step with `tokenStep`, the trainer's own, instead of `trainOnBatch`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerTrainingKernels } from "../src/core/backend";
import { buildModel, getWeights, nextTokenLoss, setWeights, weightSlots } from "../src/core/models";
import type { ModelSpec } from "../src/core/task";
import { ADAMW_EPSILON } from "../src/core/training/optim";
import { tokenStep } from "../src/core/training/tokens";
import { Weights } from "../src/core/weights";

interface Case {
  name: string;
  spec: ModelSpec;
  optimizer: "adam" | "sgd" | "adamw";
  learning_rate: number;
  weight_decay: number;
  gradient_clip: number | null;
  /** The factor clipping scaled PyTorch's gradients by (1: no clipping). */
  clip_scale: number;
  n: number;
  loss: number;
  weights: { name: string; shape: number[]; trainable: boolean }[];
  output_shape: number[];
}

interface Report {
  name: string;
  backend: string;
  loss_torch: number;
  loss_tfjs: number;
  loss_rel_error: number;
  /** The tensor with the largest error relative to its scale. */
  worst_weight: string;
  /** max |tfjs - torch| over that tensor. */
  worst_weight_abs_error: number;
  /** that error divided by the tensor's scale, max(|torch value|). */
  worst_weight_rel_error: number;
  /** The trainable tensor whose gradient differs most, relative to the gradient's scale. */
  worst_gradient: string;
  /** max |tfjs - torch| / max |torch| over that gradient. */
  worst_gradient_rel_error: number;
  /** max over all values of error / allowed error (see `allowed`); at most 1 to pass. */
  worst_error_ratio: number;
  output_abs_error: number;
  passed: boolean;
}

const LOSS_RTOL = 1e-4;
/** Gradient tolerance, relative to the gradient tensor's scale. */
const GRAD_RTOL = 1e-4;
/** Weight tolerance, relative to the tensor's scale. */
const WEIGHT_RTOL = 1e-5;
/** float32 noise of a gradient value, relative to the largest gradient of its tensor. */
const GRAD_NOISE = 1e-6;
const ADAM_EPSILON = 1e-7;
const OUTPUT_ATOL = 1e-5;

const dir = process.env["DISCO_CONFORMANCE_DIR"];
const cases: Case[] = dir ? (JSON.parse(readFileSync(join(dir, "cases.json"), "utf8")) as Case[]) : [];
const reports: Report[] = [];

function f32(file: string): Float32Array {
  const bytes = readFileSync(join(dir ?? "", file));
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function maxAbs(values: Float32Array): number {
  return values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/**
 * Allowed error of each value after the step: WEIGHT_RTOL of the tensor's scale, plus the
 * gradient's float32 noise carried through the update. Adam's first step is
 * `lr * g / (|g| + eps)`, whose slope `lr * eps / (|g| + eps)^2` turns the noise of a gradient
 * near eps (1e-7) into a visible change: engines summing in another order legitimately differ
 * there, and only there.
 */
function allowed(c: Case, want: Float32Array, grad: Float32Array | undefined): Float32Array {
  const base = WEIGHT_RTOL * Math.max(maxAbs(want), 1e-12);
  const out = new Float32Array(want.length).fill(base);
  if (grad === undefined) return out;
  const scale = c.clip_scale;
  const noise = GRAD_NOISE * maxAbs(grad) * scale;
  const eps = c.optimizer === "adamw" ? ADAMW_EPSILON : ADAM_EPSILON;
  for (let i = 0; i < out.length; i++) {
    const g = Math.abs(grad[i] as number) * scale;
    const slope = c.optimizer === "sgd" ? 1 : eps / (g + eps) ** 2;
    out[i] = base + c.learning_rate * slope * noise;
  }
  return out;
}

/** TF.js's gradient of the compiled loss in training mode, by canonical name. */
function tfjsGradients(model: tf.LayersModel, spec: ModelSpec, x: tf.Tensor, y: tf.Tensor): Map<string, Float32Array> {
  const slots = weightSlots(model, spec).filter((s) => s.trainable);
  const lossFn = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => {
    if (spec.loss === "binary_crossentropy") return tf.metrics.binaryCrossentropy(yTrue, yPred);
    if (spec.loss === "mse") return tf.metrics.meanSquaredError(yTrue, yPred);
    if (spec.loss === "next_token_crossentropy") return nextTokenLoss(yTrue, yPred);
    const classes = yPred.shape[yPred.shape.length - 1] ?? 0;
    return tf.metrics.categoricalCrossentropy(tf.oneHot(tf.cast(tf.reshape(yTrue, [-1]), "int32"), classes), yPred);
  };
  const { grads, value } = tf.variableGrads(
    () => tf.mean(lossFn(y, model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
    slots.map((s) => s.variable.read() as tf.Variable),
  );
  const out = new Map<string, Float32Array>();
  for (const s of slots) {
    const grad = grads[(s.variable.read() as tf.Variable).name];
    out.set(s.name, grad ? (grad.dataSync() as Float32Array).slice() : new Float32Array());
  }
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

/** The tensor of `want` that `got` matches worst: max |got - want| / max |want|. */
function worstTensor(got: (name: string) => Float32Array, want: Weights): { name: string; abs: number; rel: number } {
  let worst = { name: "", abs: 0, rel: -1 };
  want.names.forEach((name, i) => {
    const w = want.values[i] as Float32Array;
    const g = got(name);
    const abs = g.length === w.length ? maxDiff(g, w) : Number.POSITIVE_INFINITY;
    const rel = abs / Math.max(maxAbs(w), 1e-12);
    if (rel > worst.rel) worst = { name, abs, rel };
  });
  return worst;
}

async function runCase(c: Case, backend: string): Promise<Report> {
  const names = c.weights.map((w) => w.name);
  const shapes = c.weights.map((w) => w.shape);
  const trainable = c.weights.filter((w) => w.trainable);
  const start = Weights.fromFlat(names, shapes, f32(`${c.name}.init.f32`));
  const expected = Weights.fromFlat(names, shapes, f32(`${c.name}.after.f32`));
  const torchGrads = Weights.fromFlat(trainable.map((w) => w.name), trainable.map((w) => w.shape), f32(`${c.name}.grad.f32`));
  const tokens = c.spec.loss === "next_token_crossentropy";
  const ySize = c.spec.loss === "mse" ? c.output_shape.slice(1) : tokens ? c.spec.input_shape : [1];
  const x = tf.tensor(f32(`${c.name}.x.f32`), [c.n, ...c.spec.input_shape], tokens ? "int32" : "float32");
  const y = tf.tensor(f32(`${c.name}.y.f32`), [c.n, ...ySize], tokens ? "int32" : "float32");
  const model = buildModel(c.spec, {
    optimizer: c.optimizer, learning_rate: c.learning_rate, weight_decay: c.weight_decay, gradient_clip: c.gradient_clip,
  });
  try {
    setWeights(model, c.spec, start);
    const grads = tfjsGradients(model, c.spec, x, y);
    setWeights(model, c.spec, start); // the gradient pass moved the batch-norm statistics
    let loss: number;
    if (tokens) {
      const step = tokenStep(model, x, y);
      loss = (step.loss.dataSync() as Float32Array)[0] as number;
      tf.dispose([step.loss, step.correct]);
    } else {
      const result = await model.trainOnBatch(x, y);
      loss = Array.isArray(result) ? (result[0] as number) : result;
    }
    const after = getWeights(model, c.spec);
    writeFileSync(join(dir ?? "", `${c.name}.${backend}.f32`), after.flatten()); // for debugging
    const outputs = tf.tidy(() => {
      const out = model.predict(x) as tf.Tensor;
      return (tokens ? tf.softmax(out) : out).dataSync() as Float32Array;
    });

    const worstGrad = worstTensor((n) => grads.get(n) ?? new Float32Array(), torchGrads);
    const worst = worstTensor((n) => after.get(n), expected);
    let ratio = 0;
    expected.names.forEach((name, i) => {
      const want = expected.values[i] as Float32Array;
      const got = after.get(name);
      const bound = allowed(c, want, torchGrads.has(name) ? torchGrads.get(name) : undefined);
      for (let k = 0; k < want.length; k++) {
        ratio = Math.max(ratio, Math.abs((got[k] as number) - (want[k] as number)) / (bound[k] as number));
      }
    });
    const lossRel = Math.abs(loss - c.loss) / Math.abs(c.loss);
    const outputError = maxDiff(outputs, f32(`${c.name}.out.f32`));
    return {
      name: c.name,
      backend,
      loss_torch: c.loss,
      loss_tfjs: loss,
      loss_rel_error: lossRel,
      worst_gradient: worstGrad.name,
      worst_gradient_rel_error: worstGrad.rel,
      worst_weight: worst.name,
      worst_weight_abs_error: worst.abs,
      worst_weight_rel_error: worst.rel,
      worst_error_ratio: ratio,
      output_abs_error: outputError,
      passed: lossRel <= LOSS_RTOL && worstGrad.rel <= GRAD_RTOL && ratio <= 1 && outputError <= OUTPUT_ATOL,
    };
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
}

describe.skipIf(!dir)("TF.js and PyTorch take the same training step", () => {
  afterAll(() => {
    if (dir) writeFileSync(join(dir, "report.json"), JSON.stringify(reports, null, 1));
    console.table(
      reports.map((r) => ({
        case: r.name,
        backend: r.backend,
        "loss rel err": r.loss_rel_error.toExponential(2),
        "grad rel err": r.worst_gradient_rel_error.toExponential(2),
        "worst weight": r.worst_weight,
        "abs err": r.worst_weight_abs_error.toExponential(2),
        "rel err": r.worst_weight_rel_error.toExponential(2),
        "err/allowed": r.worst_error_ratio.toExponential(2),
        "output err": r.output_abs_error.toExponential(2),
      })),
    );
  });

  describe.each(["cpu", "wasm"])("on the %s backend", (backend) => {
    beforeAll(async () => {
      registerTrainingKernels(); // what initBackend does
      expect(await tf.setBackend(backend)).toBe(true);
    });

    it.each(cases.map((c) => [c.name, c] as const))("%s", async (_, c) => {
      const r = await runCase(c, backend);
      reports.push(r);
      expect(r.loss_rel_error).toBeLessThanOrEqual(LOSS_RTOL);
      expect(r.worst_gradient_rel_error, `gradient of ${r.worst_gradient}`).toBeLessThanOrEqual(GRAD_RTOL);
      expect(r.worst_error_ratio, `error / allowed error; worst tensor ${r.worst_weight}`).toBeLessThanOrEqual(1);
      expect(r.output_abs_error).toBeLessThanOrEqual(OUTPUT_ATOL);
    });
  });
});
