/**
 * Convolution gradients as convolutions, run by the backend's own `Conv2D` kernel — on wasm,
 * XNNPACK's: SIMD, and several threads when the page is cross-origin isolated. TF.js 4.22's wasm
 * backend has no `Conv2DBackpropFilter` and a scalar loop for `Conv2DBackpropInput` (about 15x
 * slower than its `Conv2D` on the same work); the cpu backend loops element by element.
 *
 * For x `[B, H, W, Cin]`, filter w `[kh, kw, Cin, Cout]`, strides (sh, sw), the forward pass's
 * padding (top, left, ...) and dy `[B, OH, OW, Cout]`, with xpad the padded x:
 *
 *     dW[i, j, c, o] = Σ_{b,p,q} xpad[b, p·sh + i, q·sw + j, c] · dy[b, p, q, o]
 *
 * is a convolution of x seen as `[Cin, H, W, B]` (B as the channels, same padding) with dy seen as
 * `[OH, OW, B, Cout]` as its filter, dilated by the strides: output `[Cin, kh, kw, Cout]` (plus
 * rows and columns a 'valid' pass never reached, cut off), transposed to `[kh, kw, Cin, Cout]`;
 *
 *     dx[b, h, v, c] = Σ_{i,j,o} dyz[b, h + i - (kh-1-top), v + j - (kw-1-left), o] · w[kh-1-i, kw-1-j, c, o]
 *
 * is a stride-1 convolution of dyz — dy with sh-1 zero rows after each row and sw-1 zero columns
 * after each column — with w flipped in space and seen as `[kh, kw, Cout, Cin]`, padded by
 * (kh-1-top, kw-1-left) before and whatever brings the output to H x W after. Both sum the same
 * products as TF's own kernels, in another order: equal up to float rounding (web/tests/kernels).
 *
 * Refused (the caller's fallback runs instead): channels-first data; for dx, a padding larger
 * than the filter (kh-1-top < 0) and strides whose zeros would cost more than the scalar loop
 * (sh·sw > 9). TF.js has no dilated convolution gradients at all (its conv2d op refuses them).
 */
import * as tf from "@tensorflow/tfjs";
import { countFallback, type Info, type Scratch, view, withScratch } from "./scratch";

type Quad = [number, number, number, number];

/** The attributes shared by TF.js's two convolution-gradient kernels. */
interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: "valid" | "same" | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/** Strides sh·sw above this take the fallback for dx: the zeros would cost more than they save. */
export const MAX_DX_STRIDE_AREA = 9;

function convInfo(xShape: number[], filterShape: number[], a: ConvGradAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Quad, filterShape as Quad, a.strides, 1, a.pad as "valid", a.dimRoundingMode,
  );
}

/** Conv2D attributes: stride 1, explicit padding, `dilations`. */
function convAttrs(rows: [number, number], cols: [number, number], dilations: [number, number]): object {
  return { strides: [1, 1], pad: [[0, 0], rows, cols, [0, 0]], dataFormat: "NHWC", dilations, dimRoundingMode: "floor" };
}

/** `x` with its axes permuted by `perm`: a view when the axes longer than 1 keep their order. */
function transpose(s: Scratch, x: Info, perm: Quad): Info {
  const long = perm.filter((axis) => (x.shape[axis] ?? 1) > 1);
  if (long.every((axis, k) => k === 0 || axis > (long[k - 1] ?? -1))) {
    return view(x, perm.map((axis) => x.shape[axis] ?? 1));
  }
  return s.run("Transpose", { x }, { perm });
}

/** dW of a 2-D convolution (NHWC) as one convolution; null when refused. */
export function filterGradient(s: Scratch, x: Info, dy: Info, filterShape: Quad, a: ConvGradAttrs): Info | null {
  if (a.dataFormat !== "NHWC") return null;
  const conv = convInfo(x.shape, filterShape, a);
  const [kh, kw, cin, cout] = filterShape;
  const { top, bottom, left, right } = conv.padInfo;
  const xt = transpose(s, x, [3, 1, 2, 0]); // [Cin, H, W, B]
  const dyt = transpose(s, dy, [1, 2, 0, 3]); // [OH, OW, B, Cout]
  let full = s.run("Conv2D", { x: xt, filter: dyt }, convAttrs([top, bottom], [left, right], [conv.strideHeight, conv.strideWidth]));
  if (full.shape[1] !== kh || full.shape[2] !== kw) {
    full = s.run("Slice", { x: full }, { begin: [0, 0, 0, 0], size: [cin, kh, kw, cout] });
  }
  return s.keep(transpose(s, full, [1, 2, 0, 3]));
}

