/**
 * The messages every session uses (docs/protocol.md §6), as Python's `disco.protocol.messages`:
 * joining, federated rounds, errors. Those of decentralized sessions and the peer-to-peer frames
 * are in `./peers.ts` (`disco.protocol.peers`), which travel where in `./union.ts`
 * (`disco.protocol.union`), the field rules of each in `./schema.ts`.
 *
 * Messages are plain objects discriminated by `type`; fields carry their **wire names**
 * (`task_id`, `num_samples`, ...), so a message and its frame map one to one.
 */

import type { Weights } from "../weights";

/** Version carried by every frame; a peer speaking another version is refused. */
export const PROTOCOL_VERSION = 2;

/**
 * The optional parts of the protocol (names for `Hello.capabilities`), as Python's
 * `CAPABILITIES`. The web client announces `[]` in plain federated sessions,
 * `["secure_aggregation"]` in a federated task with secure aggregation (core/client/secure.ts) and
 * `["decentralized"]` as a peer of a decentralized one (core/decentralized/peer.ts).
 */
export const CAPABILITIES = ["decentralized", "secure_aggregation"] as const;
/** A capability name: lowercase ASCII letters, digits and `_`, starting with a letter, at most 32 characters. */
export const CAPABILITY_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
/** Most capabilities one `Hello` or `Welcome` lists. */
export const MAX_CAPABILITIES = 32;

/** Longest `Hello.invitation`, in characters. */
export const MAX_INVITATION = 128;

/** Largest integer every implementation (JavaScript included) represents exactly: 2^53 − 1. */
export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;

/** Largest `ModelUpdate.num_samples`: 2^40. */
export const MAX_NUM_SAMPLES = 2 ** 40;

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
  "forbidden", // no valid invitation for this task on a private instance (closed with 4403)
  "limited", // a limit of the server was reached, e.g. participants of a task (closed with 4429)
  "restarting", // the server is shutting down (closed with 1012): reconnect, go on in the same round
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
  /**
   * The invitation token that lets this participant join a task of a private instance
   * (`dinv.<id>.<secret>`, 1–`MAX_INVITATION` characters); absent when there is none.
   */
  invitation?: string;
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
