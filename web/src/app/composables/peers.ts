// Training directly with other participants (a decentralized task): the browser is a peer of the
// session, as `disco train` is. Each round the round's model is loaded, trained on the local data
// while the browser connects to the round's peers (WebRTC), and the update goes through the one
// update pipeline (core/client/update.ts) straight to the peers, never to the server; the browser
// combines the updates itself. The server only introduces the peers and keeps no model after the
// initial one. Only weights and four numbers (loss/accuracy) leave the browser; never the data.
// With secure aggregation each update leaves masked instead (and no numbers): the peers, like the
// server, learn only the sum of the round's updates (docs/protocol.md §19.1).
import type * as tf from "@tensorflow/tfjs";
import { PeerClient, type PeerClientEvent, type PeerState, type PeerView } from "../../core/decentralized/peer";
import { getWeights, setWeights } from "../../core/models";
import type { Task } from "../../core/task";
import type { EpochMetrics } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { getModelFile, serverUrl } from "./api";
import type { Board, BoardPeer, LogLine, Phase } from "./board";
import { invitationFor } from "./invitations";
import { formatBytes } from "./plain";
import { recordPrivateUpdate } from "./privacyBudget";
import { fromSafetensors } from "./safetensors";

/** Where STUN/TURN servers for connecting to peers may be set (a JSON array of `RTCIceServer`s); none by default. */
export const ICE_SERVERS_KEY = "disco.iceServers";

/** The board's phase for a peer's state; null for the ends, which the session sets itself. */
export function boardPhase(state: PeerState): Phase | null {
  switch (state) {
    case "waiting":
      return "waiting_for_round";
    case "done":
    case "stopped":
    case "error":
      return null;
    default:
      return state;
  }
}

/** "connected", "connecting…", "could not connect". */
export function peerStateText(state: BoardPeer["state"]): string {
  return { connected: "connected", connecting: "connecting…", failed: "could not connect" }[state];
}

/** What the other participant runs: a browser, or `disco train`. */
export function peerKindText(kind: BoardPeer["kind"]): string {
  return kind === "browser" ? "browser" : "disco train";
}

/** A peer's name as shown: its name, or "someone" when it gave none. */
export function peerName(peer: Pick<BoardPeer, "name">): string {
  return peer.name.trim() || "someone";
}

