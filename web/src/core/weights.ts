/**
 * Named float32 tensors: the one currency of model state, as `disco.weights.Weights` in Python.
 *
 * A `Weights` value is an ordered list of (name, shape, values) with canonical names such as
 * `dense_1.kernel`; values are flat float32 arrays in C order (row-major, last index fastest).
 */

import { WeightsError } from "./errors";

/** True when this platform stores typed arrays little-endian (every current browser does). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Number of values of a tensor of this shape (`[]` → 1, a zero dimension → 0). */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const quote = (s: string): string => `'${s}'`;
const showShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;
const showNames = (names: readonly string[]): string =>
  names.length === 0 ? "none" : `[${names.map(quote).join(", ")}]`;

/** The little-endian bytes of `values`: a view where the platform is little-endian, else a copy. */
export function float32LEBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((x, i) => view.setFloat32(4 * i, x, true));
  return out;
}

/** Float32 values from little-endian bytes: a view when aligned (and little-endian), else a copy. */
export function float32FromLE(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new WeightsError(`${bytes.byteLength} bytes is not a whole number of float32 values`);
  }
  const n = bytes.byteLength / 4;
  if (LITTLE_ENDIAN) {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    return new Float32Array(bytes.slice().buffer, 0, n);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

/**
 * An immutable ordered set of named float32 tensors.
 *
 * The constructor takes ownership of `values` without copying: do not modify those arrays
 * afterwards (typed arrays cannot be frozen). Names and shapes are copied and frozen.
 */
export class Weights {
  /** Tensor names, in the model's canonical order; non-empty and unique. */
  readonly names: readonly string[];
  /** One shape per tensor; each dimension a non-negative integer. */
  readonly shapes: readonly (readonly number[])[];
  /** One flat C-order float32 array per tensor, of `shapeSize(shape)` values. */
  readonly values: readonly Float32Array[];
  private readonly index: ReadonlyMap<string, number>;

  constructor(names: readonly string[], shapes: readonly (readonly number[])[], values: readonly Float32Array[]) {
    if (names.length !== shapes.length || names.length !== values.length) {
      throw new WeightsError(
        `weights need one shape and one value array per name: got ${names.length} names, ` +
          `${shapes.length} shapes and ${values.length} value arrays`,
      );
    }
    const index = new Map<string, number>();
    const frozenShapes: (readonly number[])[] = [];
    names.forEach((name, i) => {
      if (typeof name !== "string" || name === "") {
        throw new WeightsError(`weight names must be non-empty strings, got ${JSON.stringify(name)}`);
      }
      if (index.has(name)) throw new WeightsError(`duplicate weight name ${quote(name)}`);
      index.set(name, i);
      const shape = shapes[i] ?? [];
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new WeightsError(`weight ${quote(name)} has invalid shape ${String(shape)}`);
      }
      const value = values[i];
      if (!(value instanceof Float32Array)) {
        throw new WeightsError(`weight ${quote(name)} must be a Float32Array`);
      }
      const want = shapeSize(shape);
      if (value.length !== want) {
        throw new WeightsError(
          `weight ${quote(name)} of shape ${showShape(shape)} needs ${want} values, got ${value.length}`,
        );
      }
      frozenShapes.push(Object.freeze([...shape]));
    });
    this.names = Object.freeze([...names]);
    this.shapes = Object.freeze(frozenShapes);
    this.values = Object.freeze([...values]);
    this.index = index;
  }

  /** Weights from one flat vector holding every tensor's values in order (views, no copy). */
  static fromFlat(names: readonly string[], shapes: readonly (readonly number[])[], flat: Float32Array): Weights {
    const sizes = shapes.map(shapeSize);
    const total = sizes.reduce((a, b) => a + b, 0);
    if (flat.length !== total) {
      throw new WeightsError(`flat vector has ${flat.length} values, the shapes need ${total}`);
    }
    let offset = 0;
    const values = sizes.map((n) => flat.subarray(offset, (offset += n)));
    return new Weights(names, shapes, values);
  }

  /** The values of tensor `name`; throws `WeightsError` when there is no such tensor. */
  get(name: string): Float32Array {
    const i = this.index.get(name);
    if (i === undefined) {
      throw new WeightsError(`no tensor named ${quote(name)}; the weights have ${showNames(this.names)}`);
    }
    return this.values[i] as Float32Array;
  }

  /** The shape of tensor `name`; throws `WeightsError` when there is no such tensor. */
  shapeOf(name: string): readonly number[] {
    const i = this.index.get(name);
    if (i === undefined) throw new WeightsError(`no tensor named ${quote(name)}`);
    return this.shapes[i] as readonly number[];
  }

  /** Whether a tensor is called `name`. */
  has(name: string): boolean {
    return this.index.has(name);
  }

  /** Total number of float32 values. */
  get size(): number {
    return this.values.reduce((a, v) => a + v.length, 0);
  }

  /** Total size of the values in bytes. */
  get nbytes(): number {
    return 4 * this.size;
  }

  /** Throw `WeightsError` unless names (in order) and shapes equal those of `reference`. */
  checkLike(reference: Weights, what = "weights"): void {
    const ours = this.names;
    const theirs = reference.names;
    if (ours.length !== theirs.length || ours.some((n, i) => n !== theirs[i])) {
      const missing = theirs.filter((n) => !this.index.has(n));
      const extra = ours.filter((n) => !reference.index.has(n));
      if (missing.length === 0 && extra.length === 0) {
        throw new WeightsError(
          `${what} have the model's tensors in another order: expected ${showNames(theirs)}`,
        );
      }
      throw new WeightsError(
        `${what} do not match the model: missing ${showNames(missing)}, unexpected ${showNames(extra)}`,
      );
    }
    ours.forEach((name, i) => {
      const have = this.shapes[i] as readonly number[];
      const want = reference.shapes[i] as readonly number[];
      if (have.length !== want.length || have.some((d, k) => d !== want[k])) {
        throw new WeightsError(
          `${what}: tensor ${quote(name)} has shape ${showShape(have)}, the model expects ${showShape(want)}`,
        );
      }
    });
  }

  /** True when no value is NaN or infinite. */
  isFinite(): boolean {
    for (const v of this.values) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i] as number;
        if (x - x !== 0) return false; // NaN or ±infinity
      }
    }
    return true;
  }

  /** True when names, shapes and every value's bit pattern are equal (so NaN equals NaN). */
  equals(other: Weights): boolean {
    if (this.names.length !== other.names.length) return false;
    return this.names.every((name, i) => {
      const a = this.values[i] as Float32Array;
      const b = other.values[i] as Float32Array;
      const sa = this.shapes[i] as readonly number[];
      const sb = other.shapes[i] as readonly number[];
      if (name !== other.names[i] || sa.length !== sb.length || sa.some((d, k) => d !== sb[k])) return false;
      const ba = float32LEBytes(a);
      const bb = float32LEBytes(b);
      return ba.length === bb.length && ba.every((x, k) => x === bb[k]);
    });
  }

  /** All values concatenated in order, as one new vector. */
  flatten(): Float32Array {
    const out = new Float32Array(this.size);
    let offset = 0;
    for (const v of this.values) {
      out.set(v, offset);
      offset += v.length;
    }
    return out;
  }

  /** Weights with the same names and shapes and values `fn(values, name)` (new arrays). */
  map(fn: (values: Float32Array, name: string) => Float32Array): Weights {
    return new Weights(this.names, this.shapes, this.values.map((v, i) => fn(v, this.names[i] as string)));
  }

  /**
   * SHA-256 over names, shapes and values, lowercase hex; equal digests mean identical weights.
   * Same algorithm as Python `Weights.digest()` (docs/protocol.md §12): per tensor, in order,
   * the UTF-8 name's byte length (u32 LE), the name, the rank (u32 LE), each dimension (i64 LE),
   * the values (float32 LE).
   */
  async digest(): Promise<string> {
    const encoder = new TextEncoder();
    const names = this.names.map((n) => encoder.encode(n));
    let total = 0;
    names.forEach((name, i) => {
      const rank = (this.shapes[i] as readonly number[]).length;
      total += 8 + name.length + 8 * rank + 4 * (this.values[i] as Float32Array).length;
    });
    const bytes = new Uint8Array(total);
    const view = new DataView(bytes.buffer);
    let at = 0;
    names.forEach((name, i) => {
      const shape = this.shapes[i] as readonly number[];
      view.setUint32(at, name.length, true);
      bytes.set(name, at + 4);
      at += 4 + name.length;
      view.setUint32(at, shape.length, true);
      at += 4;
      for (const d of shape) {
        view.setBigInt64(at, BigInt(d), true);
        at += 8;
      }
      const data = float32LEBytes(this.values[i] as Float32Array);
      bytes.set(data, at);
      at += data.length;
    });
    return sha256Hex(bytes);
  }

  /** A short description such as `Weights(2 tensors, 7 values)`. */
  toString(): string {
    return `Weights(${this.names.length} tensors, ${this.size} values)`;
  }
}

