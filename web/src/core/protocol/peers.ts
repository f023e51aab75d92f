/**
 * The messages of decentralized sessions (capability "decentralized", docs/protocol.md §6), as
 * Python's `disco.protocol.peers`: what the server and a peer say to each other about a round, and
 * the frames two peers send each other on their own channel, never through the server.
 */

import type { Weights } from "../weights";
import type { ClientKind, Metrics } from "./messages";

/** Most peers one round may list (the largest `min_participants` a task may ask for). */
export const MAX_ROUND_PEERS = 10_000;
/** Longest signalling payload (code points): an SDP with every candidate fits easily. */
export const MAX_SIGNAL = 65_536;
/** Longest deadline of a round plan (`connect_s`, `exchange_s`): one day, in seconds. */
export const MAX_PLAN_SECONDS = 86_400;
/** How long the server gives a round's channels to open (the plan's `connect_s`; §18.5), in seconds. */
export const CONNECT_S = 30;
/** How long the server waits for a round's digests after `combine` (§18.5), in seconds. */
export const COMBINE_S = 60;
/** A weights digest: lowercase hex SHA-256 (docs/protocol.md §12). */
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/;

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
