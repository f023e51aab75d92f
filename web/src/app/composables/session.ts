// One participant's session on a task: connected files, the training board and the trained
// model. Kept per task for the life of the page, so moving between steps loses nothing. Only
// one training runs at a time in the page (`activeTraining`).
import type * as tf from "@tensorflow/tfjs";
import { markRaw, reactive, shallowRef } from "vue";
import { ServerUnreachable } from "../../core/client/federated";
import { type Dataset, split } from "../../core/data/dataset";
import { buildModel, getWeights, setWeights } from "../../core/models";
import type { Task } from "../../core/task";
import { type EpochMetrics, Trainer, type TrainingEvent, evaluate } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { ensureBackend } from "./backend";
import { type Connection, datasetOf, newConnection } from "./connect";
import { percent, roundsOf } from "./plain";
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

/** Train with others through the server, or alone on this device. */
export type TrainMode = "together" | "alone";

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
  /** The mode of the current (or last) run. */
  mode: TrainMode | null;
  phase: Phase;
  message: string;
  /** Why training with others failed, when the UI can offer a way out: the server is gone. */
  problem: "unreachable" | null;
  /** Rounds this browser trained, counted from 1. */
  round: number;
  rounds: number;
  /** Epoch of the current round, counted from 1. */
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  participants: number | null;
  minParticipants: number;
  /** While connecting: the attempt under way (1, 2, …); 0 otherwise. */
  attempt: number;
  /** Whether the connection was lost after joining and is being restored. */
  reconnecting: boolean;
  history: EpochPoint[];
  log: LogLine[];
}

/** Which model a session holds after training, and how it does on the validation samples. */
export interface KeptModel {
  /**
   * `final`: training ran to the end; `global`: the last model the server sent before training
   * was stopped or failed; `local`: trained on this device only (alone, or stopped before the
   * server combined any update).
   */
  kind: "final" | "global" | "local";
  mode: TrainMode;
  /** Rounds behind the model: combined by the server (`global`, `final` together) or trained here. */
  rounds: number;
  /** Accuracy (null for regression) and loss of this model on the validation samples. */
  accuracy: number | null;
  loss: number | null;
  /** Validation samples it was checked on (0: none were kept aside). */
  validationSamples: number;
}

export interface TaskSession {
  task: Task;
  train: Connection;
  test: Connection;
  predict: Connection;
  board: Board;
  /** The training mode chosen on the train step (kept across steps). */
  mode: TrainMode;
  /** The model held after training (not reactive: a TF.js object); null when there is none. */
  model: tf.LayersModel | null;
  /** What `model` is; null with it. */
  kept: KeptModel | null;
  /** Set while training runs: stops it. */
  stop: (() => void) | null;
  savedId: string | null;
}

const sessions = new Map<string, TaskSession>();
/** The session whose training runs now, if any: one at a time in the page. */
const active = shallowRef<TaskSession | null>(null);
const MODE_KEY = "disco.trainMode";

function storedMode(): TrainMode {
  try {
    return localStorage.getItem(MODE_KEY) === "alone" ? "alone" : "together";
  } catch {
    return "together"; // storage disabled
  }
}

/** The mode a new session starts from: the last one used, where the task allows it. */
function defaultMode(task: Task): TrainMode {
  return task.training.scheme === "federated" ? storedMode() : "alone";
}

function newBoard(task: Task): Board {
  return {
    mode: null,
    phase: "idle",
    message: "",
    problem: null,
    round: 0,
    rounds: roundsOf(task),
    epoch: 0,
    epochs: task.training.epochs_per_round,
    batch: 0,
    batches: 0,
    participants: null,
    minParticipants: task.training.min_participants,
    attempt: 0,
    reconnecting: false,
    history: [],
    log: [],
  };
}

