// One participant's session on a task: connected files, the training board and the trained
// model. Kept per task for the life of the page, so moving between steps loses nothing. Only
// one training runs at a time in the page (`activeTraining`).
import type * as tf from "@tensorflow/tfjs";
import { markRaw, reactive, shallowRef } from "vue";
import { ServerUnreachable, WaitExpired } from "../../core/client/federated";
import { LinkClosed } from "../../core/client/link";
import { LIMITED_CLOSE } from "../../core/client/server";
import { AccessRefused } from "../../core/errors";
import { type Dataset, split } from "../../core/data/dataset";
import { buildModel, getWeights, setWeights } from "../../core/models";
import { epochPart, epochsInRound } from "../../core/schedule";
import type { Task } from "../../core/task";
import { type EpochMetrics, type TokenWindows, type TrainingData, Trainer, evaluate, perplexity } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { describeBackend, ensureBackend } from "./backend";
import { type Board, type TrainMode, log, newBoard, onTrainingEvent, roundsSoFar } from "./board";
import { type Connection, datasetOf, newConnection } from "./connect";
import { INVITATION_REFUSED, INVITATION_REQUIRED, invitationFor } from "./invitations";
import { canTrainTogether, percent, roundsOf } from "./plain";
import { durationText } from "./progress";
import { type KeptModel, keptText, roundsText } from "./kept";
import { runDecentralized } from "./peers";
import { type RoundReports, newRoundReports, refreshRoundReports } from "./roundReports";
import { textWindowsOf } from "./textData";
import { runFederated } from "./together";

export type { Board, BoardPeer, EpochPoint, LogLine, Phase, TrainMode } from "./board";
export { log, onTrainingEvent, roundsSoFar } from "./board";

/** What is known of a kept model before it is checked on the validation samples. */
type KeptInfo = Omit<KeptModel, "accuracy" | "loss" | "validationSamples">;

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
  /** The name this browser joins the task's sessions with (the same for every run in the page). */
  name: string;
  /** How the server combined the last rounds (read after each round this browser sees close). */
  reports: RoundReports;
}

/** The kind the server records this browser's updates under. */
export const BROWSER_KIND = "browser";

const sessions = new Map<string, TaskSession>();
/** The session whose training runs now, if any: one at a time in the page. */
const active = shallowRef<TaskSession | null>(null);
/** Where a person's choice of mode for one task is kept: `disco.trainMode.<task id>`. */
export const MODE_KEY = "disco.trainMode";

/** The mode a new session starts from: the task's own, unless the person chose otherwise for it. */
function defaultMode(task: Task): TrainMode {
  if (!canTrainTogether(task)) return "alone";
  try {
    localStorage.removeItem(MODE_KEY); // one choice for every task: no longer read
    return localStorage.getItem(`${MODE_KEY}.${task.id}`) === "alone" ? "alone" : "together";
  } catch {
    return "together"; // storage disabled
  }
}

/** The person picked `mode` for this task: remember it for this task only. */
export function chooseMode(s: TaskSession, mode: TrainMode): void {
  s.mode = mode;
  try {
    localStorage.setItem(`${MODE_KEY}.${s.task.id}`, mode);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
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
      name: `browser-${Math.random().toString(36).slice(2, 7)}`,
      reports: newRoundReports(),
    }) as TaskSession;
    sessions.set(task.id, s);
  }
  return s;
}

/** The session of task `id` already open in this page, if any (its task as it was loaded). */
export function openSession(id: string): TaskSession | null {
  return sessions.get(id) ?? null;
}

/** Whether training is under way. */
export function isRunning(s: TaskSession): boolean {
  return !["idle", "done", "stopped", "error"].includes(s.board.phase);
}

