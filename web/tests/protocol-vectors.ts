/**
 * The shared wire-format test vectors of this protocol version (tests/vectors/protocol_v2.json
 * for version 2, docs/protocol.md §15) and their JSON form turned into messages, for the codec and
 * weights tests. Binary fields are written `{"bin": "<hex>"}` in the JSON (in nested maps and
 * lists too) and are `Uint8Array`s in a message.
 */

import { readFileSync } from "node:fs";
import { Weights } from "../src/core/weights";
import { PROTOCOL_VERSION, type Message } from "../src/core/protocol";

/** JSON form of a weights value: `values` (exact float32 numbers) or `bits` (hex patterns). */
export interface WeightsJson {
  names: string[];
  shapes: number[][];
  values?: number[][];
  bits?: string[][];
}
/** A valid or decode-only vector. */
export interface MessageVector {
  name: string;
  description: string;
  message: Record<string, unknown> & { type: string };
  hex: string;
  digest?: string;
}
/** An invalid vector. */
export interface InvalidVector {
  name: string;
  hex: string;
  error: string;
  code: "malformed" | "version";
}
/** The whole file. */
export interface Vectors {
  protocol_version: number;
  valid: MessageVector[];
  decode_only: MessageVector[];
  invalid: InvalidVector[];
}

/** The vectors file of `PROTOCOL_VERSION`, read from the repository. */
export const VECTORS: Vectors = JSON.parse(
  readFileSync(new URL(`../../tests/vectors/protocol_v${PROTOCOL_VERSION}.json`, import.meta.url), "utf8"),
) as Vectors;

/** Bytes from lowercase hex. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A `Weights` value from its JSON form. */
export function weightsFromJson(json: WeightsJson): Weights {
  const values = json.names.map((_, i) => {
    if (json.bits !== undefined) {
      const bits = json.bits[i] ?? [];
      return new Float32Array(new Uint32Array(bits.map((b) => parseInt(b, 16))).buffer);
    }
    const vals = json.values?.[i] ?? [];
    vals.forEach((x) => {
      if (Math.fround(x) !== x) throw new Error(`${x} is not exactly a float32`);
    });
    return new Float32Array(vals);
  });
  return new Weights(json.names, json.shapes, values);
}

/** The JSON form of weights by bit pattern (so NaN compares equal to NaN). */
export function weightsToBits(weights: Weights): WeightsJson {
  return {
    names: [...weights.names],
    shapes: weights.shapes.map((s) => [...s]),
    bits: weights.values.map((v) =>
      Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length), (b) => b.toString(16).padStart(8, "0")),
    ),
  };
}

/** Fields with a default, which the JSON form leaves out when they have it (`peers` of a plan list every key). */
const DEFAULTS: Record<string, Record<string, unknown>> = {
  hello: { name: "", kind: "python", capabilities: [] },
  welcome: { capabilities: [] },
  update: { metrics: {} },
  result: { metrics: {} },
  peer_update: { metrics: {} },
};

/** Whether `v` is the JSON form of binary data, `{"bin": "<hex>"}`. */
function isBinJson(v: unknown): v is { bin: string } {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.keys(v).length === 1 &&
    typeof (v as { bin?: unknown }).bin === "string"
  );
}

/** A fresh copy of a JSON value with every `{"bin": hex}` turned into its `Uint8Array`. */
function fromJsonValue(v: unknown): unknown {
  if (isBinJson(v)) return fromHex(v.bin);
  if (Array.isArray(v)) return v.map(fromJsonValue);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJsonValue(x)]));
  }
  return v;
}

/** The message of a vector's JSON form, with the defaults of absent fields filled in. */
export function messageFromJson(json: MessageVector["message"]): Message {
  const out: Record<string, unknown> = { ...DEFAULTS[json.type] };
  for (const [name, value] of Object.entries(json)) {
    out[name] = name === "weights" ? weightsFromJson(value as WeightsJson) : fromJsonValue(value);
  }
  return out as unknown as Message;
}

/** A value in comparable form: weights as bit patterns, binary data as `{bin: hex}`, at any depth. */
function comparableValue(v: unknown): unknown {
  if (v instanceof Weights) return weightsToBits(v);
  if (v instanceof Uint8Array) return { bin: toHex(v) };
  if (Array.isArray(v)) return v.map(comparableValue);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, comparableValue(x)]));
  }
  return v;
}

/**
 * A message in comparable form: weights as bit patterns (so NaN equals NaN), binary data as
 * `{bin: hex}` (a decoded one is a view of its frame), nested maps and lists copied.
 */
export function comparable(message: Message): Record<string, unknown> {
  return comparableValue(message) as Record<string, unknown>;
}
