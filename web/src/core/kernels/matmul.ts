/**
 * Matrix products on wasm through XNNPACK. TF.js 4.22's wasm backend hands a product to XNNPACK
 * only when neither side is transposed and both have a batch of 1; every other product — among
 * them the two of each dense layer's backward pass, `dy · Wᵀ` and `xᵀ · dy` — runs a scalar loop
 * about 10x slower. XNNPACK repacks its right-hand side whenever that tensor is new, which in
 * training is every step, at a cost comparable to the product itself when the left side is short.
 *
 * Here, for C = op(A) · op(B) with op(A) `[M, K]` and op(B) `[K, N]` (op: transposed or not):
 * when M ≥ N, op(A) and op(B) are made explicit (a copy of each transposed operand) and XNNPACK
 * computes C, packing K·N values; when M < N it computes Cᵀ = op(B)ᵀ · op(A)ᵀ instead, packing K·M,
 * and C is its transpose. A batch of products sharing one right-hand side becomes one product.
 * Both sum the same products as the stock kernel: equal up to float rounding.
 */
import * as tf from "@tensorflow/tfjs";
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

/** `x` `[1, r, c]` as `[1, c, r]`, a new tensor. */
function swap(s: Scratch, x: Info): Info {
  return s.run("Transpose", { x }, { perm: [0, 2, 1] });
}

/**
 * The product of two single matrices (batch 1) packing the shorter side. The right-hand side
 * handed to XNNPACK is either `b` as the stock kernel would see it or a tensor made here:
 * XNNPACK's packed operands are cached by tensor id alone, so a tensor seen under another shape
 * would find the packing of the other shape.
 */
function single(s: Scratch, a: Info, b: Info, attrs: MatMulAttrs, stock: tf.KernelConfig): Info {
  const plain = { transposeA: false, transposeB: false };
  const m = a.shape[attrs.transposeA ? 2 : 1] ?? 0;
  const n = b.shape[attrs.transposeB ? 1 : 2] ?? 0;
  if (m >= n) {
    const lhs = attrs.transposeA ? swap(s, a) : a;
    const rhs = attrs.transposeB ? swap(s, b) : b;
    return s.run("BatchMatMul", { a: lhs, b: rhs }, plain, stock);
  }
  // Cᵀ = op(B)ᵀ · op(A)ᵀ: op(B)ᵀ is B itself when transposed, op(A)ᵀ is A itself when transposed
  const lhs = attrs.transposeB ? b : swap(s, b);
  const rhs = attrs.transposeA ? s.run("Identity", { x: a }) : swap(s, a);
  return swap(s, s.run("BatchMatMul", { a: lhs, b: rhs }, plain, stock));
}

/** `kernelName` ("BatchMatMul" or "_FusedMatMul") on wasm, over the backend's own `stock`. */
export function matMulWasm(kernelName: "BatchMatMul" | "_FusedMatMul", stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName,
    backendName: "wasm",
    kernelFunc: (args) => {
      // the op hands over its operands as they are (rank 2 or more): seen here as 3-D
      const [a, b] = [as3d((args.inputs as { a: Info }).a), as3d((args.inputs as { b: Info }).b)];
      const attrs = args.attrs as unknown as MatMulAttrs;
      const [batchA, rowsA, colsA] = a.shape as Triple;
      const [batchB] = b.shape as Triple;
      const { a: rawA, b: rawB } = args.inputs as { a: Info; b: Info };
      const outer = tf.broadcast_util.assertAndGetBroadcastShape(rawA.shape.slice(0, -2), rawB.shape.slice(0, -2));
      const shaped = (out: Info): Info => view(out, [...outer, ...out.shape.slice(-2)]);
      if (kernelName === "BatchMatMul") {
        if (batchA === 1 && batchB === 1) {
          return withScratch("wasm", args.backend, (s) => s.keep(shaped(single(s, a, b, attrs, stock))));
        }
        // a batch of products with one shared b: one product of all the rows
        if (batchB === 1 && !attrs.transposeA) {
          return withScratch("wasm", args.backend, (s) => {
            const rhs = attrs.transposeB ? swap(s, b) : b;
            const plain = { transposeA: false, transposeB: false };
            const out = s.run("BatchMatMul", { a: view(a, [1, batchA * rowsA, colsA]), b: rhs }, plain, stock);
            return s.keep(shaped(view(out, [batchA, rowsA, out.shape[2] ?? 0])));
          });
        }
        return stock.kernelFunc(args);
      }
      // _FusedMatMul (bias, activation): operands made explicit, no transposed product
      if (batchA !== 1 || batchB !== 1 || !(attrs.transposeA || attrs.transposeB)) return stock.kernelFunc(args);
      return withScratch("wasm", args.backend, (s) => {
        const inputs = { ...args.inputs, a: attrs.transposeA ? swap(s, a) : a, b: attrs.transposeB ? swap(s, b) : b };
        return s.keep(shaped(s.run(kernelName, inputs, { ...args.attrs, transposeA: false, transposeB: false }, stock)));
      });
    },
  };
}