/** The session of `task` (created on first use, or when the task changed and nothing runs). */
export function useSession(task: Task): TaskSession {
  let s = sessions.get(task.id);
  if (!s || (JSON.stringify(s.task) !== JSON.stringify(task) && !isRunning(s))) {
    s?.model?.dispose(); // the task changed: its old model goes with the old session
    s = reactive({
      task,
      train: newConnection(),
      test: newConnection(),
      predict: newConnection(),
      board: newBoard(task),
      mode: defaultMode(task),
      model: null,
      kept: null,
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

/** The session that is training now (reactive), or null. */
export function activeTraining(): TaskSession | null {
  return active.value;
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
    const acc = m.train_accuracy === null ? "" : `, accuracy ${(100 * m.train_accuracy).toFixed(1)}%`;
    const val =
      m.val_accuracy === null ? "" : `; validation accuracy ${(100 * m.val_accuracy).toFixed(1)}%`;
    log(s, `round ${e.round}, epoch ${m.epoch}: loss ${m.train_loss.toFixed(4)}${acc}${val}`);
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** How the kept model was trained, in words (for the library and the finish step). */
export function howTrained(k: KeptModel): string {
  const of = (n: number): string => `${n} round${n === 1 ? "" : "s"}`;
  if (k.kind === "final") return k.mode === "together" ? "with others" : "alone";
  if (k.kind === "global") return `with others (stopped after ${of(k.rounds)})`;
  return k.mode === "together" ? "alone (stopped before the updates were combined)" : "alone (stopped early)";
}

/** Why training stopped short and which model is kept, in one or two sentences. */
function keptText(k: KeptModel | null, total: number): string {
  if (k === null) {
    return "The model had not learned anything yet, so there is no model to test or save. Start again when you are ready.";
  }
  if (k.kind === "global") {
    return `You keep the last model the server sent: everyone's updates combined over ${k.rounds} of ${total} round${total === 1 ? "" : "s"}.`;
  }
  if (k.mode === "together") {
    return "The server had not combined any updates yet: you keep the model your browser trained on your data alone.";
  }
  return "You keep the model as it was when training stopped.";
}

/**
 * Settle the model after a run: `global` (the last global model received) replaces what the
 * browser was training, a `local` model is kept as it is, `null` means there is none.
 */
async function keep(
  s: TaskSession,
  model: tf.LayersModel,
  kept: Omit<KeptModel, "accuracy" | "loss" | "validationSamples"> | null,
  global: { weights: Weights } | null,
  val: Dataset | null,
): Promise<void> {
  if (kept === null) {
    model.dispose();
    return;
  }
  if (global) setWeights(model, s.task.model, global.weights);
  const k: KeptModel = { ...kept, accuracy: null, loss: null, validationSamples: 0 };
  if (val && val.n > 0) {
    try {
      const r = await evaluate(model, val);
      Object.assign(k, { accuracy: r.accuracy, loss: r.loss, validationSamples: val.n });
      const figure = r.accuracy === null ? `loss ${r.loss.toFixed(4)}` : percent(r.accuracy);
      log(s, `accuracy of the final model on your ${val.n} validation samples: ${figure}`);
    } catch (e) {
      log(s, `the final model could not be checked on the validation samples: ${describe(e)}`, "warn");
    }
  }
  s.model = model;
  s.kept = k;
}

/** Train on the connected data, alone or with others through the server (one run at a time). */
export async function startTraining(s: TaskSession, mode: TrainMode): Promise<void> {
  if (isRunning(s) || (active.value !== null && active.value !== s)) return;
  const task = s.task;
  const data = datasetOf(s.train, task);
  if (!data) return;
  const together = mode === "together";
  s.mode = mode;
  try {
    localStorage.setItem(MODE_KEY, mode);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  const b = s.board;
  Object.assign(b, newBoard(task));
  b.mode = mode;
  b.phase = "preparing";
  active.value = s;
  s.savedId = null;
  s.model?.dispose();
  s.model = null;
  s.kept = null;
  let stopped = false;
  let trainer: Trainer | null = null;
  let stopClient: (() => void) | null = null;
  s.stop = () => {
    stopped = true;
    trainer?.stop();
    stopClient?.();
  };
  let model: tf.LayersModel | null = null;
  let val: Dataset | null = null;
  let trained = false; // at least one batch trained in this run
  let localRounds = 0;
  let global: { round: number; weights: Weights } | null = null; // last global model with training behind it
  let training: Promise<unknown> = Promise.resolve(); // the local round in progress
  try {
    const backend = await ensureBackend();
    log(s, `TensorFlow.js is running on ${backend.backend}${backend.fallbackReason ? ` (${backend.fallbackReason})` : ""}`);
    const m = markRaw(buildModel(task.model, task.training));
    model = m;
    const [train, v] = split(data, task.training.validation_split, 1);
    val = v;
    log(s, `${train.n} samples for training, ${v.n} kept aside to check progress`);
    const t = new Trainer(m, task, (e) => {
      if (e.kind === "batch_end") trained = true;
      if (e.kind === "round_end") localRounds = e.round;
      onTrainingEvent(s, e);
    });
    trainer = t;
    const trainRound = (round: number, epochs: number): Promise<EpochMetrics[]> => {
      const run = t.trainRound(round, train, v, epochs);
      training = run.catch(() => undefined);
      return run;
    };
    if (stopped) throw new Error("stopped");
    if (together) {
      await runFederated({
        task,
        board: b,
        model: m,
        trainRound,
        numSamples: train.n,
        log: (message, level) => log(s, message, level),
        onGlobal: (round, weights) => {
          if (round > 0 && (global === null || round >= global.round)) global = { round, weights };
        },
        onStop: (stop) => {
          stopClient = stop;
        },
      });
    } else {
      const { epochs, epochs_per_round: per } = task.training;
      for (let r = 1; r <= b.rounds && !stopped; r++) {
        b.round = r;
        await trainRound(r, Math.min(per, epochs - (r - 1) * per));
      }
    }
    if (stopped) {
      await keep(s, m, trained ? { kind: "local", mode, rounds: localRounds } : null, null, v);
      b.phase = "stopped";
      b.message = `Training was stopped. ${keptText(s.kept, b.rounds)}`;
      log(s, "stopped", "warn");
    } else {
      await keep(s, m, { kind: "final", mode, rounds: b.rounds }, null, v);
      b.phase = "done";
      b.message = together
        ? "Training is finished: you hold the model everyone trained together."
        : "Training is finished.";
      log(s, "done");
    }
  } catch (e) {
    await training; // a local round may still be finishing its batch: let it end first
    if (model !== null) {
      const g = global as { round: number; weights: Weights } | null;
      const kind: KeptModel["kind"] | null = g !== null ? "global" : trained ? "local" : null;
      const kept = kind === null ? null : { kind, mode, rounds: g !== null ? g.round : localRounds };
      try {
        await keep(s, model, kept, g, val);
      } catch (keepError) {
        // e.g. a global model of the wrong shape: nothing is kept, the session still ends
        model.dispose();
        log(s, `the last model could not be kept: ${describe(keepError)}`, "warn");
      }
    }
    if (stopped) {
      b.phase = "stopped";
      b.message = `Training was stopped. ${keptText(s.kept, b.rounds)}`;
      log(s, "stopped", "warn");
    } else {
      b.phase = "error";
      log(s, describe(e), "error");
      if (e instanceof ServerUnreachable) {
        b.problem = "unreachable";
        b.message = e.joined
          ? `The connection to the server was lost and could not be restored. ${keptText(s.kept, b.rounds)}`
          : "Cannot reach the disco server, so training with others cannot start. Check your internet connection and try again, or train alone on your data instead.";
      } else {
        b.message = s.kept ? `${describe(e).replace(/\.?$/, ".")} ${keptText(s.kept, b.rounds)}` : describe(e);
      }
    }
  } finally {
    if (isRunning(s)) b.phase = stopped ? "stopped" : "error"; // never left looking busy
    s.stop = null;
    b.attempt = 0;
    b.reconnecting = false;
    if (active.value === s) active.value = null;
  }
}

/** Weights of the kept model, for download or the library. */
export function trainedWeights(s: TaskSession): ReturnType<typeof getWeights> | null {
  return s.model ? getWeights(s.model, s.task.model) : null;
}
