/**
 * Every message of the wire protocol (docs/protocol.md §6), as `disco.protocol` in Python: the
 * messages of every session (`disco.protocol.messages`), those of decentralized sessions and
 * the peer-to-peer frames (`disco.protocol.peers`), and which travel where
 * (`disco.protocol.union`).
 *
 * Messages are plain objects discriminated by `type`; fields carry their **wire names**
 * (`task_id`, `num_samples`, ...), so a message and its frame map one to one. `validateMessage`
 * checks a decoded frame field by field, like the Python (pydantic) models, and fills defaults;
 * `toWire` gives a valid message's frame map (float fields as float64) for the codec.
 */

import { ProtocolError } from "../errors";
import { Weights } from "../weights";
import { MsgFloat, type WireMap, type WireValue } from "./msgpack";

/** Version carried by every frame; a peer speaking another version is refused. */
export const PROTOCOL_VERSION = 2;

/**
 * The optional parts of the protocol (names for `Hello.capabilities`), as Python's
 * `CAPABILITIES`. The web client announces `[]` in federated sessions and `["decentralized"]` as
 * a peer of a decentralized one (core/decentralized/peer.ts).
 */
export const CAPABILITIES = ["decentralized"] as const;
/** A capability name: lowercase ASCII letters, digits and `_`, starting with a letter, at most 32 characters. */
export const CAPABILITY_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
/** Most capabilities one `Hello` or `Welcome` lists. */
export const MAX_CAPABILITIES = 32;

/** Largest integer every implementation (JavaScript included) represents exactly: 2^53 − 1. */
export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;

/** Largest `ModelUpdate.num_samples`: 2^40. */
export const MAX_NUM_SAMPLES = 2 ** 40;

/** Most peers one round may list (the largest `min_participants` a task may ask for). */
export const MAX_ROUND_PEERS = 10_000;
/** Longest signalling payload (code points): an SDP with every candidate fits easily. */
export const MAX_SIGNAL = 65_536;
/** Longest deadline of a round plan (`connect_s`, `exchange_s`): one day, in seconds. */
export const MAX_PLAN_SECONDS = 86_400;
/** A weights digest: lowercase hex SHA-256 (docs/protocol.md §12). */
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

/** Machine-readable reasons of an `ErrorMessage` (§7). */
export const ERROR_CODES = [
  "malformed", // the frame is not a valid message
  "version", // unsupported protocol version
  "unexpected", // a valid message that is not allowed now (e.g. update before hello)
  "unknown_task",
  "stale", // update for a round that already closed
  "duplicate", // second update from the same participant (same key) in one round
  "future", // update for a round that has not started
  "shape", // update does not fit the task's model
  "not_finite", // update contains NaN or infinity
  "out_of_range", // update the aggregation cannot take (e.g. a change beyond its bounds)
  "too_large", // frame exceeds the server's size limit
  "unsupported", // needs a capability this connection did not agree on
  "unknown_peer", // a signal for a peer that is not in the session
] as const;
/** One of `ERROR_CODES`. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Participation state of a session (§10). */
export const SESSION_STATES = ["waiting_for_participants", "enough_participants"] as const;
/** One of `SESSION_STATES`. */
export type SessionState = (typeof SESSION_STATES)[number];

/** The participant's implementation, sent in `Hello.kind`. */
export type ClientKind = "python" | "browser";

/** Training metrics (finite numbers; an absent key means unknown). */
export interface Metrics {
  train_loss?: number;
  train_accuracy?: number;
  val_loss?: number;
  val_accuracy?: number;
}
/** The four metric names, in wire order. */
export const METRIC_NAMES = ["train_accuracy", "train_loss", "val_accuracy", "val_loss"] as const;

// -- client → server -----------------------------------------------------------------------

/** First message of a participant: which task it joins and what it is (C→S). */
export interface Hello {
  type: "hello";
  task_id: string;
  name: string;
  kind: ClientKind;
  /**
   * A random secret the participant keeps for the whole run (16–128 characters); reconnecting
   * with it makes it the same participant. Absent: every connection is a new participant.
   */
  participant_key?: string;
  /**
   * Optional parts of the protocol the client speaks (each matching `CAPABILITY_PATTERN`, at
   * most `MAX_CAPABILITIES`, distinct; unknown names are ignored by the server). Always written.
   */
  capabilities: string[];
}
/** The participant's weights after training on the global model of `round` (C→S). */
export interface ModelUpdate {
  type: "update";
  round: number;
  num_samples: number;
  weights: Weights;
  metrics: Metrics;
}
/** The participant leaves on purpose (C→S). */
export interface Leave {
  type: "leave";
}

// -- server → client -----------------------------------------------------------------------

