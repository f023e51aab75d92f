/**
 * A training check for a backend TF.js offers but disco's tests cannot reach (WebGPU: no GPU
 * here): the gradients of a tiny convolutional network — convolution, max pooling, dense layer,
 * softmax cross-entropy — on the current backend against the cpu backend's. A missing kernel or a
 * wrong driver shows up here, at start-up, rather than in the middle of a training round.
 */
import * as tf from "@tensorflow/tfjs";

/** Largest tolerated gradient error, relative to the gradient's largest value. */
export const CHECK_RTOL = 1e-3;

/** Deterministic values in [-1, 1) (a linear congruential generator). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

/** The gradients of the check network with respect to its input and weights. */
async function gradients(): Promise<Float32Array[]> {
  const x = tf.tensor4d(values(2 * 6 * 6 * 2, 1), [2, 6, 6, 2]);
  const w = tf.tensor4d(values(3 * 3 * 2 * 4, 2), [3, 3, 2, 4]);
  const d = tf.tensor2d(values(9 * 4 * 3, 3), [9 * 4, 3]);
  const labels = tf.oneHot(tf.tensor1d([0, 2], "int32"), 3);
  const loss = (xv: tf.Tensor, wv: tf.Tensor, dv: tf.Tensor): tf.Scalar => {
    const h = tf.relu(tf.conv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, 1, "same"));
    const pooled = tf.maxPool(h, 2, 2, "valid").reshape([2, 9 * 4]);
    return tf.losses.softmaxCrossEntropy(labels, tf.matMul(pooled, dv as tf.Tensor2D));
  };
  const grads = tf.grads(loss)([x, w, d]);
  try {
    return await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array));
  } finally {
    tf.dispose([x, w, d, labels, ...grads]);
  }
}

/** null when the current backend's gradients match the cpu backend's, else what is wrong. */
export async function trainingCheck(): Promise<string | null> {
  const name = tf.getBackend();
  let got: Float32Array[];
  try {
    got = await gradients();
  } catch (error) {
    return `training fails (${error instanceof Error ? error.message : String(error)})`;
  }
  await tf.setBackend("cpu");
  try {
    const want = await gradients();
    for (const [k, expected] of want.entries()) {
      const actual = got[k] ?? new Float32Array(0);
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
      const worst = expected.reduce((m, v, i) => Math.max(m, Math.abs(v - (actual[i] ?? Number.NaN))), 0);
      if (!(worst <= CHECK_RTOL * scale)) return `gradients differ from the cpu backend's (relative error ${(worst / scale).toExponential(1)})`;
    }
    return null;
  } finally {
    await tf.setBackend(name);
  }
}