/** "This round: you and 3 others — 2 connected, 1 connecting", or null when no round is under way. */
export function roundPeersText(b: Pick<Board, "peers" | "roundPeers">): string | null {
  if (b.roundPeers === null) return null;
  const others = b.peers.length;
  const who = others === 0 ? "you alone" : `you and ${others} other${others === 1 ? "" : "s"}`;
  const counts = (["connected", "connecting", "failed"] as const)
    .map((state) => [state, b.peers.filter((p) => p.state === state).length] as const)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state === "failed" ? "could not connect" : state}`);
  const reach = b.roundPeers > others + 1 ? ` (${b.roundPeers} take part; you exchange with ${others})` : "";
  return `This round: ${who}${reach}${counts.length > 0 ? ` — ${counts.join(", ")}` : ""}`;
}

/** The round's peers as the board keeps them. */
function boardPeers(peers: readonly PeerView[]): BoardPeer[] {
  return peers.map(({ id, name, kind, state }) => ({ id, name, kind, state }));
}

/**
 * Feed one peer event to the board (`onGlobal`: every model this browser trains on or combines,
 * with the rounds it has been trained for).
 */
export function applyPeerEvent(
  board: Board,
  e: PeerClientEvent,
  hooks: { log: (message: string, level?: LogLine["level"]) => void; onGlobal: (round: number, weights: Weights) => void; onSent?: () => void },
): void {
  if (e.kind === "status") {
    const phase = boardPhase(e.state);
    if (phase !== null) board.phase = phase;
    board.participants = e.participants;
    board.minParticipants = e.minParticipants;
    board.roundPeers = e.members;
    if (e.members === null) board.peers = [];
    board.attempt = e.state === "connecting" ? 1 : 0;
    board.reconnecting = false;
    board.waitUntil = e.waitUntil;
  } else if (e.kind === "peers") {
    board.peers = boardPeers(e.peers);
    board.roundPeers = e.members;
  } else if (e.kind === "model") {
    board.sharedRound = e.round;
    hooks.onGlobal(e.round, e.weights);
  } else if (e.kind === "round") {
    board.sharedRound = e.round;
    hooks.onGlobal(e.round, e.weights);
  } else if (e.kind === "log") {
    hooks.log(e.message, e.level);
  } else if (e.kind === "sent") {
    hooks.onSent?.();
  }
}

/** STUN/TURN servers set for this browser (`localStorage["disco.iceServers"]`); none by default. */
export function iceServers(): unknown[] {
  try {
    const raw = localStorage.getItem(ICE_SERVERS_KEY);
    const parsed: unknown = raw ? JSON.parse(raw) : [];
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/** The task's initial model as the server serves it (the only model it keeps), with its digest header. */
async function initialModel(taskId: string): Promise<{ weights: Weights; digest: string }> {
  const file = await getModelFile(taskId);
  return { weights: fromSafetensors(file.bytes), digest: file.digest };
}

/**
 * Take part in the task's rounds as a peer; afterwards `model` holds the last model this browser
 * combined. Rejects with `WaitExpired` (carrying that model) when no round starts within the
 * task's `wait_for_others_s` (never less than a whole round of the others).
 */
export async function runDecentralized(run: {
  task: Task;
  /** The name this browser joins with (shown to the other peers). */
  name: string;
  board: Board;
  model: tf.LayersModel;
  /** Train `model` on the local data: round `round`, this browser's `k`-th (counted from 1; the task's schedule says what it trains). */
  trainRound: (round: number, k: number) => Promise<EpochMetrics[]>;
  /** Stops the round being trained (after its current batch). */
  stopTraining: () => void;
  /** Training samples behind each update. */
  numSamples: number;
  log: (message: string, level?: LogLine["level"]) => void;
  /** Every model this browser trains on or combines, with the rounds it has been trained for. */
  onGlobal: (round: number, weights: Weights) => void;
  onStop: (stop: () => void) => void;
}): Promise<void> {
  const { task, name, board, model, trainRound, stopTraining, numSamples, log, onGlobal, onStop } = run;
  const spec = task.model;
  const privacy = task.training.privacy;
  const client = new PeerClient({
    serverUrl: serverUrl(),
    taskId: task.id,
    name,
    invitation: invitationFor(task.id), // a private instance's task: the one this browser holds
    aggregation: task.training.aggregation,
    reference: getWeights(model, spec),
    initialModel: () => initialModel(task.id),
    privacy,
    secureAggregation: task.training.secure_aggregation,
    iceServers: iceServers(),
    waitForOthersMs: task.training.wait_for_others_s * 1000,
    roundDeadlineMs: task.training.round_deadline_s * 1000,
    train: async (_round, weights, signal, yourRound) => {
      setWeights(model, spec, weights);
      signal.addEventListener("abort", stopTraining);
      let history: EpochMetrics[];
      try {
        history = await trainRound(yourRound, yourRound);
      } finally {
        signal.removeEventListener("abort", stopTraining);
      }
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("training stopped");
      const last = history.at(-1);
      const metrics = last
        ? { train_loss: last.train_loss, train_accuracy: last.train_accuracy, val_loss: last.val_loss, val_accuracy: last.val_accuracy }
        : {};
      return { weights: getWeights(model, spec), numSamples, metrics };
    },
    onEvent: (e) =>
      applyPeerEvent(board, e, {
        log,
        onGlobal,
        onSent: privacy !== null ? () => recordPrivateUpdate(task.id) : undefined, // each protected update counts toward ε
      }),
  });
  onStop(() => client.stop());
  try {
    const result = await client.run(board.rounds);
    setWeights(model, spec, result.weights);
    log(
      `sent ${formatBytes(result.bytesToPeers)} to peers and received ${formatBytes(result.bytesFromPeers)} from them ` +
        `(${task.training.secure_aggregation ? "masked model updates" : "model updates"} only); ` +
        `${formatBytes(result.bytesToServer)} with the server, which never saw a model`,
    );
  } finally {
    board.peers = [];
    board.roundPeers = null;
  }
}
