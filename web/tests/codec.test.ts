/** The codec against the shared vectors (docs/protocol.md §15) plus a few targeted checks. */

import { encode as referenceEncode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { ProtocolError, VersionError } from "../src/core/errors";
import { decode, encode, PROTOCOL_VERSION, type Message } from "../src/core/protocol";
import { Weights } from "../src/core/weights";
import { comparable, fromHex, messageFromJson, toHex, VECTORS } from "./protocol-vectors";

/**
 * Invalid vectors whose Python error text is pydantic's or Python's own wording; the web
 * decoder says the same thing in its own words (checked case-insensitively). Every other vector's
 * `error` substring appears as is in the web error message.
 */
const OWN_WORDING: Record<string, string> = {
  missing_version: "protocol version (missing) is not supported", // Python prints None
};

describe("protocol vectors", () => {
  it("are version 1", () => {
    expect(VECTORS.protocol_version).toBe(PROTOCOL_VERSION);
    expect(VECTORS.valid.length).toBeGreaterThan(20);
    expect(VECTORS.invalid.length).toBeGreaterThan(30);
  });

  describe.each(VECTORS.valid.map((v) => [v.name, v] as const))("valid %s", (_, vector) => {
    const message = messageFromJson(vector.message);
    it("encodes to exactly hex", () => {
      expect(toHex(encode(message))).toBe(vector.hex);
    });
    it("decodes to the message", () => {
      expect(comparable(decode(fromHex(vector.hex)))).toEqual(comparable(message));
    });
    it("decodes from an unaligned buffer", () => {
      const bytes = fromHex(`00${vector.hex}`).subarray(1);
      expect(comparable(decode(bytes))).toEqual(comparable(message));
    });
  });

  it.each(VECTORS.decode_only.map((v) => [v.name, v] as const))("decode-only %s", (_, vector) => {
    const message = messageFromJson(vector.message);
    const decoded = decode(fromHex(vector.hex));
    expect(comparable(decoded)).toEqual(comparable(message));
    expect(comparable(decode(encode(decoded)))).toEqual(comparable(message)); // canonical round trip
  });

  it.each(VECTORS.invalid.map((v) => [v.name, v] as const))("invalid %s", (name, vector) => {
    let error: unknown;
    try {
      decode(fromHex(vector.hex));
    } catch (exc) {
      error = exc;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    const exc = error as ProtocolError;
    expect(exc.code).toBe(vector.code);
    expect(exc instanceof VersionError).toBe(vector.code === "version");
    expect(exc.message.toLowerCase()).toContain((OWN_WORDING[name] ?? vector.error).toLowerCase());
  });
});

describe("encode", () => {
  const w = new Weights(["w"], [[2]], [new Float32Array([0.5, -1.25])]);

  it("writes integral metrics as float64", () => {
    const frame = encode({ type: "update", round: 0, num_samples: 1, weights: w, metrics: { train_loss: 1 } });
    expect(toHex(frame)).toContain("aa747261696e5f6c6f7373cb3ff0000000000000"); // "train_loss" 1.0
  });

  it("refuses invalid messages", () => {
    const bad = { type: "update", round: -1, num_samples: 0, weights: w, metrics: { val_loss: NaN } } as Message;
    expect(() => encode(bad)).toThrow(/round: .*greater than or equal to 0.*num_samples.*val_loss: metrics must be finite/);
    expect(() => encode({ type: "hello", task_id: "x".repeat(65), name: "", kind: "browser" })).toThrow(ProtocolError);
    expect(() => encode({ type: "ack", round: 1.5, reported: 0, participants: 0 })).toThrow(/valid integer/);
  });

  it("counts string limits in code points", () => {
    const name = "🚀".repeat(100); // 200 UTF-16 units, 100 code points
    const frame = encode({ type: "hello", task_id: "t", name, kind: "browser" });
    expect(decode(frame)).toEqual({ type: "hello", task_id: "t", name, kind: "browser" });
  });

  it("uses bin16/bin32 and str16 for big values", () => {
    const big = new Weights(["a", "b"], [[100], [20000]], [new Float32Array(100).fill(1), new Float32Array(20000).fill(-2)]);
    const message: Message = { type: "update", round: 70000, num_samples: 3, weights: big, metrics: {} };
    const frame = encode(message);
    expect(comparable(decode(frame))).toEqual(comparable(message));
    const error = encode({ type: "error", code: "shape", message: "é".repeat(40000) });
    expect(decode(error)).toEqual({ type: "error", code: "shape", message: "é".repeat(40000) });
  });
});

describe("encode, cross-checked with @msgpack/msgpack (no float fields: its bytes are canonical)", () => {
  it.each([1, 7, 40, 300, 3000])("%i tensors of growing sizes", (n) => {
    const names = Array.from({ length: n }, (_, i) => `block_${i}.layer_${"x".repeat(i % 40)}.kernel`);
    const shapes = names.map((_, i) => (i % 5 === 0 ? [] : [i % 7, 3]));
    const values = shapes.map((s, i) => Float32Array.from({ length: s.length ? (s[0] ?? 0) * 3 : 1 }, (_, k) => i - k / 3));
    const weights = new Weights(names, shapes, values);
    const message: Message = { type: "result", round: 2 ** 33 + n, weights, contributors: n, num_samples: 65536 * n, metrics: {} };
    const data = new Uint8Array(weights.nbytes);
    let at = 0;
    for (const v of values) {
      data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
      at += v.byteLength;
    }
    const wire = { ...message, v: 1, weights: { data, names, shapes } };
    const frame = encode(message);
    expect(toHex(frame)).toBe(toHex(referenceEncode(wire, { sortKeys: true })));
    expect(comparable(decode(frame))).toEqual(comparable(message));
  });
});

describe("decode", () => {
  it("rejects frames above maxSize", () => {
    const frame = encode({ type: "leave" });
    expect(() => decode(frame, 3)).toThrow(/exceeds the limit of 3/);
  });

  it("rejects floats, booleans and strings in integer fields", () => {
    // {"participants": 3, "reported": 1.0, "round": true, "type": "ack", "v": 1}
    const frame = fromHex("85ac7061727469636970616e747303a87265706f72746564cb3ff0000000000000a5726f756e64c3a474797065a361636ba17601");
    expect(() => decode(frame)).toThrow(/round: input should be a valid integer, got true; reported: input should be a valid integer, got 1 \(a float\)/);
  });

  it("accepts an ArrayBuffer", () => {
    const frame = encode({ type: "leave" });
    expect(decode(frame.slice().buffer)).toEqual({ type: "leave" });
  });
});