/** The session that is training now (reactive), or null. */
export function activeTraining(): TaskSession | null {
  return active.value;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Settle the model after a run: `weights` (a global model received, or the model a client
 * kept) replace what the browser was training, a `local` model is kept as it is, `null` means
 * there is none.
 */
async function keep(
  s: TaskSession,
  model: tf.LayersModel,
  kept: KeptInfo | null,
  weights: Weights | null,
  val: Dataset | TokenWindows | null,
): Promise<void> {
  if (kept === null) {
    model.dispose();
    return;
  }
  if (weights) setWeights(model, s.task.model, weights);
  const k: KeptModel = { ...kept, accuracy: null, loss: null, validationSamples: 0 };
  const n = val === null ? 0 : "tokens" in val ? val.tokens.length / (val.context + 1) : val.n;
  if (val && n > 0) {
    try {
      const r = await evaluate(model, val);
      if ("tokens" in val) {
        // a language model: its loss and perplexity say how well it predicts the next token
        Object.assign(k, { accuracy: null, loss: r.loss, validationSamples: n });
        log(s, `loss of the final model on your ${n} validation windows: ${r.loss.toFixed(4)} (perplexity ${perplexity(r.loss).toFixed(1)})`);
      } else {
        Object.assign(k, { accuracy: r.accuracy, loss: r.loss, validationSamples: n });
        const figure = r.accuracy === null ? `loss ${r.loss.toFixed(4)}` : percent(r.accuracy);
        log(s, `accuracy of the final model on your ${n} validation samples: ${figure}`);
      }
    } catch (e) {
      log(s, `the final model could not be checked on the validation samples: ${describe(e)}`, "warn");
    }
  }
  s.model = model;
  s.kept = k;
}

/** How a run starts. */
export interface StartOptions {
  /**
   * Go on from the model kept by the last run, its charts and its round count, instead of
   * starting from scratch. Alone, training starts from that model; together, the browser joins
   * the session again and trains the shared model from where the server has it.
   */
  continue?: boolean;
  /** Rounds to train in this run (default: the task's plan). */
  rounds?: number;
}

/** Train on the connected data, alone or with others through the server (one run at a time). */
export async function startTraining(s: TaskSession, mode: TrainMode, options: StartOptions = {}): Promise<void> {
  if (isRunning(s) || (active.value !== null && active.value !== s)) return;
  const task = s.task;
  const text = task.training.data_type === "text";
  const data = text ? null : datasetOf(s.train, task);
  if (!text && !data) return;
  const together = mode === "together";
  /** Trained directly with peers: no model ever comes from the server. */
  const direct = together && task.training.scheme === "decentralized";
  s.mode = mode;
  const b = s.board;
  const prev = options.continue ? s.kept : null;
  // alone goes on from the kept weights; together from the shared model the server holds
  const from = prev !== null && !together && s.model !== null ? getWeights(s.model, task.model) : null;
  const continuing = prev !== null && (together || from !== null);
  const carried = continuing
    ? { history: b.history, log: b.log, roundsBefore: roundsSoFar(b), sharedRoundAtJoin: b.sharedRoundAtJoin }
    : null;
  Object.assign(b, newBoard(task), carried ?? {});
  if (options.rounds !== undefined) b.rounds = Math.max(1, Math.floor(options.rounds));
  const continued: KeptModel["continued"] =
    prev === null || !continuing
      ? null
      : together || prev.continued === "shared" || (prev.mode === "together" && prev.kind !== "local")
        ? "shared"
        : "own";
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
  let val: Dataset | TokenWindows | null = null;
  let trained = false; // at least one batch trained in this run
  let localRounds = 0;
  let joinRound: number | null = null; // the server's round when this browser received its first model
  let global: { round: number; weights: Weights } | null = null; // last global model with this browser's training in it
  let training: Promise<unknown> = Promise.resolve(); // the local round in progress
  let clientLogs = false; // the federated client runs: it logs its own errors
  const before = b.roundsBefore;
  try {
    const backend = await ensureBackend();
    log(s, `TensorFlow.js is running on ${describeBackend(backend)}${backend.fallbackReason ? ` (${backend.fallbackReason})` : ""}`);
    const m = markRaw(buildModel(task.model, task.training));
    model = m;
    if (from !== null) {
      setWeights(m, task.model, from);
      b.message = `Training alone goes on from the model so far (${roundsText(before)} trained before). Nothing is sent anywhere.`;
      log(s, `continuing alone from the model so far (${roundsText(before)} trained before)`);
    } else if (continuing) {
      b.message = "Joining the others again: training goes on from the shared model.";
      log(s, "joining the session again: training goes on from the shared model");
    }
    let train: TrainingData;
    let v: Dataset | TokenWindows;
    let numSamples: number;
    if (text) {
      const w = textWindowsOf(s.train, task); // DataError when there is too little text
      const width = w.context + 1;
      train = { tokens: w.train, context: w.context };
      v = { tokens: w.validation, context: w.context };
      numSamples = w.train.length / width;
      log(s, `${numSamples} windows of ${w.context} tokens for training, ${w.validation.length / width} kept aside to check progress`);
    } else {
      const [t, held] = split(data as Dataset, task.training.validation_split, 1);
      [train, v, numSamples] = [t, held, t.n];
      log(s, `${t.n} samples for training, ${held.n} kept aside to check progress`);
    }
    val = v;
    const t = new Trainer(m, task, (e) => {
      if (e.kind === "batch_end") trained = true;
      if (e.kind === "round_end") localRounds = e.round;
      if (e.kind === "round_start" && together) {
        joinRound ??= b.sharedRound; // the model this browser trains first came from the server
        if (b.sharedRoundAtJoin === null) b.sharedRoundAtJoin = joinRound;
      }
      onTrainingEvent(s, e);
    });
    trainer = t;
    const trainRound = (round: number, k: number): Promise<EpochMetrics[]> => {
      const run = t.trainRound(round, train, v, epochsInRound(task.training, k), epochPart(task.training, k));
      training = run.catch(() => undefined);
      return run;
    };
    if (stopped) throw new Error("stopped");
    if (direct) {
      await runDecentralized({
        task,
        name: s.name,
        board: b,
        model: m,
        trainRound,
        stopTraining: () => t.stop(),
        numSamples,
        log: (message, level) => log(s, message, level),
        onGlobal: (round, weights) => {
          if (joinRound === null) joinRound = round;
          if (round > joinRound && (global === null || round >= global.round)) global = { round, weights };
        },
        onStop: (stop) => {
          stopClient = stop;
          clientLogs = true;
        },
      });
    } else if (together) {
      await runFederated({
        task,
        name: s.name,
        board: b,
        model: m,
        trainRound,
        numSamples,
        log: (message, level) => log(s, message, level),
        onGlobal: (round, weights) => {
          if (joinRound === null) joinRound = round;
          if (round > joinRound && (global === null || round >= global.round)) global = { round, weights };
        },
        onStop: (stop) => {
          stopClient = stop;
          clientLogs = true;
        },
        onRoundClosed: () => void refreshRoundReports(s.reports, task.id),
      });
    } else {
      for (let r = 1; r <= b.rounds && !stopped; r++) {
        b.round = r;
        await trainRound(r, before + r);
      }
    }
    if (stopped) {
      const kept: KeptInfo | null = trained
        ? { kind: "local", mode, ended: "stopped", rounds: before + localRounds, sharedRounds: null, continued }
        : null;
      await keep(s, m, kept, null, v);
      b.phase = "stopped";
      b.message = `Training was stopped. ${keptText(s.kept, before + b.rounds, direct)}`;
      log(s, "stopped", "warn");
    } else {
      const shared = together ? (b.sharedRound ?? (joinRound ?? 0) + b.rounds) : null;
      await keep(s, m, { kind: "final", mode, ended: "done", rounds: before + b.rounds, sharedRounds: shared, continued }, null, v);
      b.phase = "done";
      b.message = together
        ? "Training is finished: you hold the model everyone trained together."
        : from !== null
          ? `Training is finished: it went on alone from the model trained before, ${roundsText(before + b.rounds)} in all.`
          : "Training is finished.";
      log(s, "done");
    }
  } catch (e) {
    await training; // a local round may still be finishing its batch: let it end first
    const expired = e instanceof WaitExpired && !stopped ? e : null;
    const ended: KeptModel["ended"] = stopped
      ? "stopped"
      : expired
        ? "wait_expired"
        : e instanceof ServerUnreachable
          ? "unreachable"
          : "failed";
    if (model !== null) {
      let kept: KeptInfo | null = null;
      let weights: Weights | null = null;
      if (expired) {
        // the client says which model it keeps: the last one combined, or its own
        const start = joinRound ?? expired.sharedRounds - expired.roundsDone;
        const own = expired.kept === "global" ? Math.max(0, expired.sharedRounds - start) : localRounds;
        kept = { kind: expired.kept, mode, ended, rounds: before + own, sharedRounds: expired.sharedRounds, continued };
        weights = expired.weights;
      } else {
        const g = global as { round: number; weights: Weights } | null;
        if (g !== null) {
          const own = g.round - (joinRound ?? 0);
          kept = { kind: "global", mode, ended, rounds: before + own, sharedRounds: g.round, continued };
          weights = g.weights;
        } else if (trained) {
          const shared = together ? (joinRound ?? null) : null;
          kept = { kind: "local", mode, ended, rounds: before + localRounds, sharedRounds: shared, continued };
        }
      }
      try {
        await keep(s, model, kept, weights, val);
      } catch (keepError) {
        // e.g. a global model of the wrong shape: nothing is kept, the session still ends
        model.dispose();
        log(s, `the last model could not be kept: ${describe(keepError)}`, "warn");
      }
    }
    const total = before + b.rounds;
    if (stopped) {
      b.phase = "stopped";
      b.message = `Training was stopped. ${keptText(s.kept, total, direct)}`;
      log(s, "stopped", "warn");
    } else if (expired) {
      b.phase = "stopped";
      b.problem = "wait_expired";
      const waited = durationText(task.training.wait_for_others_s);
      const k = s.kept as KeptModel | null;
      b.message =
        direct
          ? `No round started within ${waited}: too few others took part. ${keptText(k, total, direct)}`
          : k?.kind === "local"
            ? `Too few others sent their update within ${waited}, so yours could not be combined with anyone's. You keep the model your browser trained on your data alone.`
            : `Too few others sent their update within ${waited}, so training with others stopped. ${keptText(k, total, direct)}`;
    } else {
      b.phase = "error";
      if (!clientLogs) log(s, describe(e), "error"); // the client has logged its own
      if (e instanceof AccessRefused) {
        // a private instance: this browser's invitation was revoked or has expired, or it has none
        b.problem = "refused";
        const why = invitationFor(task.id) === null ? INVITATION_REQUIRED : INVITATION_REFUSED;
        b.message = s.kept ? `${why} ${keptText(s.kept, total, direct)}` : why;
      } else if (e instanceof ServerUnreachable && e.cause instanceof LinkClosed && e.cause.code === LIMITED_CLOSE) {
        b.problem = "unreachable";
        b.message = `The disco server cannot take more participants right now (${e.cause.reason}), so training with others cannot start. Try again in a few minutes, or train alone on your data instead.`;
      } else if (e instanceof ServerUnreachable) {
        b.problem = "unreachable";
        b.message = e.joined
          ? `The connection to the server was lost and could not be restored. ${keptText(s.kept, total, direct)}`
          : "Cannot reach the disco server, so training with others cannot start. Check your internet connection and try again, or train alone on your data instead.";
      } else {
        b.message = s.kept ? `${describe(e).replace(/\.?$/, ".")} ${keptText(s.kept, total, direct)}` : describe(e);
      }
    }
  } finally {
    if (isRunning(s)) b.phase = stopped ? "stopped" : "error"; // never left looking busy
    s.stop = null;
    b.attempt = 0;
    b.reconnecting = false;
    b.waitUntil = null;
    b.peers = [];
    b.roundPeers = null;
    if (active.value === s) active.value = null;
  }
}

/**
 * Train more rounds from the kept model: alone from it, or together by joining the session
 * again (its shared model goes on). The board's rounds and charts continue.
 */
export function trainMore(s: TaskSession): Promise<void> {
  const mode = canTrainTogether(s.task) ? (s.kept?.mode ?? s.mode) : "alone";
  return startTraining(s, mode, { continue: true, rounds: roundsOf(s.task) });
}

/** Rounds left of the plan after the last run ended early (at least 1). */
export function roundsLeft(s: TaskSession): number {
  const b = s.board;
  return Math.max(1, b.rounds - b.round);
}

/** Weights of the kept model, for download or the library. */
export function trainedWeights(s: TaskSession): ReturnType<typeof getWeights> | null {
  return s.model ? getWeights(s.model, s.task.model) : null;
}
