/**
 * The field rules of every message: `validateMessage` checks a decoded frame field by field, like
 * the Python (pydantic) models, and fills defaults; `toWire` gives a valid message's frame map
 * (float fields as float64) for the codec.
 */

import { ProtocolError } from "../errors";
import { Weights } from "../weights";
import {
  CAPABILITY_PATTERN,
  ERROR_CODES,
  MAX_CAPABILITIES,
  MAX_INVITATION,
  MAX_NUM_SAMPLES,
  MAX_SAFE_INT,
  METRIC_NAMES,
  SESSION_STATES,
  type Metrics,
} from "./messages";
import { MsgFloat, type WireMap, type WireValue } from "./msgpack";
import { DIGEST_PATTERN, MAX_PLAN_SECONDS, MAX_ROUND_PEERS, MAX_SIGNAL } from "./peers";
import {
  MAX_SECURE_BITS,
  MAX_SECURE_CLIP,
  MAX_SECURE_REASON,
  MAX_SECURE_WEIGHT_CAP,
  MAX_SECURE_WORDS,
  SECURE_COMMITMENT_BYTES,
  SECURE_ENVELOPE_BYTES,
  SECURE_PUBLIC_KEY_BYTES,
  SECURE_SHARE_BYTES,
} from "./secure";
import type { Message, MessageType } from "./union";

// -- validation ----------------------------------------------------------------------------

type Spec =
  | { t: "int"; min: number; max: number }
  /** A number (a msgpack float or integer), `min ≤ x` (`min < x` when `above`) and `x ≤ max`. */
  | { t: "float"; min: number; max: number; above?: boolean }
  | { t: "str"; min?: number; max?: number; pattern?: RegExp }
  | { t: "enum"; values: readonly string[] }
  /** Binary data (a `Uint8Array`; msgpack bin) of `min` to `max` bytes. */
  | { t: "bin"; min: number; max: number }
  | { t: "weights" }
  | { t: "metrics" }
  /**
   * An array of `min` (default 0) to `max` items; `distinct`: the items (or their `key` field)
   * differ, else "<distinct> must be distinct".
   */
  | { t: "list"; item: Spec; min?: number; max: number; distinct?: string; key?: string }
  /** A nested map with its own fields (sorted keys on the wire, like every map). */
  | { t: "map"; fields: Schema; what: string };
interface Field {
  spec: Spec;
  /** Value when the key is absent; `undefined` with `optional` means "stays absent". */
  default?: unknown;
  /** The field may be absent (or nil), and is then left out. */
  optional?: boolean;
}
type Schema = Readonly<Record<string, Field>>;

const int = (min: number, max = MAX_SAFE_INT): Field => ({ spec: { t: "int", min, max } });
const float = (min: number, max: number, above = false): Field => ({ spec: { t: "float", min, max, above } });
const str = (min?: number, max?: number, pattern?: RegExp): Field => ({ spec: { t: "str", min, max, pattern } });
const oneOf = (values: readonly string[]): Field => ({ spec: { t: "enum", values } });
const bin = (min: number, max = min): Field => ({ spec: { t: "bin", min, max } });
const states: Field = oneOf(SESSION_STATES);
const kinds: Field = { ...oneOf(["python", "browser"]), default: "python" };
const weights: Field = { spec: { t: "weights" } };
const metrics: Field = { spec: { t: "metrics" }, default: {} };
const capabilities: Field = {
  spec: { t: "list", item: str(undefined, undefined, CAPABILITY_PATTERN).spec, max: MAX_CAPABILITIES, distinct: "capabilities" },
  default: [],
};
const peerId = str(1, 64);
const peerIds: Field = { spec: { t: "list", item: peerId.spec, max: MAX_ROUND_PEERS, distinct: "peer ids" } };
const digest = str(undefined, undefined, DIGEST_PATTERN);
const seconds = float(0, MAX_PLAN_SECONDS, true);

