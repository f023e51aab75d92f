/**
 * Matrix products on wasm through XNNPACK. TF.js 4.22's wasm backend hands a product to XNNPACK
 * only when neither side is transposed and both have a batch of 1; every other product — among
 * them the two of each dense layer's backward pass, `dy · Wᵀ` and `xᵀ · dy`, and all of
 * attention's batched products — runs a scalar loop about 10x slower. XNNPACK packs its
 * right-hand side whenever that tensor is new, which in training is every step, at a cost
 * comparable to the product itself when the left side is short.
 *
 * Here, for C = op(A) · op(B) with op(A) `[M, K]` and op(B) `[K, N]` (op: transposed or not),
 * by XNNPACK on the matrices where they lie (heap.ts), transposed operands made explicit first
 * (a blocked transpose): when M ≥ N, C itself, packing K·N values; when M < N, Cᵀ = op(B)ᵀ ·
 * op(A)ᵀ instead, packing K·M, and C is its transpose. A batch of products sharing one
 * right-hand side becomes one product; any other batch, one product per matrix. All sum the
 * same products as the stock kernel: equal up to float rounding.
 */
import * as tf from "@tensorflow/tfjs";
import { transposeLast2, xnnProduct } from "./heap";
import { type Info, type Scratch, view, withScratch } from "./scratch";

type Triple = [number, number, number];

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** `x` (rank 2 or more) seen as `[batch, rows, cols]`. */
function as3d(x: Info): Info {
  const rank = x.shape.length;
  const batch = x.shape.slice(0, -2).reduce((p, d) => p * d, 1);
  return view(x, [batch, x.shape[rank - 2] ?? 1, x.shape[rank - 1] ?? 1]);
}

/** op(a) · op(b) for two single matrices (batch 1), packing the shorter side. */
function single(s: Scratch, a: Info, b: Info, attrs: MatMulAttrs): Info {
  const m = a.shape[attrs.transposeA ? 2 : 1] ?? 0;
  const n = b.shape[attrs.transposeB ? 1 : 2] ?? 0;
  if (m >= n) {
    const lhs = attrs.transposeA ? transposeLast2(s, a) : a;
    return xnnProduct(s, lhs, attrs.transposeB ? transposeLast2(s, b) : b);
  }
  // Cᵀ = op(B)ᵀ · op(A)ᵀ: op(B)ᵀ is B itself when transposed, op(A)ᵀ is A itself when transposed
  const lhs = attrs.transposeB ? b : transposeLast2(s, b);
  return transposeLast2(s, xnnProduct(s, lhs, attrs.transposeA ? a : transposeLast2(s, a)));
}

/** op(a) · op(b) for 3-D float32 operands; null where the stock kernel should run. */
function product(s: Scratch, a: Info, b: Info, attrs: MatMulAttrs): Info | null {
  const [batchA, rowsA, colsA] = a.shape as Triple;
  const [batchB] = b.shape as Triple;
  if ([...a.shape, ...b.shape].includes(0)) return null; // nothing for XNNPACK to multiply
  if (batchA === 1 && batchB === 1) return single(s, a, b, attrs);
  if (batchB === 1 && !attrs.transposeA) {
    // a batch of products with one shared b: one product of all the rows
    const rhs = attrs.transposeB ? transposeLast2(s, b) : b;
    const out = xnnProduct(s, view(a, [1, batchA * rowsA, colsA]), rhs);
    return view(out, [batchA, rowsA, out.shape[2] ?? 0]);
  }
  if (batchA !== batchB) return null;
  // one product per matrix (attention: one per sequence and head)
  const lhs = attrs.transposeA ? transposeLast2(s, a) : a;
  return xnnProduct(s, lhs, attrs.transposeB ? transposeLast2(s, b) : b);
}

/** `kernelName` ("BatchMatMul" or "_FusedMatMul") on wasm, over the backend's own `stock`. */
export function matMulWasm(kernelName: "BatchMatMul" | "_FusedMatMul", stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName,
    backendName: "wasm",
    kernelFunc: (args) => {
      // the op hands over its operands as they are (rank 2 or more): seen here as 3-D
      const { a: rawA, b: rawB } = args.inputs as { a: Info; b: Info };
      const [a, b] = [as3d(rawA), as3d(rawB)];
      const attrs = args.attrs as unknown as MatMulAttrs;
      if (a.dtype !== "float32" || b.dtype !== "float32") return stock.kernelFunc(args);
      const outer = tf.broadcast_util.assertAndGetBroadcastShape(rawA.shape.slice(0, -2), rawB.shape.slice(0, -2));
      const shaped = (out: Info): Info => view(out, [...outer, ...out.shape.slice(-2)]);
      if (kernelName === "BatchMatMul") {
        return withScratch("wasm", args.backend, (s) => {
          const out = product(s, a, b, attrs);
          return out === null ? stock.kernelFunc(args) : s.keep(shaped(out));
        });
      }
      // _FusedMatMul (bias, activation): operands made explicit, no transposed product
      const batchA = a.shape[0] ?? 1;
      const batchB = b.shape[0] ?? 1;
      if (batchA !== 1 || batchB !== 1 || !(attrs.transposeA || attrs.transposeB)) return stock.kernelFunc(args);
      return withScratch("wasm", args.backend, (s) => {
        const inputs = {
          ...args.inputs,
          a: attrs.transposeA ? transposeLast2(s, a) : a,
          b: attrs.transposeB ? transposeLast2(s, b) : b,
        };
        return s.keep(shaped(s.run(kernelName, inputs, { ...args.attrs, transposeA: false, transposeB: false }, stock)));
      });
    },
  };
}
