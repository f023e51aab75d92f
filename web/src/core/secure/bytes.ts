/**
 * The byte encodings of secure aggregation (docs/secure_aggregation.md §2): UTF-8 text,
 * big-endian integers (`u32be`, `u64be`, field elements and scalars), concatenation and hex.
 *
 * Every function returns a fresh `Uint8Array<ArrayBuffer>`, which WebCrypto accepts as-is.
 */

import { SecureAggregationError } from "./errors";

const encoder = new TextEncoder();

/** The UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text) as Uint8Array<ArrayBuffer>;
}

/** `a ‖ b ‖ …`. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A copy of `bytes` backed by a plain `ArrayBuffer` (what WebCrypto's typings ask for). */
export function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

/** The integer `value` (≥ 0, below 256^length) as `length` bytes, big-endian. */
export function bigintToBytes(value: bigint, length: number): Uint8Array<ArrayBuffer> {
  if (value < 0n || value >> BigInt(8 * length) !== 0n) {
    throw new SecureAggregationError("value", `${value} does not fit in ${length} bytes`);
  }
  const out = new Uint8Array(length);
  let rest = value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

/** `bytes` read as a big-endian unsigned integer. */
export function bytesToBigint(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

/** `value` (an integer in [0, 2^32)) as 4 bytes, big-endian. */
export function u32be(value: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new SecureAggregationError("value", `u32be needs an integer in [0, 2^32), got ${value}`);
  }
  return bigintToBytes(BigInt(value), 4);
}

/** `value` (an integer in [0, 2^53)) as 8 bytes, big-endian. */
export function u64be(value: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SecureAggregationError("value", `u64be needs a safe integer ≥ 0, got ${value}`);
  }
  return bigintToBytes(BigInt(value), 8);
}

/** Lowercase hex of `bytes`, no prefix. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** The bytes of a hex string (even length, no prefix, either case). */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new SecureAggregationError("value", `not a hex string of whole bytes: ${JSON.stringify(hex.slice(0, 20))}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Whether two byte strings are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
