/**
 * The portable GPT layers (docs/models.md, "GPT") as TF.js custom layers, computing what
 * Python's `disco.models.gpt_torch` computes. Shapes: B batch, T positions (at most the
 * context), D width, V vocabulary, H heads.
 *
 * Weights are created in canonical order under their canonical suffixes (`tokens`,
 * `qkv_kernel`, …), in TF layouts (kernels `[in, out]`), so `weightSlots` maps them by name as it
 * does Keras layers. `TiedOutput` has no weights: it multiplies by the `TokenEmbedding`'s token
 * matrix, which `buildModel` hands it; a model rebuilt from a TF.js JSON alone cannot restore
 * that link, so GPT models are always built from their portable spec (weights travel by name).
 *
 * Kernels used are the ones every backend has, wasm included: the embedding's gradient is
 * `gather`'s own, `UnsortedSegmentSum`, which disco registers on wasm and cpu
 * (kernels/segment.ts); attention is batched matrix products with an additive causal mask.
 */
import * as tf from "@tensorflow/tfjs";

/** LayerNorm epsilon of the transformer blocks (PyTorch's default). */
export const BLOCK_EPSILON = 1e-5;
/** Added to the attention scores of future positions: their softmax weight is exactly 0. */
const MASKED = -1e9;

type Kwargs = Record<string, unknown>;

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor;
}

function shapeOf(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
}

/** (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased variance). */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): tf.Tensor {
  const centred = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, epsilon))), gamma), beta);
}

/** Exact (erf) GELU, as PyTorch's default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

function dense(x: tf.Tensor2D, kernel: tf.Tensor, bias: tf.Tensor): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: kernel as tf.Tensor2D, bias }) as tf.Tensor2D;
}

function dropout(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
  return training && rate > 0 ? tf.dropout(x, rate) : x;
}

/** Settings of `TokenEmbedding`. */
export interface TokenEmbeddingArgs {
  name: string;
  vocabSize: number;
  units: number;
  context: number;
}

/** Token ids (B, T) -> token vectors + position vectors (B, T, D). */
export class TokenEmbedding extends tf.layers.Layer {
  static className = "DiscoTokenEmbedding";
  readonly vocabSize: number;
  readonly units: number;
  readonly context: number;
  tokens!: tf.LayerVariable;
  private positions!: tf.LayerVariable;

  constructor(args: TokenEmbeddingArgs) {
    super({ name: args.name });
    this.vocabSize = args.vocabSize;
    this.units = args.units;
    this.context = args.context;
  }

  override build(): void {
    const zeros = tf.initializers.zeros();
    this.tokens = this.addWeight("tokens", [this.vocabSize, this.units], "float32", zeros);
    this.positions = this.addWeight("positions", [this.context, this.units], "float32", zeros);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [b, t] = shapeOf(inputShape);
    return [b ?? null, t ?? null, this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const raw = single(inputs);
      const [b, t] = raw.shape as [number, number];
      if (t > this.context) throw new Error(`${this.name}: ${t} tokens is more than the context of ${this.context}`);
      const ids = tf.reshape(raw.dtype === "int32" ? raw : tf.cast(raw, "int32"), [b * t]);
      const vectors = tf.reshape(tf.gather(this.tokens.read(), ids), [b, t, this.units]); // (B, T, D)
      return tf.add(vectors, tf.slice(this.positions.read(), [0, 0], [t, this.units])); // + (T, D)
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), vocabSize: this.vocabSize, units: this.units, context: this.context };
  }
}

/** Settings of `TransformerBlock`. */
export interface TransformerBlockArgs {
  name: string;
  heads: number;
  mlpRatio: number;
  dropout: number;
}

const BLOCK_WEIGHTS = [
  "ln1_gamma", "ln1_beta", "qkv_kernel", "qkv_bias", "attn_proj_kernel", "attn_proj_bias",
  "ln2_gamma", "ln2_beta", "fc_kernel", "fc_bias", "mlp_proj_kernel", "mlp_proj_bias",
] as const;
type BlockWeight = (typeof BLOCK_WEIGHTS)[number];

/** Pre-LN block: x + attn(ln1(x)), then x + mlp(ln2(x)); causal multi-head self-attention. */
export class TransformerBlock extends tf.layers.Layer {
  static className = "DiscoTransformerBlock";
  readonly heads: number;
  readonly mlpRatio: number;
  readonly rate: number;
  private w = {} as Record<BlockWeight, tf.LayerVariable>;