/**
 * Lowercase hex SHA-256 of `data`: Web Crypto where available, else a plain-JS implementation
 * (browsers only offer `crypto.subtle` in secure contexts: https or localhost, not a LAN http URL).
 */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) return sha256HexJs(data);
  const digest = await subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return toHex(new Uint8Array(digest));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 in plain JavaScript (FIPS 180-4); the fallback of `sha256Hex`. */
export function sha256HexJs(data: Uint8Array): string {
  const padded = new Uint8Array((((data.length + 9 + 63) >> 6) << 6));
  padded.set(data);
  padded[data.length] = 0x80;
  const pv = new DataView(padded.buffer);
  pv.setUint32(padded.length - 8, Math.floor(data.length / 2 ** 29), false);
  pv.setUint32(padded.length - 4, (data.length << 3) >>> 0, false);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t++) w[t] = pv.getUint32(block + 4 * t, false);
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15] as number;
      const b = w[t - 2] as number;
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
      w[t] = ((w[t - 16] as number) + s0 + (w[t - 7] as number) + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = Array.from(h) as [number, number, number, number, number, number, number, number];
    for (let t = 0; t < 64; t++) {
      const s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const t1 = (hh + s1 + ((e & f) ^ (~e & g)) + (K[t] as number) + (w[t] as number)) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((x, i) => (h[i] = ((h[i] as number) + x) >>> 0));
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  h.forEach((x, i) => ov.setUint32(4 * i, x, false));
  return toHex(out);
}
