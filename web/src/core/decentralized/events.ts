/**
 * What a `PeerClient` tells whoever runs it (its `onEvent`): its state and the session's counters,
 * the round's peers and the channel to each, the model a round starts from, each round it
 * combined, and where that round's time went (`RoundTiming`).
 */

import type { LogEvent, SentEvent } from "../client/options";
import type { Topology } from "../protocol";
import type { Weights } from "../weights";
import type { PeerConnectionState } from "./connector";

/** Where one round's time went, in milliseconds (for logs and benchmarks); Python's `RoundTiming`. */
export interface RoundTiming {
  round: number;
  /** Getting the round's model (0 when held). */
  modelMs: number;
  /** Plan → every neighbour's channel open. */
  connectMs: number;
  trainMs: number;
  /** Update sent → combine received. */
  exchangeMs: number;
  combineMs: number;
  totalMs: number;
  neighbours: number;
  contributors: number;
  digest: string;
}

/** What the peer is doing, for the UI. */
export type PeerState =
  | "connecting" // opening the connection to the server, saying hello
  | "waiting_for_participants" // fewer peers connected than a round needs
  | "waiting" // enough peers: waiting for the next round to start
  | "connecting_peers" // a round started: getting its model, opening the channels to its peers
  | "training" // training locally on the round's model
  | "exchanging" // sending the update to the round's peers, receiving theirs
  | "combining" // combining the updates the server named
  | "done"
  | "stopped"
  | "error";

/** The peer's state and the session's counters. */
export interface PeerStatusEvent {
  kind: "status";
  state: PeerState;
  /** The server's open round (rounds the shared model has been through). */
  round: number;
  participants: number;
  minParticipants: number;
  /** Peers in the round this peer takes part in (it included); null between rounds. */
  members: number | null;
  /** While waiting for a round to start: when this peer gives up (ms since the epoch). */
  waitUntil: number | null;
  message?: string;
}
/** One peer of the round as the display shows it. */
export interface PeerView {
  id: string;
  name: string;
  kind: "python" | "browser";
  state: PeerConnectionState;
}
/** The round's peers and how the channel to each stands (sent whenever one changes). */
export interface PeersEvent {
  kind: "peers";
  round: number;
  topology: Topology;
  /** Peers in the round, this one included. */
  members: number;
  /** This peer's neighbours in the round. */
  peers: PeerView[];
}
/** This peer combined a round: `round` is the round its model opens (combined round + 1). */
export interface PeerRoundEvent {
  kind: "round";
  round: number;
  contributors: number;
  weights: Weights;
  digest: string;
  timing: RoundTiming;
}
/** Training starts on the model of server round `round`. */
export interface PeerModelEvent {
  kind: "model";
  round: number;
  weights: Weights;
}
/** Everything `onEvent` receives. */
export type PeerClientEvent = PeerStatusEvent | PeersEvent | PeerRoundEvent | PeerModelEvent | LogEvent | SentEvent;