/** dx of a 2-D convolution (NHWC) as one stride-1 convolution; null when refused. */
export function inputGradient(s: Scratch, dy: Info, w: Info, inputShape: Quad, a: ConvGradAttrs): Info | null {
  if (a.dataFormat !== "NHWC") return null;
  const conv = convInfo(inputShape, w.shape, a);
  const [batch, h, width] = inputShape;
  const [kh, kw, , cout] = w.shape as Quad;
  const { strideHeight: sh, strideWidth: sw } = conv;
  const [padTop, padLeft] = [kh - 1 - conv.padInfo.top, kw - 1 - conv.padInfo.left];
  if (padTop < 0 || padLeft < 0 || sh * sw > MAX_DX_STRIDE_AREA) return null;
  const [oh, ow] = [dy.shape[1] ?? 0, dy.shape[2] ?? 0];
  let src = dy;
  let [rows, cols] = [oh, ow];
  if (sh > 1 || sw > 1) {
    const zeros = [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]];
    const spread = s.run("PadV2", { x: view(dy, [batch, oh, 1, ow, 1, cout]) }, { paddings: zeros, constantValue: 0 });
    [rows, cols] = [oh * sh, ow * sw];
    src = view(spread, [batch, rows, cols, cout]);
  }
  // rows of dyz past H + top - 1 (beyond the padded input's last row reached) contribute nothing
  let [padBottom, padRight] = [h + kh - 1 - rows - padTop, width + kw - 1 - cols - padLeft];
  if (padBottom < 0 || padRight < 0) {
    [rows, cols] = [rows + Math.min(padBottom, 0), cols + Math.min(padRight, 0)];
    src = s.run("Slice", { x: src }, { begin: [0, 0, 0, 0], size: [batch, rows, cols, cout] });
    [padBottom, padRight] = [Math.max(padBottom, 0), Math.max(padRight, 0)];
  }
  const flipped = s.run("Reverse", { x: w }, { dims: [0, 1] });
  const filter = transpose(s, flipped, [0, 1, 3, 2]); // [kh, kw, Cout, Cin]
  return s.keep(s.run("Conv2D", { x: src, filter }, convAttrs([padTop, padBottom], [padLeft, padRight], [1, 1])));
}

/** `Conv2DBackpropFilter` for `backendName` as one convolution; `fallback` where refused. */
export function conv2dBackpropFilter(backendName: string, fallback: tf.KernelConfig | null): tf.KernelConfig {
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: (args) => {
      const { x, dy } = args.inputs as { x: Info; dy: Info };
      const a = args.attrs as unknown as ConvGradAttrs & { filterShape: Quad };
      const out = withScratch(backendName, args.backend, (s) => filterGradient(s, x, dy, a.filterShape, a));
      if (out !== null) return out;
      if (fallback === null) throw new Error(`Conv2DBackpropFilter on ${backendName}: only NHWC (channels last) data is supported`);
      countFallback("Conv2DBackpropFilter", backendName);
      return fallback.kernelFunc(args);
    },
  };
}

/** `Conv2DBackpropInput` for `backendName` as one convolution; `fallback` where refused. */
export function conv2dBackpropInput(backendName: string, fallback: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: "Conv2DBackpropInput",
    backendName,
    kernelFunc: (args) => {
      const { dy, filter } = args.inputs as { dy: Info; filter: Info };
      const a = args.attrs as unknown as ConvGradAttrs & { inputShape: Quad };
      const out = withScratch(backendName, args.backend, (s) => inputGradient(s, dy, filter, a.inputShape, a));
      if (out !== null) return out;
      countFallback("Conv2DBackpropInput", backendName);
      return fallback.kernelFunc(args);
    },
  };
}