const PEER_INFO: Schema = {
  id: peerId,
  name: { ...str(0, 100), default: "" },
  kind: kinds,
  weight: float(0, 1),
};

const publicKey = bin(SECURE_PUBLIC_KEY_BYTES);
const SECURE_MEMBER: Schema = {
  id: peerId,
  position: int(1, MAX_ROUND_PEERS),
  c_public: publicKey,
  s_public: publicKey,
};
const SECURE_ENVELOPE: Schema = { peer: peerId, data: bin(SECURE_ENVELOPE_BYTES) };
const SECURE_SHARE: Schema = { of: peerId, kind: oneOf(["self", "key"]), share: bin(SECURE_SHARE_BYTES) };
const envelope: Spec = { t: "map", fields: SECURE_ENVELOPE, what: "envelope" };
const shares: Field = {
  spec: { t: "list", item: { t: "map", fields: SECURE_SHARE, what: "share" }, max: MAX_ROUND_PEERS },
};
const SECURE_COMMITMENT: Schema = { peer: peerId, commitment: bin(SECURE_COMMITMENT_BYTES) };
const SECURE_REVEALED: Schema = { peer: peerId, shares };
const words = bin(4, 4 * MAX_SECURE_WORDS);

/** Field rules of each message type, in the order errors are reported (Python's field order). */
const SCHEMAS: Record<MessageType, Schema> = {
  hello: {
    task_id: str(1, 64),
    name: { ...str(0, 100), default: "" },
    kind: kinds,
    participant_key: { ...str(16, 128), optional: true },
    capabilities,
    invitation: { ...str(1, MAX_INVITATION), optional: true },
  },
  update: { round: int(0), num_samples: int(1, MAX_NUM_SAMPLES), weights, metrics },
  leave: {},
  welcome: {
    client_id: str(),
    task_id: str(),
    round: int(0),
    weights: { ...weights, optional: true },
    participants: int(0),
    min_participants: int(1),
    state: states,
    capabilities,
  },
  status: { round: int(0), participants: int(0), min_participants: int(1), reported: int(0), state: states },
  ack: { round: int(0), reported: int(0), participants: int(0) },
  result: { round: int(1), weights, contributors: int(1), num_samples: int(1), metrics },
  error: {
    code: oneOf(ERROR_CODES),
    message: str(),
    round: { ...int(0), optional: true },
  },
  plan: {
    round: int(0),
    peers: {
      spec: {
        t: "list",
        item: { t: "map", fields: PEER_INFO, what: "peer" },
        max: MAX_ROUND_PEERS,
        distinct: "peer ids",
        key: "id",
      },
    },
    members: int(1, MAX_ROUND_PEERS),
    topology: oneOf(["all_to_all", "sparse"]),
    self_weight: float(0, 1),
    digest: { ...digest, optional: true },
    model_from: { ...str(1, 64), optional: true },
    connect_s: seconds,
    exchange_s: seconds,
  },
  signal: { peer: peerId, kind: oneOf(["offer", "answer", "candidate"]), data: str(undefined, MAX_SIGNAL) },
  ready: { round: int(0), connected: peerIds },
  exchange: { round: int(0), peers: peerIds },
  received: { round: int(0), peers: peerIds },
  combine: { round: int(0), peers: peerIds },
  digest: { round: int(0), digest },
  resync: { round: int(1), digest, peer: peerId },
  peer_update: { round: int(0), num_samples: int(1, MAX_NUM_SAMPLES), weights, digest, metrics },
  peer_ack: { round: int(0), digest },
  model_request: { round: int(0) },
  model: { round: int(0), weights, digest },
  secure_keys: { round: int(0), c_public: publicKey, s_public: publicKey },
  secure_setup: {
    round: int(0),
    members: { spec: { t: "list", item: { t: "map", fields: SECURE_MEMBER, what: "member" }, min: 1, max: MAX_ROUND_PEERS } },
    threshold: int(1, MAX_ROUND_PEERS),
    clip: float(0, MAX_SECURE_CLIP, true),
    weight_cap: int(1, MAX_SECURE_WEIGHT_CAP),
    bits: int(0, MAX_SECURE_BITS),
    length: int(1, MAX_SECURE_WORDS),
  },
  secure_shares: {
    round: int(0),
    commitment: bin(SECURE_COMMITMENT_BYTES),
    envelopes: { spec: { t: "list", item: envelope, max: MAX_ROUND_PEERS, distinct: "peer ids", key: "peer" } },
  },
  secure_inbox: {
    round: int(0),
    senders: peerIds,
    envelopes: { spec: { t: "list", item: envelope, max: MAX_ROUND_PEERS } },
  },
  secure_input: { round: int(0), words },
  secure_unmask: { round: int(0), survivors: peerIds, dropped: peerIds },
  secure_reveal: { round: int(0), shares },
  secure_abort: { round: int(0), reason: str(undefined, MAX_SECURE_REASON) },
  secure_reveals: {
    round: int(0),
    survivors: peerIds,
    dropped: peerIds,
    commitments: {
      spec: {
        t: "list",
        item: { t: "map", fields: SECURE_COMMITMENT, what: "commitment" },
        max: MAX_ROUND_PEERS,
        distinct: "peer ids",
        key: "peer",
      },
    },
    reveals: {
      spec: {
        t: "list",
        item: { t: "map", fields: SECURE_REVEALED, what: "reveal" },
        max: MAX_ROUND_PEERS,
        distinct: "peer ids",
        key: "peer",
      },
    },
  },
  peer_masked: { round: int(0), words, digest },
};