/** Answer to `Hello`: the participant's identity in the session and the current global model (S→C). */
export interface Welcome {
  type: "welcome";
  /** The participant's identity in the session (the same after a reconnect with the same `participant_key`). */
  client_id: string;
  task_id: string;
  round: number;
  /** The open round's global model; absent in a decentralized session, whose models travel between peers only. */
  weights?: Weights;
  participants: number;
  min_participants: number;
  state: SessionState;
  /** The capabilities in use on this connection (announced by the client and used by the session). */
  capabilities: string[];
}
/** The session changed: someone joined or left, or an update was accepted (S→C). */
export interface Status {
  type: "status";
  round: number;
  participants: number;
  min_participants: number;
  reported: number;
  state: SessionState;
}
/** The server accepted an update for `round` (S→C). */
export interface UpdateAck {
  type: "ack";
  round: number;
  reported: number;
  participants: number;
}
/** A round closed: the new global model, which opens round `round` (S→C). */
export interface RoundResult {
  type: "result";
  round: number;
  weights: Weights;
  contributors: number;
  num_samples: number;
  metrics: Metrics;
}
/** Something the participant sent was refused; nothing else changed (S→C, and peer to peer). */
export interface ErrorMessage {
  type: "error";
  code: ErrorCode;
  message: string;
  round?: number;
}

// -- decentralized sessions (capability "decentralized") -------------------------------------

/** The shape of a round's graph of peers. */
export type Topology = "all_to_all" | "sparse";
/** What a `Signal` carries. */
export type SignalKind = "offer" | "answer" | "candidate";

/** One peer of a round as another peer sees it. */
export interface PeerInfo {
  /** 1–64 code points. */
  id: string;
  /** Display name, 0–100 code points (default `""`). */
  name: string;
  kind: ClientKind;
  /** Its mixing weight in a sparse round, in [0, 1] (a float64 on the wire). */
  weight: number;
}
/** Round `round` starts: train on its model, open channels to `peers` (S→peer). */
export interface RoundPlan {
  type: "plan";
  round: number;
  /** This peer's neighbours (at most `MAX_ROUND_PEERS`, distinct ids). */
  peers: PeerInfo[];
  /** Peers in the round, this one included (1 to `MAX_ROUND_PEERS`). */
  members: number;
  topology: Topology;
  /** Its own mixing weight (sparse rounds), in [0, 1]. */
  self_weight: number;
  /** The digest of the round's model. */
  digest?: string;
  /** Fetch the round's model from this peer. */
  model_from?: string;
  /** Time to open the channels (s), in (0, 86400]. */
  connect_s: number;
  /** Time for updates after `exchange` (s), in (0, 86400]. */
  exchange_s: number;
}
/**
 * WebRTC signalling, relayed by the server (peer↔S): `peer` is the recipient when a peer sends
 * it, the sender when the server delivers it.
 */
export interface Signal {
  type: "signal";
  peer: string;
  kind: SignalKind;
  /** At most `MAX_SIGNAL` code points. */
  data: string;
}
/** The round's peers this one has an open channel to (peer→S). */
export interface Ready {
  type: "ready";
  round: number;
  connected: string[];
}
/** The barrier is passed: every listed peer has its channels open; exchange with them (S→peer). */
export interface Exchange {
  type: "exchange";
  round: number;
  peers: string[];
}
/** The peers whose updates of `round` this one holds, whole and checked, its own excluded (peer→S). */
export interface Received {
  type: "received";
  round: number;
  peers: string[];
}
/** Combine exactly these peers' updates of `round` (every one of them reached every peer) (S→peer). */
export interface Combine {
  type: "combine";
  round: number;
  peers: string[];
}
/** The digest of the model this peer ends round `round` with, the model of round + 1 (peer→S). */
export interface DigestReport {
  type: "digest";
  round: number;
  digest: string;
}
/** This peer's model after `round` differs from the agreed one: fetch it from `peer` (S→peer). */
export interface Resync {
  type: "resync";
  /** The round the model opens (≥ 1). */
  round: number;
  digest: string;
  peer: string;
}

// -- peer ↔ peer -----------------------------------------------------------------------------

/** The sender's weights after training on round `round`'s model. */
export interface PeerUpdate {
  type: "peer_update";
  round: number;
  num_samples: number;
  weights: Weights;
  digest: string;
  metrics: Metrics;
}
/** The update of `round` with `digest` arrived whole. */
export interface PeerAck {
  type: "peer_ack";
  round: number;
  digest: string;
}
/** Send me the model that opens round `round`. */
export interface ModelRequest {
  type: "model_request";
  round: number;
}
/** The model that opens round `round`. */
export interface PeerModel {
  type: "model";
  round: number;
  weights: Weights;
  digest: string;
}

