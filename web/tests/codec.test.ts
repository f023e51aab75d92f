/** The codec against the shared vectors (docs/protocol.md §15) plus a few targeted checks. */

import { encode as referenceEncode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { ProtocolError, VersionError } from "../src/core/errors";
import {
  DECENTRALIZED_TYPES,
  decode,
  encode,
  isClientMessage,
  isDecentralizedMessage,
  isPeerMessage,
  isSecureMessage,
  isServerMessage,
  MAX_SECURE_WORDS,
  MESSAGE_TYPES,
  PEER_TYPES,
  PROTOCOL_VERSION,
  SECURE_TYPES,
  type Message,
} from "../src/core/protocol";
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
  it("are this version's", () => {
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
    expect(() => encode({ type: "hello", task_id: "x".repeat(65), name: "", kind: "browser", capabilities: [] })).toThrow(ProtocolError);
    expect(() => encode({ type: "ack", round: 1.5, reported: 0, participants: 0 })).toThrow(/valid integer/);
  });

  it("counts string limits in code points", () => {
    const name = "🚀".repeat(100); // 200 UTF-16 units, 100 code points
    const frame = encode({ type: "hello", task_id: "t", name, kind: "browser", capabilities: [] });
    expect(decode(frame)).toEqual({ type: "hello", task_id: "t", name, kind: "browser", capabilities: [] });
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

describe("capabilities, decentralized sessions and peer frames", () => {
  const digest = "0123456789abcdef".repeat(4);
  const peer = { id: "p-a", name: "", kind: "python", weight: 0.5 } as const;
  const plan: Message = {
    type: "plan", round: 0, peers: [peer], members: 2, topology: "all_to_all", self_weight: 0.5, connect_s: 30, exchange_s: 60,
  };
  const refused = (message: object): string => {
    try {
      encode(message as Message);
    } catch (exc) {
      expect(exc).toBeInstanceOf(ProtocolError);
      return (exc as ProtocolError).message;
    }
    throw new Error("encoded");
  };

  it("always writes Hello.capabilities and Welcome.capabilities, and leaves out a Welcome's absent weights", () => {
    const hello = encode({ type: "hello", task_id: "t" } as Message); // defaults filled in
    expect(toHex(hello)).toContain("ac6361706162696c697469657390"); // "capabilities": []
    expect(decode(hello)).toEqual({ type: "hello", task_id: "t", name: "", kind: "python", capabilities: [] });
    const welcome: Message = {
      type: "welcome", client_id: "c", task_id: "t", round: 0, participants: 1, min_participants: 1, state: "enough_participants", capabilities: [],
    };
    const frame = encode(welcome);
    expect(toHex(frame)).not.toContain(toHex(new TextEncoder().encode("weights")));
    expect(decode(frame)).toEqual(welcome);
  });

  it("writes float fields as float64, integral ones included, and a round's peers as maps with sorted keys", () => {
    const hex = toHex(encode(plan));
    expect(hex).toContain("a9636f6e6e6563745f73cb403e000000000000"); // "connect_s" 30.0
    expect(hex).toContain("aa65786368616e67655f73cb404e000000000000"); // "exchange_s" 60.0
    // [{"id": "p-a", "kind": "python", "name": "", "weight": 0.5}]
    expect(hex).toContain("9184a26964a3702d61a46b696e64a6707974686f6ea46e616d65a0a6776569676874cb3fe0000000000000");
    const absent = { ...plan, peers: [{ id: "p-a", weight: 1 }] } as Message; // name and kind take their defaults
    expect(decode(encode(absent))).toMatchObject({ peers: [{ id: "p-a", name: "", kind: "python", weight: 1 }] });
  });

  it("accepts integers where floats are expected (JavaScript encoders write 1.0 as 1)", () => {
    const wire = { ...plan, v: PROTOCOL_VERSION, peers: [{ ...peer, weight: 1 }], self_weight: 0, connect_s: 30 };
    const frame = referenceEncode(wire, { sortKeys: true });
    expect(toHex(frame)).toContain("a9636f6e6e6563745f731e"); // "connect_s" as the integer 30
    expect(decode(frame)).toEqual({ ...plan, peers: [{ ...peer, weight: 1 }], self_weight: 0 });
  });

  it("keeps optional plan fields out when absent and writes them when present", () => {
    expect(decode(encode(plan))).toEqual(plan);
    const late = { ...plan, digest, model_from: "p-a" };
    expect(decode(encode(late))).toEqual(late);
  });

  it("refuses what Python refuses", () => {
    expect(refused({ type: "hello", task_id: "t", capabilities: ["a", "a"] })).toMatch(/capabilities must be distinct/);
    expect(refused({ type: "hello", task_id: "t", capabilities: ["a".repeat(33)] })).toMatch(/capabilities\.0: string should match pattern/);
    expect(refused({ type: "hello", task_id: "t", capabilities: ["_x"] })).toMatch(/match pattern/);
    expect(refused({ ...plan, peers: [peer, { ...peer, name: "other" }] })).toMatch(/peers: value error, peer ids must be distinct/);
    expect(refused({ ...plan, peers: [{ ...peer, role: "x" }] })).toMatch(/peers\.0\.role: extra inputs are not permitted/);
    expect(refused({ ...plan, peers: [{ ...peer, id: "" }] })).toMatch(/peers\.0\.id: string should have at least 1 character/);
    expect(refused({ ...plan, peers: ["p-a"] })).toMatch(/peers\.0: input should be a valid map/);
    expect(refused({ ...plan, members: 10_001 })).toMatch(/members: input should be less than or equal to 10000/);
    expect(refused({ ...plan, self_weight: NaN })).toMatch(/self_weight: input should be greater than or equal to 0, got NaN/);
    expect(refused({ ...plan, self_weight: -0.1 })).toMatch(/self_weight: input should be greater than or equal to 0/);
    expect(refused({ ...plan, connect_s: 0 })).toMatch(/connect_s: input should be greater than 0, got 0/);
    expect(refused({ ...plan, exchange_s: 86_400.5 })).toMatch(/exchange_s: input should be less than or equal to 86400/);
    expect(refused({ ...plan, exchange_s: Infinity })).toMatch(/exchange_s: input should be less than or equal to 86400/);
    expect(refused({ ...plan, connect_s: "30" })).toMatch(/connect_s: input should be a valid number/);
    expect(refused({ ...plan, digest: digest.toUpperCase() })).toMatch(/digest: string should match pattern/);
    expect(refused({ ...plan, model_from: "x".repeat(65) })).toMatch(/model_from: string should have at most 64 characters/);
    expect(refused({ type: "resync", round: 0, digest, peer: "p-a" })).toMatch(/round: input should be greater than or equal to 1/);
    expect(refused({ type: "digest", round: 0, digest: `${digest}\n` })).toMatch(/match pattern/);
    expect(refused({ type: "ready", round: 0, connected: Array.from({ length: 10_001 }, (_, i) => `p-${i}`) })).toMatch(
      /connected: list should have at most 10000 items after validation, not 10001/,
    );
    expect(refused({ type: "combine", round: 0, peers: ["p-a", ""] })).toMatch(/peers\.1: string should have at least 1 character/);
    expect(refused({ type: "received", round: 0, peers: "p-a" })).toMatch(/peers: input should be a valid list/);
    const w = new Weights(["w"], [[1]], [new Float32Array(1)]);
    expect(refused({ type: "peer_update", round: 0, num_samples: 0, weights: w, digest })).toMatch(/num_samples: input should be greater than or equal to 1/);
    expect(refused({ type: "model", round: 0, weights: w })).toMatch(/digest: field required/);
  });

  it("counts a signal's data in code points", () => {
    const data = "🚀".repeat(65_536); // 131072 UTF-16 units, 65536 code points: the limit
    expect(decode(encode({ type: "signal", peer: "p-a", kind: "candidate", data }))).toMatchObject({ data });
    expect(refused({ type: "signal", peer: "p-a", kind: "answer", data: `${data}x` })).toMatch(/data: string should have at most 65536 characters, got 65537/);
  });

  it("sorts every message type into where it travels, as Python's unions", () => {
    const client = [
      "hello", "update", "leave", "signal", "ready", "received", "digest", "secure_keys", "secure_shares", "secure_input", "secure_reveal",
    ];
    const server = [
      "welcome", "status", "ack", "result", "error", "plan", "signal", "exchange", "combine", "resync",
      "secure_setup", "secure_inbox", "secure_unmask", "secure_abort", "secure_reveals",
    ];
    const peers = ["peer_update", "peer_ack", "model_request", "model", "peer_masked", "error"];
    for (const type of MESSAGE_TYPES) {
      const message = { type } as Message;
      expect(isClientMessage(message), type).toBe(client.includes(type));
      expect(isServerMessage(message), type).toBe(server.includes(type));
      expect(isPeerMessage(message), type).toBe(peers.includes(type));
      expect(isDecentralizedMessage(message), type).toBe((DECENTRALIZED_TYPES as readonly string[]).includes(type));
      expect(isSecureMessage(message), type).toBe((SECURE_TYPES as readonly string[]).includes(type));
      expect(client.includes(type) || server.includes(type) || peers.includes(type), type).toBe(true);
    }
    expect([...PEER_TYPES].sort()).toEqual(peers.filter((t) => t !== "error").sort());
    expect([...SECURE_TYPES]).toEqual([...MESSAGE_TYPES.filter((t) => t.startsWith("secure_")), "peer_masked"].sort());
  });
});

describe("secure aggregation's messages", () => {
  const bytes = (n: number, fill = 4): Uint8Array => new Uint8Array(n).fill(fill);
  const key = bytes(65);
  const member = { id: "p-a", position: 1, c_public: key, s_public: key };
  const setup: Message = {
    type: "secure_setup", round: 2, members: [member], threshold: 1, clip: 1, weight_cap: 1024, bits: 17, length: 4,
  };
  const envelope = { peer: "p-b", data: bytes(82) };
  const shares: Message = { type: "secure_shares", round: 2, commitment: bytes(32), envelopes: [envelope] };
  const share = { of: "p-a", kind: "self", share: bytes(33) } as const;
  const refused = (message: object): string => {
    try {
      encode(message as Message);
    } catch (exc) {
      expect(exc).toBeInstanceOf(ProtocolError);
      return (exc as ProtocolError).message;
    }
    throw new Error("encoded");
  };
  /** A frame as another encoder writes it (`message` with `v`, keys sorted). */
  const frameOf = (message: object): Uint8Array => referenceEncode({ ...message, v: PROTOCOL_VERSION }, { sortKeys: true });

  it("write binary fields as msgpack bin and decode them as Uint8Array, in nested maps too", () => {
    const words = Uint8Array.from({ length: 4 * 100 }, (_, i) => i % 256);
    const frame = encode({ type: "secure_input", round: 0, words });
    expect(toHex(frame)).toContain(`a5776f726473c50190${toHex(words)}`); // "words": bin16 of 400 bytes
    const decoded = decode(frame) as Extract<Message, { type: "secure_input" }>;
    expect(decoded.words).toBeInstanceOf(Uint8Array);
    expect(toHex(decoded.words)).toBe(toHex(words));
    const back = decode(encode(shares)) as Extract<Message, { type: "secure_shares" }>;
    expect(back.envelopes[0]?.data).toBeInstanceOf(Uint8Array);
    expect(comparable(back)).toEqual(comparable(shares));
  });

  it("write the same bytes as another msgpack encoder (no float fields)", () => {
    const reveal: Message = { type: "secure_reveal", round: 3, shares: [share, { of: "p-b", kind: "key", share: bytes(33, 7) }] };
    expect(toHex(encode(reveal))).toBe(toHex(frameOf(reveal)));
    expect(toHex(encode(shares))).toBe(toHex(frameOf(shares)));
  });

  it("write clip as float64 and accept an integer clip (JavaScript encoders write 1.0 as 1)", () => {
    expect(toHex(encode(setup))).toContain("a4636c6970cb3ff0000000000000"); // "clip": 1.0
    const frame = frameOf(setup);
    expect(toHex(frame)).toContain("a4636c697001"); // "clip" as the integer 1
    expect(comparable(decode(frame))).toEqual(comparable(setup));
  });

  it("refuse a binary field that is not binary or has the wrong length, naming it", () => {
    const keys = { type: "secure_keys", round: 0, c_public: key, s_public: key };
    expect(refused({ ...keys, s_public: "04".repeat(65) })).toMatch(/s_public: input should be binary data \(msgpack bin\), got '0404/);
    expect(refused({ ...keys, c_public: [...key] })).toMatch(/c_public: input should be binary data \(msgpack bin\), got an array/);
    expect(refused({ ...keys, c_public: bytes(64) })).toMatch(/c_public: data should have at least 65 bytes, got 64/);
    expect(refused({ ...keys, s_public: bytes(66) })).toMatch(/s_public: data should have at most 65 bytes, got 66/);
    expect(refused({ ...shares, commitment: bytes(31) })).toMatch(/commitment: data should have at least 32 bytes/);
    expect(refused({ ...shares, envelopes: [{ ...envelope, data: bytes(83) }] })).toMatch(/envelopes\.0\.data: data should have at most 82 bytes/);
    const reveal = { type: "secure_reveal", round: 0, shares: [share] };
    expect(refused({ ...reveal, shares: [{ ...share, share: bytes(32) }] })).toMatch(/shares\.0\.share: data should have at least 33 bytes/);
    expect(refused({ ...setup, members: [member, { ...member, id: "p-b", c_public: bytes(1) }] })).toMatch(
      /members\.1\.c_public: data should have at least 65 bytes, got 1/,
    );
    expect(refused({ type: "secure_input", round: 0, words: bytes(3) })).toMatch(/words: data should have at least 4 bytes, got 3/);
    expect(refused({ type: "secure_input", round: 0 })).toMatch(/words: field required/);
    class Huge extends Uint8Array {
      override get length(): number {
        return 4 * MAX_SECURE_WORDS + 1;
      }
    }
    expect(refused({ type: "secure_input", round: 0, words: new Huge(4) })).toMatch(/words: data should have at most 2147483648 bytes, got 2147483649/);
    // as Python: a length that is not a multiple of 4 is the session's to refuse, not the codec's
    expect(decode(encode({ type: "secure_input", round: 0, words: bytes(5) }))).toMatchObject({ words: bytes(5) });
  });

  it("refuse what Python refuses", () => {
    expect(refused({ ...setup, members: [] })).toMatch(/members: list should have at least 1 item after validation, not 0/);
    const many = Array.from({ length: 10_001 }, (_, i) => ({ ...member, id: `p-${i}` }));
    expect(refused({ ...setup, members: many })).toMatch(/members: list should have at most 10000 items after validation, not 10001/);
    expect(refused({ ...setup, members: ["p-a"] })).toMatch(/members\.0: input should be a valid map \(a member\)/);
    expect(refused({ ...setup, members: [{ ...member, position: 0 }] })).toMatch(/members\.0\.position: input should be greater than or equal to 1/);
    expect(refused({ ...setup, members: [{ ...member, id: "" }] })).toMatch(/members\.0\.id: string should have at least 1 character/);
    expect(refused({ ...setup, threshold: 0 })).toMatch(/threshold: input should be greater than or equal to 1/);
    expect(refused({ ...setup, threshold: 10_001 })).toMatch(/threshold: input should be less than or equal to 10000/);
    expect(refused({ ...setup, clip: 0 })).toMatch(/clip: input should be greater than 0, got 0/);
    expect(refused({ ...setup, clip: NaN })).toMatch(/clip: input should be greater than 0, got NaN/);
    expect(refused({ ...setup, clip: 1e6 + 1 })).toMatch(/clip: input should be less than or equal to 1000000/);
    expect(decode(encode({ ...setup, clip: 1e6 }))).toMatchObject({ clip: 1e6 });
    expect(refused({ ...setup, weight_cap: 0 })).toMatch(/weight_cap: input should be greater than or equal to 1/);
    expect(refused({ ...setup, weight_cap: 65_537 })).toMatch(/weight_cap: input should be less than or equal to 65536/);
    expect(refused({ ...setup, bits: -1 })).toMatch(/bits: input should be greater than or equal to 0/);
    expect(refused({ ...setup, bits: 65 })).toMatch(/bits: input should be less than or equal to 64/);
    expect(refused({ ...setup, bits: 1.5 })).toMatch(/bits: input should be a valid integer/);
    expect(refused({ ...setup, length: 0 })).toMatch(/length: input should be greater than or equal to 1/);
    expect(refused({ ...setup, length: MAX_SECURE_WORDS + 1 })).toMatch(/length: input should be less than or equal to 536870912/);
    expect(refused({ ...shares, envelopes: [envelope, { ...envelope, data: bytes(82, 9) }] })).toMatch(/envelopes: value error, peer ids must be distinct/);
    expect(refused({ ...shares, envelopes: [{ ...envelope, extra: 1 }] })).toMatch(/envelopes\.0\.extra: extra inputs are not permitted/);
    // an inbox's envelopes need no distinct senders in Python, its senders do
    const inbox = { type: "secure_inbox", round: 0, senders: ["p-a", "p-b"], envelopes: [envelope, envelope] };
    expect(comparable(decode(encode(inbox as Message)))).toEqual(comparable(inbox as Message));
    expect(refused({ ...inbox, senders: ["p-a", "p-a"] })).toMatch(/senders: value error, peer ids must be distinct/);
    const unmask = { type: "secure_unmask", round: 0, survivors: ["p-a"], dropped: [] };
    expect(refused({ ...unmask, survivors: ["p-a", "p-a"] })).toMatch(/survivors: value error, peer ids must be distinct/);
    expect(refused({ ...unmask, dropped: ["p-b", "p-b"] })).toMatch(/dropped: value error, peer ids must be distinct/);
    const reveal = { type: "secure_reveal", round: 0, shares: [share] };
    expect(refused({ ...reveal, shares: [{ ...share, kind: "both" }] })).toMatch(/shares\.0\.kind: input should be 'self' or 'key', got 'both'/);
    expect(refused({ ...reveal, shares: [{ ...share, of: "x".repeat(65) }] })).toMatch(/shares\.0\.of: string should have at most 64 characters/);
    expect(refused({ type: "secure_keys", round: -1, c_public: key, s_public: key })).toMatch(/round: input should be greater than or equal to 0/);
  });

  it("count an abort's reason in code points", () => {
    const reason = "🚀".repeat(1000); // 2000 UTF-16 units, 1000 code points: the limit
    expect(decode(encode({ type: "secure_abort", round: 1, reason }))).toEqual({ type: "secure_abort", round: 1, reason });
    expect(refused({ type: "secure_abort", round: 1, reason: `${reason}x` })).toMatch(/reason: string should have at most 1000 characters, got 1001/);
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
    const wire = { ...message, v: PROTOCOL_VERSION, weights: { data, names, shapes } };
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
    // {"participants": 3, "reported": 1.0, "round": true, "type": "ack", "v": 2}
    const frame = fromHex("85ac7061727469636970616e747303a87265706f72746564cb3ff0000000000000a5726f756e64c3a474797065a361636ba17602");
    expect(() => decode(frame)).toThrow(/round: input should be a valid integer, got true; reported: input should be a valid integer, got 1 \(a float\)/);
  });

  it("accepts an ArrayBuffer", () => {
    const frame = encode({ type: "leave" });
    expect(decode(frame.slice().buffer)).toEqual({ type: "leave" });
  });
});
