/** What a `PeerClient` is made with (`PeerClientOptions`), what its `run()` resolves with, and its defaults. */

import type { TrainOutput } from "../client/options";
import { SECURE_CAPABILITY } from "../client/session";
import type { RandomSource } from "../privacy";
import { COMBINE_S, CONNECT_S, SHARES_S, UNMASK_S } from "../protocol";
import type { AggregationConfig } from "../aggregationTask";
import type { PrivacyConfig, SecureAggregationConfig } from "../task";
import type { Channel } from "../transport/channel";
import type { Weights } from "../weights";
import type { Connector, OnChannel, SendSignal } from "./connector";
import type { PeerClientEvent, RoundTiming } from "./events";

/** Added to the server's deadlines before a peer gives up waiting for the server itself (ms). */
export const SLACK_MS = 30_000;

/** The capabilities a peer announces in `Hello` (a federated client announces none). */
export const PEER_CAPABILITIES: readonly string[] = ["decentralized"];
/** What a peer announces in `Hello`: `decentralized`, and `secure_aggregation` for a task that uses it. */
export function peerCapabilities(options: Pick<PeerClientOptions, "secureAggregation">): string[] {
  return options.secureAggregation ? [...PEER_CAPABILITIES, SECURE_CAPABILITY] : [...PEER_CAPABILITIES];
}

/**
 * The longest a round can run on the server (Python's `round_bound_s`), in ms: its three phases
 * (§18.5) — `connect_s`, the task's `round_deadline_s`, the combine deadline — and a secure
 * round's shares and unmasking phases (§19.1), plus the slack a peer allows for each. A peer
 * waits at least this long for the next plan, so that sitting a round out does not end its run.
 */
export function roundBoundMs(roundDeadlineMs: number, secure: boolean, slackMs: number = SLACK_MS): number {
  const bound = 1000 * (CONNECT_S + COMBINE_S) + roundDeadlineMs + 2 * slackMs;
  return secure ? bound + 1000 * (SHARES_S + UNMASK_S) + 2 * slackMs : bound;
}

/** Makes this peer's connector from (its id, onChannel, sendSignal). */
export type ConnectorFactory = (me: string, onChannel: OnChannel, sendSignal: SendSignal) => Connector;

/**
 * Local training on the model of server round `round`; `yourRound` counts this peer's rounds from
 * 1 (for what the round trains: core/schedule.ts); `signal` aborts when the client stops or the round fails.
 */
export type PeerTrainFn = (round: number, weights: Weights, signal: AbortSignal, yourRound: number) => Promise<TrainOutput>;

/** The task's initial model as the server serves it, with the digest of its `X-Disco-Digest` header. */
export type InitialModelFn = (signal: AbortSignal) => Promise<{ weights: Weights; digest: string }>;

/** Options of `PeerClient`. */
export interface PeerClientOptions {
  /** The server's http(s) base URL (e.g. `location.origin`), or its ws(s) URL. */
  serverUrl: string;
  taskId: string;
  /** Display name shown to others (≤ 100 characters). */
  name?: string;
  /**
   * The invitation token of this task on a private instance (`dinv.<id>.<secret>`), sent in the
   * `Hello`; without it, a private instance refuses the peer (`AccessRefused`). `initialModel`
   * presents it to the REST route itself.
   */
  invitation?: string | null;
  /** The task's aggregation: the browser combines with "mean" only. */
  aggregation: AggregationConfig;
  train: PeerTrainFn;
  /** Names and shapes every model and update must have (the local model's). */
  reference: Weights;
  /** Fetches the initial model (`GET /api/tasks/{id}/model`). */
  initialModel: InitialModelFn;
  onEvent?: (event: PeerClientEvent) => void;
  /** The task's privacy: updates are clipped and noised before they leave (default none). */
  privacy?: PrivacyConfig | null;
  /**
   * The task's secure aggregation (`training.secure_aggregation`): the peer announces capability
   * `secure_aggregation` and its rounds are secure ones (docs/protocol.md §19.1; default none).
   */
  secureAggregation?: SecureAggregationConfig | null;
  random?: RandomSource;
  /** Longest wait for a round to start (the task's `wait_for_others_s`; default 600 s). */
  waitForOthersMs?: number;
  /**
   * The task's `round_deadline_s`, in ms: the wait for a round to start is then never shorter than
   * a whole round of the others (`roundBoundMs`). Without it, `waitForOthersMs` alone bounds it.
   */
  roundDeadlineMs?: number;
  /** Longest wait for the connection to open, then for `Welcome` (default 30 s each). */
  joinTimeoutMs?: number;
  /** The WebSocket class (default: the global one). */
  WebSocketImpl?: typeof WebSocket;
  /** Opens the channel to the server instead of a WebSocket (tests: an in-memory channel). */
  openServer?: (signal: AbortSignal) => Promise<Channel>;
  /** Makes the connector (default: WebRTC, with `iceServers`). */
  connector?: ConnectorFactory;
  /** STUN/TURN servers for the default connector; none by default. */
  iceServers?: unknown[];
  /** Added to the plan's deadlines before this peer gives up on the server (default `SLACK_MS`). */
  slackMs?: number;
}

/** What `run()` resolves with. */
export interface PeerResult {
  /** The model this peer holds: the last one it combined. */
  weights: Weights;
  /** Rounds this peer combined. */
  rounds: number;
  bytesUp: number;
  bytesDown: number;
  bytesToServer: number;
  bytesToPeers: number;
  bytesFromPeers: number;
  timings: RoundTiming[];
}
