/**
 * The browser's optimizers: AdamW's decoupled decay (rank ≥ 2 only) and global-norm clipping, by
 * hand on small tensors; tests/web/test_conformance.py checks them against PyTorch.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ADAMW_BETAS, ADAMW_EPSILON, AdamW, ClipByGlobalNorm, makeOptimizer } from "../src/core/training/optim";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

function adamFirstStep(g: number, lr: number): number {
  const [b1, b2] = ADAMW_BETAS;
  const m = ((1 - b1) * g) / (1 - b1);
  const v = ((1 - b2) * g * g) / (1 - b2);
  return (lr * m) / (Math.sqrt(v) + ADAMW_EPSILON);
}

describe("optimizers", () => {
  it("AdamW decays matrices, not vectors, then takes Adam's step", () => {
    const kernel = tf.variable(tf.tensor2d([[1, -2], [3, 0.5]]), true, "k");
    const bias = tf.variable(tf.tensor1d([0.5, -1]), true, "b");
    const opt = new AdamW(0.1, 0.5);
    const gk = [[0.2, -0.1], [0.05, 0.3]];
    const gb = [1, -2];
    opt.applyGradients({ k: tf.tensor2d(gk), b: tf.tensor1d(gb) });
    const k = kernel.arraySync() as number[][];
    const b = bias.arraySync() as number[];
    const k0 = [[1, -2], [3, 0.5]];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        const want = (k0[i]?.[j] as number) * (1 - 0.1 * 0.5) - adamFirstStep(gk[i]?.[j] as number, 0.1);
        expect(k[i]?.[j]).toBeCloseTo(want, 6);
      }
    }
    expect(b[0]).toBeCloseTo(0.5 - adamFirstStep(1, 0.1), 6);
    expect(b[1]).toBeCloseTo(-1 - adamFirstStep(-2, 0.1), 6);
    expect(opt.iterations).toBe(1);
    opt.dispose();
    tf.dispose([kernel, bias]);
  });

  it("clips all gradients together to the global norm, and not below it", () => {
    const w = tf.variable(tf.tensor1d([0, 0]), true, "w");
    const clipped = new ClipByGlobalNorm(tf.train.sgd(1), 1);
    clipped.applyGradients({ w: tf.tensor1d([3, 4]) }); // norm 5: scaled by 1 / (5 + 1e-6)
    const after = w.arraySync() as number[];
    expect(after[0]).toBeCloseTo(-0.6, 5);
    expect(after[1]).toBeCloseTo(-0.8, 5);
    clipped.applyGradients({ w: tf.tensor1d([0.3, 0.4]) }); // norm 0.5: unchanged
    expect((w.arraySync() as number[])[1]).toBeCloseTo(-1.2, 5);
    expect(clipped.iterations).toBe(2);
    clipped.dispose();
    w.dispose();
  });

  it("follows the task's settings", () => {
    expect(makeOptimizer({ optimizer: "adamw", gradient_clip: 1 })).toBeInstanceOf(ClipByGlobalNorm);
    const adamw = makeOptimizer({ optimizer: "adamw", weight_decay: 0.2, learning_rate: 0.01 }) as AdamW;
    expect([adamw.weightDecay, adamw.learningRate]).toEqual([0.2, 0.01]);
    expect(makeOptimizer({})).toBeInstanceOf(tf.AdamOptimizer);
  });
});