/** The message types, in Python's order (`disco.protocol.Message`). */
export const MESSAGE_TYPES = Object.keys(SCHEMAS) as MessageType[];

const show = (v: unknown): string => {
  if (v instanceof MsgFloat) return `${v.value} (a float)`;
  if (typeof v === "string") return `'${v.length > 80 ? `${v.slice(0, 80)}...` : v}'`;
  if (v instanceof Map) return "a map";
  if (v instanceof Uint8Array) return "binary data";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object" && v !== null) return "an object";
  return String(v);
};

/** Entries of a map-like value: a `Map` (decoded) or a plain object (built in code). */
function entriesOf(v: unknown): Map<string, unknown> | null {
  if (v instanceof Map) return v as Map<string, unknown>;
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array || v instanceof Weights) {
    return null;
  }
  return new Map(Object.entries(v));
}

/** A fresh copy of a default value (arrays and maps are never shared between messages). */
const copyDefault = (v: unknown): unknown => (Array.isArray(v) ? [...v] : typeof v === "object" && v !== null ? { ...v } : v);

/** Check one value against `spec`; return the problem ("input should be ...") or the clean value. */
function check(spec: Spec, v: unknown, path: string, problems: string[]): unknown {
  const bad = (what: string): undefined => {
    problems.push(`${path}: ${what}`);
    return undefined;
  };
  switch (spec.t) {
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v)) return bad(`input should be a valid integer, got ${show(v)}`);
      if (v < spec.min) return bad(`input should be greater than or equal to ${spec.min}, got ${v}`);
      if (v > spec.max) return bad(`input should be less than or equal to ${spec.max}, got ${v}`);
      return v;
    case "float": {
      // a decoder accepts an integer where a float is expected (JavaScript encoders write 1.0 as 1)
      const x = v instanceof MsgFloat ? v.value : v;
      if (typeof x !== "number") return bad(`input should be a valid number, got ${show(v)}`);
      // written so that NaN fails the lower bound, as in Python
      if (spec.above && !(x > spec.min)) return bad(`input should be greater than ${spec.min}, got ${x}`);
      if (!spec.above && !(x >= spec.min)) return bad(`input should be greater than or equal to ${spec.min}, got ${x}`);
      if (!(x <= spec.max)) return bad(`input should be less than or equal to ${spec.max}, got ${x}`);
      return x;
    }
    case "str": {
      if (typeof v !== "string") return bad(`input should be a valid string, got ${show(v)}`);
      // code points: count them when UTF-16 units could give another answer than code points
      const n = v.length > (spec.max ?? Infinity) || v.length < 2 * (spec.min ?? 0) ? [...v].length : v.length;
      if (spec.min !== undefined && n < spec.min) {
        return bad(`string should have at least ${spec.min} character${spec.min === 1 ? "" : "s"}`);
      }
      if (spec.max !== undefined && n > spec.max) return bad(`string should have at most ${spec.max} characters, got ${n}`);
      if (spec.pattern !== undefined && !spec.pattern.test(v)) {
        return bad(`string should match pattern '${spec.pattern.source}', got ${show(v)}`);
      }
      return v;
    }
    case "enum":
      if (typeof v !== "string" || !spec.values.includes(v)) {
        const options = spec.values.map((x) => `'${x}'`);
        const last = options.pop() ?? "";
        return bad(`input should be ${options.length ? `${options.join(", ")} or ${last}` : last}, got ${show(v)}`);
      }
      return v;
    case "bin": {
      if (!(v instanceof Uint8Array)) return bad(`input should be binary data (msgpack bin), got ${show(v)}`);
      const n = v.length;
      if (n < spec.min) return bad(`data should have at least ${spec.min} byte${spec.min === 1 ? "" : "s"}, got ${n}`);
      if (n > spec.max) return bad(`data should have at most ${spec.max} byte${spec.max === 1 ? "" : "s"}, got ${n}`);
      return v;
    }
    case "weights":
      if (!(v instanceof Weights)) return bad("input should be weights");
      return v;
    case "metrics": {
      const entries = entriesOf(v);
      if (entries === null) return bad(`input should be a map of metrics, got ${show(v)}`);
      const out: Record<string, number> = {};
      for (const [key, x] of entries) {
        if (!(METRIC_NAMES as readonly string[]).includes(key)) {
          problems.push(`${path}.${key}: extra inputs are not permitted`);
          continue;
        }
        if (x === null || x === undefined) continue;
        const value = x instanceof MsgFloat ? x.value : x;
        if (typeof value !== "number") problems.push(`${path}.${key}: input should be a valid number, got ${show(x)}`);
        else if (!Number.isFinite(value)) problems.push(`${path}.${key}: metrics must be finite numbers, got ${value}`);
        else out[key] = value;
      }
      return out;
    }
    case "list": {
      if (!Array.isArray(v)) return bad(`input should be a valid list, got ${show(v)}`);
      const items = v as unknown[];
      const min = spec.min ?? 0;
      if (items.length < min) {
        return bad(`list should have at least ${min} item${min === 1 ? "" : "s"} after validation, not ${items.length}`);
      }
      if (items.length > spec.max) {
        return bad(`list should have at most ${spec.max} item${spec.max === 1 ? "" : "s"} after validation, not ${items.length}`);
      }
      const before = problems.length;
      const out = items.map((item, i) => check(spec.item, item, `${path}.${i}`, problems));
      if (problems.length > before) return undefined;
      if (spec.distinct !== undefined) {
        const key = spec.key;
        const keys = key === undefined ? out : out.map((item) => (item as Record<string, unknown>)[key]);
        if (new Set(keys).size !== keys.length) return bad(`value error, ${spec.distinct} must be distinct`);
      }
      return out;
    }
    case "map": {
      const entries = entriesOf(v);
      if (entries === null) return bad(`input should be a valid map (a ${spec.what}), got ${show(v)}`);
      const before = problems.length;
      const out = checkFields(spec.fields, entries, `${path}.`, problems);
      return problems.length > before ? undefined : out;
    }
  }
}