// -- which messages travel where -------------------------------------------------------------

/** Messages a participant sends to the server. */
export type ClientMessage = Hello | ModelUpdate | Leave | Signal | Ready | Received | DigestReport;
/** Messages a server sends to a participant. */
export type ServerMessage =
  | Welcome
  | Status
  | UpdateAck
  | RoundResult
  | ErrorMessage
  | RoundPlan
  | Signal
  | Exchange
  | Combine
  | Resync;
/** Messages between two peers, on their own channel (never through the server). */
export type PeerMessage = PeerUpdate | PeerAck | ModelRequest | PeerModel | ErrorMessage;
/** Messages between server and client that belong to capability `decentralized`. */
export type DecentralizedMessage = RoundPlan | Signal | Ready | Exchange | Received | Combine | DigestReport | Resync;
/** Every protocol message. */
export type Message = ClientMessage | ServerMessage | PeerMessage;
/** The wire `type` of a message. */
export type MessageType = Message["type"];

/** Message types between server and client that belong to capability `decentralized` (sorted). */
export const DECENTRALIZED_TYPES = [
  "combine",
  "digest",
  "exchange",
  "plan",
  "ready",
  "received",
  "resync",
  "signal",
] as const satisfies readonly DecentralizedMessage["type"][];
/** Message types that travel only between two peers, sorted (`error` may too). */
export const PEER_TYPES = ["model", "model_request", "peer_ack", "peer_update"] as const satisfies readonly Exclude<
  PeerMessage["type"],
  "error"
>[];

// Each set is checked against its union type: a missing or extra type does not compile.
const CLIENT_SENDS: Record<ClientMessage["type"], true> = {
  hello: true,
  update: true,
  leave: true,
  signal: true,
  ready: true,
  received: true,
  digest: true,
};
const SERVER_SENDS: Record<ServerMessage["type"], true> = {
  welcome: true,
  status: true,
  ack: true,
  result: true,
  error: true,
  plan: true,
  signal: true,
  exchange: true,
  combine: true,
  resync: true,
};
const PEER_SENDS: Record<PeerMessage["type"], true> = {
  peer_update: true,
  peer_ack: true,
  model_request: true,
  model: true,
  error: true,
};
const DECENTRALIZED: Record<DecentralizedMessage["type"], true> = {
  plan: true,
  signal: true,
  ready: true,
  exchange: true,
  received: true,
  combine: true,
  digest: true,
  resync: true,
};

// -- validation ----------------------------------------------------------------------------

type Spec =
  | { t: "int"; min: number; max: number }
  /** A number (a msgpack float or integer), `min ≤ x` (`min < x` when `above`) and `x ≤ max`. */
  | { t: "float"; min: number; max: number; above?: boolean }
  | { t: "str"; min?: number; max?: number; pattern?: RegExp }
  | { t: "enum"; values: readonly string[] }
  | { t: "weights" }
  | { t: "metrics" }
  /** An array of at most `max` items; `distinct`: the items (or their `key` field) differ, else "<distinct> must be distinct". */
  | { t: "list"; item: Spec; max: number; distinct?: string; key?: string }
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

/** Field rules of each message type, in the order errors are reported (Python's field order). */
const SCHEMAS: Record<MessageType, Schema> = {
  hello: {
    task_id: str(1, 64),
    name: { ...str(0, 100), default: "" },
    kind: kinds,
    participant_key: { ...str(16, 128), optional: true },
    capabilities,
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
 * present field, float fields (metrics, mixing weights, deadlines) as `MsgFloat` so that they are
 * written as float64, nested maps as maps, weights through `weightsToWire`.
 */
export function toWire(message: Message, weightsToWire: (w: Weights) => WireValue): WireMap {
  const fields = message as unknown as Record<string, unknown>;
  return { type: message.type, ...wireFields(SCHEMAS[message.type], fields, weightsToWire) };
}

// -- where messages travel -----------------------------------------------------------------

/** Whether `message` is one a server sends (the messages a client must accept). */
export function isServerMessage(message: Message): message is ServerMessage {
  return Object.hasOwn(SERVER_SENDS, message.type);
}
/** Whether `message` is one a client sends to the server (the messages a server must accept). */
export function isClientMessage(message: Message): message is ClientMessage {
  return Object.hasOwn(CLIENT_SENDS, message.type);
}
/** Whether `message` is one that travels between two peers (`error` included). */
export function isPeerMessage(message: Message): message is PeerMessage {
  return Object.hasOwn(PEER_SENDS, message.type);
}
/** Whether `message` belongs to capability `decentralized` (between server and client). */
export function isDecentralizedMessage(message: Message): message is DecentralizedMessage {
  return Object.hasOwn(DECENTRALIZED, message.type);
}
