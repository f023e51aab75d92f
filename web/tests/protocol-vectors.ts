/**
 * The shared wire-format test vectors of this protocol version (tests/vectors/protocol_v2.json
 * for version 2, docs/protocol.md §15) and their JSON form turned into messages, for the codec and
 * weights tests.
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

/** The message of a vector's JSON form, with the defaults of absent fields filled in. */
export function messageFromJson(json: MessageVector["message"]): Message {
  const out: Record<string, unknown> = { ...DEFAULTS[json.type], ...json };
  if (out.weights !== undefined) out.weights = weightsFromJson(out.weights as WeightsJson);
  if (out.metrics !== undefined) out.metrics = { ...(out.metrics as object) };
  if (Array.isArray(out.capabilities)) out.capabilities = [...(out.capabilities as string[])];
  return out as unknown as Message;
}

/** A message in comparable form: weights as bit patterns. */
export function comparable(message: Message): Record<string, unknown> {
  const out: Record<string, unknown> = { ...message };
  if (out.weights instanceof Weights) out.weights = weightsToBits(out.weights);
  return out;
}
