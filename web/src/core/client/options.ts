/**
 * What a `FederatedClient` is made with (`FederatedClientOptions`, the local training it calls),
 * what it tells whoever runs it (its `onEvent`: its state and the session's counters, each
 * closed round, log lines, each update sent) and what its `run()` resolves with. The training
 * output, the log and the sent events, the `waitForOthersMs` check and the event delivery are
 * shared with a decentralized peer (../decentralized/options.ts, events.ts, session.ts).
 */

import { SessionError } from "../errors";
import type { RandomSource } from "../privacy";
import type { Metrics } from "../protocol";
import type { PrivacyConfig, SecureAggregationConfig } from "../task";
import type { Weights } from "../weights";
import type { RawMetrics } from "./update";

/** What the client is doing, for the UI. */
export type ClientState =
  | "connecting" // opening the connection, saying hello (also while reconnecting)
  | "waiting_for_participants" // update sent; fewer than min_participants connected
  | "training" // training locally on the global model of `round`
  | "sending_update" // sending the update (again, after a reconnect)
  | "aggregating" // update in; waiting for the round to close and the new model
  | "done" // all rounds done, left the session
  | "stopped" // stopped by `stop()`
  | "error"; // failed; `message` says why

/** The client's state and the session's counters (from the last Welcome/Status/Ack/Result). */
export interface StatusEvent {
  kind: "status";
  state: ClientState;
  /** The server's open round (0-based, as on the wire). */
  round: number;
  participants: number;
  minParticipants: number;
  /** Updates accepted in the open round. */
  reported: number;
  /** While `connecting`: which attempt of this (re)connection is under way (1, 2, …); else 0. */
  attempt: number;
  /** Whether this client joined the session before (a `connecting` state is then a reconnect). */
  joined: boolean;
  /** While waiting for the round to close after this client's update: when it gives up (ms since the epoch). */
  waitUntil: number | null;
  message?: string;
}
/** A round closed: `round` is the round its model opens (closed round + 1). */
export interface RoundEvent {
  kind: "round";
  round: number;
  contributors: number;
  numSamples: number;
  /** Sample-weighted mean metrics of the contributors. */
  metrics: Metrics;
  /** The new global model (the aggregate of the closed round). */
  weights: Weights;
}
/** A line for a human-readable log. */
export interface LogEvent {
  kind: "log";
  level: "info" | "warn" | "error";
  message: string;
}
/**
 * An update left this client (once per round; resends after a reconnect are not counted): a plain
 * update, or, with secure aggregation, its masked input (`numSamples` is then its weight).
 */
export interface SentEvent {
  kind: "sent";
  /** The server round it is for. */
  round: number;
  numSamples: number;
}
/**
 * A round with secure aggregation was aborted (too few members left, or wrong shares): nothing was
 * combined, and round `round + 1` opens with the same shared model (the round history says why).
 */
export interface AbortedEvent {
  kind: "aborted";
  /** The aborted server round. */
  round: number;
  reason: string;
}
/** Everything `onEvent` receives. */
export type ClientEvent = StatusEvent | RoundEvent | LogEvent | SentEvent | AbortedEvent;

/** What local training returns: the trained weights (not a difference) and its sample count. */
export interface TrainOutput {
  weights: Weights;
  /** Training samples behind the update: an integer from 1 to 2^40 (its FedAvg weight). */
  numSamples: number;
  /** Metrics of the last epoch; non-finite ones are left out of the update. */
  metrics: RawMetrics;
}
/** Local training on the global model of `round`; `signal` aborts when the client stops (in a secure round also when the round ends, e.g. with an error): training should not start once it has. */
export type TrainFn = (round: number, weights: Weights, signal: AbortSignal) => Promise<TrainOutput>;

/** Options of `FederatedClient`. */
export interface FederatedClientOptions {
  /** The server's http(s) base URL (e.g. `location.origin`), or its ws(s) URL. */
  serverUrl: string;
  taskId: string;
  /** Display name shown to others and in server logs (≤ 100 characters). */
  name?: string;
  /**
   * The invitation token of this task on a private instance (`dinv.<id>.<secret>`), sent in every
   * `Hello`; without it, a private instance refuses the participant (`AccessRefused`).
   */
  invitation?: string | null;
  train: TrainFn;
  onEvent?: (event: ClientEvent) => void;
  /** The task's privacy: updates are clipped and noised before they leave (default none). */
  privacy?: PrivacyConfig | null;
  /**
   * The task's secure aggregation (`training.secure_aggregation`): with it the client announces
   * capability `secure_aggregation` and takes part in each round's four phases instead of sending
   * its update (docs/protocol.md §19; default none).
   */
  secureAggregation?: SecureAggregationConfig | null;
  /** Noise source for privacy (default `crypto.getRandomValues`); tests pass their own. */
  random?: RandomSource;
  /** Longest wait for a round to close after sending an update (the task's `wait_for_others_s`; default 600 s). */
  waitForOthersMs?: number;
  /** How long to keep trying to reconnect after the connection was lost (default 60 s). */
  reconnectTimeoutMs?: number;
  /** How long to keep trying when the very first connection does not succeed (default 15 s). */
  firstConnectTimeoutMs?: number;
  /** Longest wait for the connection to open, then for `Welcome` (default 30 s each). */
  joinTimeoutMs?: number;
  /** The WebSocket class (default: the global one); tests inject a fake. */
  WebSocketImpl?: typeof WebSocket;
  /** Names and shapes the global model must have (checked on Welcome), e.g. the local model's. */
  reference?: Weights;
}

/** What `run()` resolves with. */
export interface FederatedResult {
  /** The last global model. */
  weights: Weights;
  /** Rounds taken part in. */
  rounds: number;
  bytesUp: number;
  bytesDown: number;
}

/** A `waitForOthersMs` option, if given, must be a finite number of milliseconds > 0; `SessionError` otherwise. */
export function checkWaitForOthers(waitMs: number | undefined): void {
  if (waitMs !== undefined && !(Number.isFinite(waitMs) && waitMs > 0)) {
    throw new SessionError(`waitForOthersMs must be a finite number of milliseconds > 0, got ${waitMs}`);
  }
}

/** Hand `event` to the options' `onEvent` handler, if any; a handler that throws is warned about, never fatal. */
export function deliver<E>(options: { onEvent?: (event: E) => void }, event: E): void {
  try {
    options.onEvent?.(event);
  } catch (exc) {
    console.warn("disco: onEvent handler failed", exc);
  }
}