/** Check the fields of one map against `schema`: defaults filled, absent optional fields left out, extra keys refused. */
function checkFields(schema: Schema, map: ReadonlyMap<string, unknown>, prefix: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema)) {
    const value = map.get(name);
    if (value === undefined || value === null) {
      if (value === null && !field.optional) problems.push(`${prefix}${name}: input should not be nil`);
      else if (field.default !== undefined) out[name] = copyDefault(field.default);
      else if (!field.optional) problems.push(`${prefix}${name}: field required`);
      continue;
    }
    const clean = check(field.spec, value, `${prefix}${name}`, problems);
    if (clean !== undefined) out[name] = clean;
  }
  for (const key of map.keys()) {
    if (key !== "type" && !Object.hasOwn(schema, key) && map.get(key) !== undefined) {
      problems.push(`${prefix}${key}: extra inputs are not permitted`);
    }
  }
  return out;
}

/**
 * Validate the fields of one message (without `v`) and return the message with its defaults.
 * `fields` is a decoded map or a message object; `context` starts the error text. Throws
 * `ProtocolError` naming every bad field (`invalid 'hello' message: task_id: field required`).
 */
export function validateMessage(fields: ReadonlyMap<string, unknown> | object, context = "invalid"): Message {
  const map = entriesOf(fields) ?? new Map<string, unknown>();
  const type = map.get("type");
  if (type === undefined || type === null) {
    throw new ProtocolError(`${context} message: unable to extract tag: the frame has no 'type'`);
  }
  if (typeof type !== "string" || !Object.hasOwn(SCHEMAS, type)) {
    const tags = MESSAGE_TYPES.map((t) => `'${t}'`).join(", ");
    throw new ProtocolError(
      `${context} message: type ${show(type)} does not match any of the expected tags: ${tags}`,
    );
  }
  const problems: string[] = [];
  const out = { type, ...checkFields(SCHEMAS[type as MessageType], map, "", problems) };
  if (problems.length > 0) throw new ProtocolError(`${context} '${type}' message: ${problems.join("; ")}`);
  return out as unknown as Message;
}

