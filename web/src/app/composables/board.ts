// The training board: what it shows of a run (phase, counters, the round's peers, charts, log),
// how a fresh one starts, and how the trainer's events and log lines reach it.
import type { EpochPart } from "../../core/schedule";
import type { Task } from "../../core/task";
import type { EpochMetrics, TrainingEvent } from "../../core/training/trainer";
import { roundsOf } from "./plain";
import type { TaskSession } from "./session";

/** What the training board shows. */
export type Phase =
  | "idle"
  | "preparing"
  | "connecting"
  | "waiting_for_participants"
  | "training"
  | "sending_update"
  | "aggregating"
  // training directly with peers (a decentralized task)
  | "waiting_for_round"
  | "connecting_peers"
  | "exchanging"
  | "combining"
  | "done"
  | "stopped"
  | "error";

/** Train with others (through the server, or directly with peers), or alone on this device. */
export type TrainMode = "together" | "alone";

/** Training directly with peers: one of the round's other peers, as the board shows it. */
export interface BoardPeer {
  id: string;
  /** The name it joined with ("" when none). */
  name: string;
  /** A browser, or `disco train` ("python"). */
  kind: "python" | "browser";
  /** How this browser's channel to it stands. */
  state: "connected" | "connecting" | "failed";
}

/** One epoch, or part of one, on the charts; `x` counts epochs from the start of training. */
export interface EpochPoint extends EpochMetrics {
  x: number;
}

export interface LogLine {
  time: string;
  level: "info" | "warn" | "error";
  message: string;
}

export interface Board {
  /** The mode of the current (or last) run. */
  mode: TrainMode | null;
  phase: Phase;
  message: string;
  /**
   * Why training with others ended early, when the UI can offer a way out: the server is gone
   * (`unreachable`), nobody else sent an update in time (`wait_expired`), or a private instance
   * let this browser in without a valid invitation (`refused`).
   */
  problem: "unreachable" | "wait_expired" | "refused" | null;
  /** Rounds this browser trained in this run, counted from 1 (`round` of `rounds`). */
  round: number;
  rounds: number;
  /**
   * Rounds this browser trained before this run when it continues an earlier model ("Train
   * more rounds", training alone after the server went away); 0 for a run from scratch. The
   * round counter is this run's (as the log's "your round k of N"); the charts go on.
   */
  roundsBefore: number;
  /** Epoch of the current round, counted from 1. */
  epoch: number;
  epochs: number;
  /** The part of an epoch the current round trains, when the task cuts epochs into rounds. */
  part: EpochPart | null;
  batch: number;
  batches: number;
  participants: number | null;
  minParticipants: number;
  /** While connecting: the attempt under way (1, 2, …); 0 otherwise. */
  attempt: number;
  /** Whether the connection was lost after joining and is being restored. */
  reconnecting: boolean;
  /**
   * Together: rounds the shared model had been trained for (the server's round) when this
   * browser last heard of it; null before joining or when training alone.
   */
  sharedRound: number | null;
  /** While waiting for others after an update: when this browser gives up (ms since the epoch). */
  waitUntil: number | null;
  /**
   * Together: rounds the shared model had already been trained for when this browser received
   * it to start (0: a fresh model; more: others trained it before, so the curves start high).
   */
  sharedRoundAtJoin: number | null;
  /** Training directly with peers: the round's other peers and this browser's channel to each; [] otherwise. */
  peers: BoardPeer[];
  /** Training directly with peers: the peers in the round under way, this browser included; null between rounds. */
  roundPeers: number | null;
  history: EpochPoint[];
  log: LogLine[];
}

export function newBoard(task: Task): Board {
  return {
    mode: null,
    phase: "idle",
    message: "",
    problem: null,
    round: 0,
    rounds: roundsOf(task),
    roundsBefore: 0,
    epoch: 0,
    epochs: task.training.epochs_per_round,
    part: null,
    batch: 0,
    batches: 0,
    participants: null,
    minParticipants: task.training.min_participants,
    attempt: 0,
    reconnecting: false,
    sharedRound: null,
    waitUntil: null,
    sharedRoundAtJoin: null,
    peers: [],
    roundPeers: null,
    history: [],
    log: [],
  };
}

/** Rounds this browser trained so far in its current line of runs (the board's count). */
export function roundsSoFar(b: Board): number {
  return b.roundsBefore + b.round;
}

export function log(s: TaskSession, message: string, level: LogLine["level"] = "info"): void {
  const time = new Date().toLocaleTimeString(undefined, { hour12: false });
  s.board.log = [...s.board.log.slice(-499), { time, level, message }];
}

/** Feed one trainer event to the board. */
export function onTrainingEvent(s: TaskSession, e: TrainingEvent): void {
  const b = s.board;
  b.round = e.round;
  if (e.kind === "round_start") {
    b.epoch = 0;
    b.batch = 0;
    b.part = e.part ?? null;
    if (b.mode === "alone" || b.phase !== "training") b.phase = "training";
    return;
  }
  if (e.kind === "batch_end") {
    b.epoch = e.epoch;
    b.batch = e.batch;
    b.batches = e.batches;
    return;
  }
  if (e.kind === "epoch_end" && e.metrics) {
    const m = e.metrics;
    // epochs go on across rounds and continued runs; a part of an epoch is that share of one
    const x = Math.round(((b.history.at(-1)?.x ?? 0) + (e.part ? 1 / e.part.count : 1)) * 1e6) / 1e6;
    b.epoch = m.epoch;
    b.history = [...b.history, { ...m, x }];
    // a language model: perplexity (how many tokens it hesitates between), not accuracy
    const ppl = (p: number | null | undefined): string => (p === undefined || p === null ? "" : p.toFixed(1));
    const text = m.train_perplexity !== undefined;
    const acc = text
      ? `, perplexity ${ppl(m.train_perplexity)}`
      : m.train_accuracy === null ? "" : `, accuracy ${(100 * m.train_accuracy).toFixed(1)}%`;
    const val = text
      ? m.val_loss === null ? "" : `; validation loss ${m.val_loss.toFixed(4)}, perplexity ${ppl(m.val_perplexity)}`
      : m.val_accuracy === null ? "" : `; validation accuracy ${(100 * m.val_accuracy).toFixed(1)}%`;
    const who = b.mode === "together" ? "your round" : "round";
    const where = e.part ? `part ${e.part.index} of ${e.part.count} of epoch ${e.part.epoch}` : `epoch ${m.epoch}`;
    log(s, `${who} ${e.round} of ${b.rounds}, ${where}: loss ${m.train_loss.toFixed(4)}${acc}${val}`);
  }
}
