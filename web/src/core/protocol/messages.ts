/**
 * Every message of the federated protocol (docs/protocol.md §6), as `disco.protocol.messages`.
 *
 * Messages are plain objects discriminated by `type`; fields carry their **wire names**
 * (`task_id`, `num_samples`, ...), so a message and its frame map one to one. `validateMessage`
 * checks a decoded frame field by field, like the Python (pydantic) models, and fills defaults.
 */

import { ProtocolError } from "../errors";
import { Weights } from "../weights";
import { MsgFloat } from "./msgpack";

/** Version carried by every frame; a peer speaking another version is refused. */
export const PROTOCOL_VERSION = 1;

/** Largest integer every implementation (JavaScript included) represents exactly: 2^53 − 1. */
export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;

/** Largest `ModelUpdate.num_samples`: 2^40. */
export const MAX_NUM_SAMPLES = 2 ** 40;

/** Machine-readable reasons of an `ErrorMessage` (§7). */
export const ERROR_CODES = [
  "malformed",
  "version",
  "unexpected",
  "unknown_task",
  "stale",
  "duplicate",
  "future",
  "shape",
  "not_finite",
  "out_of_range",
  "too_large",
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
/** Answer to `Hello`: the participant's identity in the session and the current global model (S→C). */
export interface Welcome {
  type: "welcome";
  /** The participant's identity in the session (the same after a reconnect with the same `participant_key`). */
  client_id: string;
  task_id: string;
  round: number;
  weights: Weights;
  participants: number;
  min_participants: number;
  state: SessionState;
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
/** Something the participant sent was refused; nothing else changed (S→C). */
export interface ErrorMessage {
  type: "error";
  code: ErrorCode;
  message: string;
  round?: number;
}

/** Messages a participant sends. */
export type ClientMessage = Hello | ModelUpdate | Leave;
/** Messages a server sends. */
export type ServerMessage = Welcome | Status | UpdateAck | RoundResult | ErrorMessage;
/** Every protocol message. */
export type Message = ClientMessage | ServerMessage;
/** The wire `type` of a message. */
export type MessageType = Message["type"];

// -- validation ----------------------------------------------------------------------------

type Spec =
  | { t: "int"; min: number; max: number }
  | { t: "str"; min?: number; max?: number }
  | { t: "enum"; values: readonly string[] }
  | { t: "weights" }
  | { t: "metrics" };
interface Field {
  spec: Spec;
  /** Value when the key is absent; `undefined` with `optional` means "stays absent". */
  default?: unknown;
  /** The field may be absent (or nil), and is then left out. */
  optional?: boolean;
}

const int = (min: number, max = MAX_SAFE_INT): Field => ({ spec: { t: "int", min, max } });
const str = (min?: number, max?: number): Field => ({ spec: { t: "str", min, max } });
const states: Field = { spec: { t: "enum", values: SESSION_STATES } };
const weights: Field = { spec: { t: "weights" } };
const metrics: Field = { spec: { t: "metrics" }, default: {} };

/** Field rules of each message type, in the order errors are reported. */
const SCHEMAS: Record<MessageType, Record<string, Field>> = {
  hello: {
    task_id: str(1, 64),
    name: { ...str(0, 100), default: "" },
    kind: { spec: { t: "enum", values: ["python", "browser"] }, default: "python" },
    participant_key: { ...str(16, 128), optional: true },
  },
  update: { round: int(0), num_samples: int(1, MAX_NUM_SAMPLES), weights, metrics },
  leave: {},
  welcome: {
    client_id: str(),
    task_id: str(),
    round: int(0),
    weights,
    participants: int(0),
    min_participants: int(1),
    state: states,
  },
  status: { round: int(0), participants: int(0), min_participants: int(1), reported: int(0), state: states },
  ack: { round: int(0), reported: int(0), participants: int(0) },
  result: { round: int(1), weights, contributors: int(1), num_samples: int(1), metrics },
  error: {
    code: { spec: { t: "enum", values: ERROR_CODES } },
    message: str(),
    round: { ...int(0), optional: true },
  },
};

/** The message types, for error messages and checks. */
export const MESSAGE_TYPES = Object.keys(SCHEMAS) as MessageType[];

const show = (v: unknown): string => {
  if (v instanceof MsgFloat) return `${v.value} (a float)`;
  if (typeof v === "string") return `'${v}'`;
  if (v instanceof Map) return "a map";
  if (v instanceof Uint8Array) return "binary data";
  if (Array.isArray(v)) return "an array";
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
    case "str": {
      if (typeof v !== "string") return bad(`input should be a valid string, got ${show(v)}`);
      // code points: count them when UTF-16 units could give another answer than code points
      const n = v.length > (spec.max ?? Infinity) || v.length < 2 * (spec.min ?? 0) ? [...v].length : v.length;
      if (spec.min !== undefined && n < spec.min) {
        return bad(`string should have at least ${spec.min} character${spec.min === 1 ? "" : "s"}`);
      }
      if (spec.max !== undefined && n > spec.max) return bad(`string should have at most ${spec.max} characters, got ${n}`);
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
  }
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
  const schema = SCHEMAS[type as MessageType];
  const problems: string[] = [];
  const out: Record<string, unknown> = { type };
  for (const [name, field] of Object.entries(schema)) {
    const value = map.get(name);
    if (value === undefined || value === null) {
      if (value === null && !field.optional) problems.push(`${name}: input should not be nil`);
      else if (typeof field.default === "object") out[name] = { ...field.default };
      else if (field.default !== undefined) out[name] = field.default;
      else if (!field.optional) problems.push(`${name}: field required`);
      continue;
    }
    const clean = check(field.spec, value, name, problems);
    if (clean !== undefined) out[name] = clean;
  }
  for (const key of map.keys()) {
    if (key !== "type" && !Object.hasOwn(schema, key) && map.get(key) !== undefined) {
      problems.push(`${key}: extra inputs are not permitted`);
    }
  }
  if (problems.length > 0) throw new ProtocolError(`${context} '${type}' message: ${problems.join("; ")}`);
  return out as unknown as Message;
}

/** Whether `message` comes from a server (the messages a client must accept). */
export function isServerMessage(message: Message): message is ServerMessage {
  return message.type !== "hello" && message.type !== "update" && message.type !== "leave";
}
