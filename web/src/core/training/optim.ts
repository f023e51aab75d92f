/**
 * The task's optimizer in TF.js, the same rules as Python's `disco.training.optim`:
 *
 * - `adam`: Keras's Adam (betas 0.9, 0.999, epsilon 1e-7), TF.js's own;
 * - `sgd`: plain gradient descent, TF.js's own;
 * - `adamw`: `AdamW` below, one step equal to `torch.optim.AdamW`'s (betas 0.9, 0.95, epsilon
 *   1e-8): tensors of rank 2 and more (kernels, embeddings) are first multiplied by
 *   `1 - lr * weight_decay`; biases and normalisation vectors are not decayed.
 *
 * With `gradient_clip`, any of them is wrapped in `ClipByGlobalNorm`: when the global L2 norm of
 * a step's gradients exceeds it, all are scaled by `gradient_clip / (norm + 1e-6)`, as
 * `torch.nn.utils.clip_grad_norm_` does. Both are `tf.Optimizer`s, so `model.fit` and
 * `optimizer.minimize` use them unchanged.
 */
import * as tf from "@tensorflow/tfjs";
import type { TrainingInfo } from "../task";

/** Optimizer settings of a task (a subset of `TrainingInfo`). */
export type OptimizerInfo = Partial<Pick<TrainingInfo, "optimizer" | "learning_rate" | "weight_decay" | "gradient_clip">>;

/** A tensor with its variable's name (TF.js's `NamedTensor`, not exported by the package). */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export const ADAM_EPSILON = 1e-7;
export const ADAMW_BETAS = [0.9, 0.95] as const;
export const ADAMW_EPSILON = 1e-8;

function gradientList(grads: tf.NamedTensorMap | NamedTensor[]): NamedTensor[] {
  return Array.isArray(grads) ? grads : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
}

interface Moments {
  m: tf.Variable;
  v: tf.Variable;
}

/** AdamW with decoupled weight decay on tensors of rank 2 and more, as `torch.optim.AdamW`. */
export class AdamW extends tf.Optimizer {
  static readonly className = "DiscoAdamW";
  private readonly moments = new Map<string, Moments>();

  constructor(
    readonly learningRate: number,
    readonly weightDecay: number,
    readonly beta1: number = ADAMW_BETAS[0],
    readonly beta2: number = ADAMW_BETAS[1],
    readonly epsilon: number = ADAMW_EPSILON,
  ) {
    super();
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const t = this.iterations + 1;
    const stepSize = this.learningRate / (1 - this.beta1 ** t);
    const correction2 = Math.sqrt(1 - this.beta2 ** t);
    const decay = 1 - this.learningRate * this.weightDecay;
    tf.tidy(() => {
      for (const { name, tensor: grad } of gradientList(variableGradients)) {
        const value = tf.engine().registeredVariables[name];
        if (value === undefined || grad == null) continue;
        let state = this.moments.get(name);
        if (state === undefined) {
          state = tf.tidy(() => ({ m: tf.zerosLike(value).variable(false), v: tf.zerosLike(value).variable(false) }));
          this.moments.set(name, state);
        }
        const p = value.rank >= 2 && this.weightDecay > 0 ? tf.mul(value, decay) : value;
        const m = tf.add(tf.mul(state.m, this.beta1), tf.mul(grad, 1 - this.beta1));
        const v = tf.add(tf.mul(state.v, this.beta2), tf.mul(tf.square(grad), 1 - this.beta2));
        state.m.assign(m);
        state.v.assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), correction2), this.epsilon);
        value.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
      }
    });
    this.incrementIterations();
  }

  override dispose(): void {
    for (const { m, v } of this.moments.values()) tf.dispose([m, v]);
    this.moments.clear();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const out: NamedTensor[] = [await this.saveIterations()];
    for (const [name, { m, v }] of this.moments) out.push({ name: `${name}/m`, tensor: m }, { name: `${name}/v`, tensor: v });
    return out;
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.dispose();
    for (let i = 0; i + 1 < rest.length; i += 2) {
      const m = rest[i] as NamedTensor;
      const v = rest[i + 1] as NamedTensor;
      this.moments.set(m.name.replace(/\/m$/, ""), { m: m.tensor.variable(false), v: v.tensor.variable(false) });
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate, weightDecay: this.weightDecay,
      beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon,
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const c = config as Record<string, number>;
    return new (cls as unknown as typeof AdamW)(
      c["learningRate"] as number, c["weightDecay"] as number, c["beta1"], c["beta2"], c["epsilon"],
    ) as unknown as T;
  }
}

/** Another optimizer's steps, after scaling the gradients to a global L2 norm of `maxNorm`. */
export class ClipByGlobalNorm extends tf.Optimizer {
  static readonly className = "DiscoClipByGlobalNorm";

  constructor(
    readonly inner: tf.Optimizer,
    readonly maxNorm: number,
  ) {
    super();
  }

  override get iterations(): number {
    return this.inner.iterations;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const grads = gradientList(variableGradients).filter((g) => g.tensor != null);
    const clipped = tf.tidy(() => {
      const squares = grads.map((g) => tf.sum(tf.square(g.tensor)));
      const norm = tf.sqrt(squares.length > 0 ? tf.addN(squares) : tf.scalar(0));
      const coef = tf.minimum(tf.div(this.maxNorm, tf.add(norm, 1e-6)), 1);
      return grads.map((g) => ({ name: g.name, tensor: tf.mul(g.tensor, coef) }));
    });
    try {
      this.inner.applyGradients(clipped);
    } finally {
      tf.dispose(clipped.map((g) => g.tensor));
    }
  }

  override dispose(): void {
    this.inner.dispose();
  }

  override getWeights(): Promise<NamedTensor[]> {
    return this.inner.getWeights();
  }

  override setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.inner.setWeights(weightValues);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { gradientClip: this.maxNorm, optimizer: { className: this.inner.getClassName(), config: this.inner.getConfig() } };
  }
}

tf.serialization.registerClass(AdamW);

/** The task's optimizer (see the module comment); Adam by default. */
export function makeOptimizer(training: OptimizerInfo = {}): tf.Optimizer {
  const lr = training.learning_rate ?? 1e-3;
  const name = training.optimizer ?? "adam";
  const base =
    name === "adamw"
      ? new AdamW(lr, training.weight_decay ?? 0.1)
      : name === "sgd"
        ? tf.train.sgd(lr)
        : tf.train.adam(lr, 0.9, 0.999, ADAM_EPSILON);
  const clip = training.gradient_clip ?? null;
  return clip === null ? base : new ClipByGlobalNorm(base, clip);
}