// -- wire form -----------------------------------------------------------------------------

function wireValue(spec: Spec, v: unknown, weightsToWire: (w: Weights) => WireValue): WireValue {
  switch (spec.t) {
    case "float":
      return new MsgFloat(v as number);
    case "weights":
      return weightsToWire(v as Weights);
    case "metrics": {
      const out: Record<string, MsgFloat> = {};
      for (const name of METRIC_NAMES) {
        const value = (v as Metrics)[name];
        if (value !== undefined) out[name] = new MsgFloat(value);
      }
      return out;
    }
    case "list":
      return (v as unknown[]).map((item) => wireValue(spec.item, item, weightsToWire));
    case "map":
      return wireFields(spec.fields, v as Record<string, unknown>, weightsToWire);
    default:
      return v as WireValue;
  }
}

function wireFields(schema: Schema, fields: Record<string, unknown>, weightsToWire: (w: Weights) => WireValue): WireMap {
  const out: Record<string, WireValue> = {};
  for (const [name, field] of Object.entries(schema)) {
    const value = fields[name];
    if (value !== undefined && value !== null) out[name] = wireValue(field.spec, value, weightsToWire);
  }
  return out;
}

/**
 * The frame map of a **valid** message (from `validateMessage`), without `v`: `type` and every
 * present field, float fields (metrics, mixing weights, deadlines, `clip`) as `MsgFloat` so that
 * they are written as float64, nested maps as maps, binary fields as they are (`Uint8Array`,
 * written as bin), weights through `weightsToWire`.
 */
export function toWire(message: Message, weightsToWire: (w: Weights) => WireValue): WireMap {
  const fields = message as unknown as Record<string, unknown>;
  return { type: message.type, ...wireFields(SCHEMAS[message.type], fields, weightsToWire) };
}