  constructor(args: TransformerBlockArgs) {
    super({ name: args.name });
    this.heads = args.heads;
    this.mlpRatio = args.mlpRatio;
    this.rate = args.dropout;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const d = shapeOf(inputShape)[2] as number;
    const h = this.mlpRatio * d;
    const shapes: Record<BlockWeight, number[]> = {
      ln1_gamma: [d], ln1_beta: [d], qkv_kernel: [d, 3 * d], qkv_bias: [3 * d],
      attn_proj_kernel: [d, d], attn_proj_bias: [d], ln2_gamma: [d], ln2_beta: [d],
      fc_kernel: [d, h], fc_bias: [h], mlp_proj_kernel: [h, d], mlp_proj_bias: [d],
    };
    for (const name of BLOCK_WEIGHTS) {
      const init = name.endsWith("gamma") ? tf.initializers.ones() : tf.initializers.zeros();
      this.w[name] = this.addWeight(name, shapes[name], "float32", init);
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return shapeOf(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const training = kwargs["training"] === true;
      const v = (name: BlockWeight): tf.Tensor => this.w[name].read();
      const x = single(inputs);
      const [b, t, d] = x.shape as [number, number, number];
      const flat = (z: tf.Tensor): tf.Tensor2D => tf.reshape(z, [b * t, -1]);
      // attention: (B, T, D) -> (B·T, 3D) -> q, k, v as (B·H, T, hd)
      const a = flat(layerNorm(x, v("ln1_gamma"), v("ln1_beta"), BLOCK_EPSILON));
      const hd = d / this.heads;
      const heads = (z: tf.Tensor): tf.Tensor3D =>
        tf.reshape(tf.transpose(tf.reshape(z, [b, t, this.heads, hd]), [0, 2, 1, 3]), [b * this.heads, t, hd]);
      const [q, k, val] = tf.split(dense(a, v("qkv_kernel"), v("qkv_bias")), 3, 1) as [tf.Tensor, tf.Tensor, tf.Tensor];
      const future = tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)); // 1 above the diagonal
      const scores = tf.add(tf.matMul(heads(tf.mul(q, 1 / Math.sqrt(hd))), heads(k), false, true), tf.mul(future, MASKED));
      const weights = dropout(tf.softmax(scores), this.rate, training); // (B·H, T, T)
      const mixed = tf.matMul(weights as tf.Tensor3D, heads(val)); // (B·H, T, hd)
      const joined = tf.reshape(tf.transpose(tf.reshape(mixed, [b, this.heads, t, hd]), [0, 2, 1, 3]), [b * t, d]);
      const attended = dropout(dense(joined as tf.Tensor2D, v("attn_proj_kernel"), v("attn_proj_bias")), this.rate, training);
      const x1 = tf.add(x, tf.reshape(attended, [b, t, d]));
      // MLP: (B·T, D) -> (B·T, rD) -> (B·T, D)
      const m = flat(layerNorm(x1, v("ln2_gamma"), v("ln2_beta"), BLOCK_EPSILON));
      const hidden = gelu(dense(m, v("fc_kernel"), v("fc_bias"))) as tf.Tensor2D;
      const out = dropout(dense(hidden, v("mlp_proj_kernel"), v("mlp_proj_bias")), this.rate, training);
      return tf.add(x1, tf.reshape(out, [b, t, d]));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, mlpRatio: this.mlpRatio, dropout: this.rate };
  }
}

/** LayerNorm over each position's features, with `gamma` and `beta`. */
export class LayerNorm extends tf.layers.Layer {
  static className = "DiscoLayerNorm";
  readonly epsilon: number;
  private gamma!: tf.LayerVariable;
  private beta!: tf.LayerVariable;

  constructor(args: { name: string; epsilon: number }) {
    super({ name: args.name });
    this.epsilon = args.epsilon;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = shapeOf(inputShape);
    const d = shape[shape.length - 1] as number;
    this.gamma = this.addWeight("gamma", [d], "float32", tf.initializers.ones());
    this.beta = this.addWeight("beta", [d], "float32", tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return shapeOf(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => layerNorm(single(inputs), this.gamma.read(), this.beta.read(), this.epsilon));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

/** Logits (B, T, V) = x (B, T, D) @ tokensᵀ of the model's `TokenEmbedding`; no own weights. */
export class TiedOutput extends tf.layers.Layer {
  static className = "DiscoTiedOutput";
  private readonly embedding: TokenEmbedding | null;

  constructor(args: { name: string; embedding?: TokenEmbedding }) {
    super({ name: args.name });
    this.embedding = args.embedding ?? null;
  }

  private tied(): TokenEmbedding {
    if (this.embedding === null) {
      throw new Error(`${this.name}: tied_output has no token_embedding; build GPT models with buildModel from their spec`);
    }
    return this.embedding;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [b, t] = shapeOf(inputShape);
    return [b ?? null, t ?? null, this.tied().vocabSize];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const [b, t, d] = x.shape as [number, number, number];
      const tokens = this.tied().tokens.read() as tf.Tensor2D; // (V, D)
      const logits = tf.matMul(tf.reshape(x, [b * t, d]) as tf.Tensor2D, tokens, false, true);
      return tf.reshape(logits, [b, t, tokens.shape[0]]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), embedding: this.embedding?.name ?? null };
  }
}

for (const cls of [TokenEmbedding, TransformerBlock, LayerNorm, TiedOutput]) tf.serialization.registerClass(cls);
