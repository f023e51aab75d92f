// One participant's session on a task: connected files, the training board and the trained
// model. Kept per task for the life of the page, so moving between steps loses nothing.
import type * as tf from "@tensorflow/tfjs";
import { markRaw, reactive } from "vue";
import { split } from "../../core/data/dataset";
import { buildModel, getWeights } from "../../core/models";
import type { Task } from "../../core/task";
import { type EpochMetrics, Trainer, type TrainingEvent } from "../../core/training/trainer";
import { ensureBackend } from "./backend";
import { type Connection, datasetOf, newConnection } from "./connect";
import { roundsOf } from "./plain";
import { runFederated } from "./together";

/** What the training board shows. */
export type Phase =
  | "idle"
  | "preparing"
  | "connecting"
  | "waiting_for_participants"
  | "training"
  | "sending_update"
  | "aggregating"
  | "done"
  | "stopped"
  | "error";

/** One epoch on the charts; `x` counts epochs from the start of training. */
export interface EpochPoint extends EpochMetrics {
  x: number;
}

export interface LogLine {
  time: string;
  level: "info" | "warn" | "error";
  message: string;
}

export interface Board {
  mode: "alone" | "together" | null;
  phase: Phase;
  message: string;
  round: number;
  rounds: number;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  participants: number | null;
  minParticipants: number;
  history: EpochPoint[];
  log: LogLine[];
}

export interface TaskSession {
  task: Task;
  train: Connection;
  test: Connection;
  predict: Connection;
  board: Board;
  /** The trained model (not reactive: a TF.js object). */
  model: tf.LayersModel | null;
  /** Accuracy on the last validation (or test) data, for the library. */
  accuracy: number | null;
  /** Set while training runs: stops it. */
  stop: (() => void) | null;
  savedId: string | null;
}

const sessions = new Map<string, TaskSession>();

function newBoard(task: Task): Board {
  return {
    mode: null,
    phase: "idle",
    message: "",
    round: 0,
    rounds: roundsOf(task),
    epoch: 0,
    epochs: task.training.epochs_per_round,
    batch: 0,
    batches: 0,
    participants: null,
    minParticipants: task.training.min_participants,
    history: [],
    log: [],
  };
}

/** The session of `task` (created on first use). */
export function useSession(task: Task): TaskSession {
  let s = sessions.get(task.id);
  if (!s || JSON.stringify(s.task) !== JSON.stringify(task)) {
    s = reactive({
      task,
      train: newConnection(),
      test: newConnection(),
      predict: newConnection(),
      board: newBoard(task),
      model: null,
      accuracy: null,
      stop: null,
      savedId: null,
    }) as TaskSession;
    sessions.set(task.id, s);
  }
  return s;
}

/** Whether training is under way. */
export function isRunning(s: TaskSession): boolean {
  return !["idle", "done", "stopped", "error"].includes(s.board.phase);
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
    const x = (e.round - 1) * s.task.training.epochs_per_round + m.epoch;
    b.epoch = m.epoch;
    b.history = [...b.history, { ...m, x }];
    if (m.val_accuracy !== null) s.accuracy = m.val_accuracy;
    const acc = m.train_accuracy === null ? "" : `, accuracy ${(100 * m.train_accuracy).toFixed(1)}%`;
    const val =
      m.val_accuracy === null ? "" : `; validation accuracy ${(100 * m.val_accuracy).toFixed(1)}%`;
    log(s, `round ${e.round}, epoch ${m.epoch}: loss ${m.train_loss.toFixed(4)}${acc}${val}`);
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Train on the connected data, alone (`together` false) or with others through the server. */
export async function startTraining(s: TaskSession, together: boolean): Promise<void> {
  if (isRunning(s)) return;
  const task = s.task;
  const data = datasetOf(s.train, task);
  if (!data) return;
  const b = s.board;
  Object.assign(b, newBoard(task));
  b.mode = together ? "together" : "alone";
  b.phase = "preparing";
  b.message = "";
  s.savedId = null;
  s.accuracy = null;
  let stopped = false;
  let trainer: Trainer | null = null;
  let stopClient: (() => void) | null = null;
  s.stop = () => {
    stopped = true;
    trainer?.stop();
    stopClient?.();
  };
  try {
    const backend = await ensureBackend();
    log(s, `TensorFlow.js is running on ${backend.backend}${backend.fallbackReason ? ` (${backend.fallbackReason})` : ""}`);
    s.model?.dispose();
    s.model = null;
    const model = markRaw(buildModel(task.model, task.training));
    const [train, val] = split(data, task.training.validation_split, 1);
    log(s, `${train.n} samples for training, ${val.n} kept aside to check progress`);
    trainer = new Trainer(model, task, (e) => onTrainingEvent(s, e));
    const t = trainer;
    if (together) {
      await runFederated({
        task,
        board: b,
        model,
        trainer: t,
        train,
        val,
        log: (message, level) => log(s, message, level),
        onStop: (stop) => {
          stopClient = stop;
        },
      });
    } else {
      const { epochs, epochs_per_round: per } = task.training;
      for (let r = 1; r <= b.rounds && !stopped; r++) {
        b.round = r;
        await t.trainRound(r, train, val, Math.min(per, epochs - (r - 1) * per));
      }
    }
    s.model = model;
    if (stopped) {
      b.phase = "stopped";
      b.message = "Training was stopped. The model keeps what it learned so far.";
      log(s, "stopped", "warn");
    } else {
      b.phase = "done";
      b.message = together
        ? "Training is finished: you hold the model everyone trained together."
        : "Training is finished.";
      log(s, "done");
    }
  } catch (e) {
    if (stopped) {
      b.phase = "stopped";
      b.message = "Training was stopped.";
      log(s, "stopped", "warn");
    } else {
      b.phase = "error";
      b.message = describe(e);
      log(s, describe(e), "error");
    }
  } finally {
    s.stop = null;
  }
}

/** Weights of the trained model, for download or the library. */
export function trainedWeights(s: TaskSession): ReturnType<typeof getWeights> | null {
  return s.model ? getWeights(s.model, s.task.model) : null;
}
