// Training with others through the server: each round the received global model is loaded,
// trained on the local data for what the round trains (whole epochs or a part of one), and handed to the core client, which applies
// the one update pipeline (checks, the task's privacy, metrics: core/client/update.ts) and sends
// it. Only weights and four numbers (loss/accuracy) leave the browser; never the data. With
// secure aggregation the client sends each round's update masked instead (and no numbers): the
// server learns only the sum of the round's updates.
import type * as tf from "@tensorflow/tfjs";
import { FederatedClient, type ClientEvent, type TrainFn } from "../../core/client/federated";
import { getWeights, setWeights } from "../../core/models";
import type { Task } from "../../core/task";
import type { EpochMetrics } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { serverUrl } from "./api";
import type { Board, LogLine, Phase } from "./board";
import { invitationFor } from "./invitations";
import { recordPrivateUpdate } from "./privacyBudget";

/** What `federatedHooks` needs: the run's task, board and hooks, and how to train one round. */
export interface FederatedHooksRun {
  task: Task;
  board: Board;
  /** Load `weights` into the local model, train it for this browser's `k`-th round (counted from 1) and read it back. */
  trainOn: (weights: Weights, k: number) => Promise<{ weights: Weights; history: EpochMetrics[] }>;
  /** Training samples behind each update. */
  numSamples: number;
  log: (message: string, level?: LogLine["level"]) => void;
  /** Every global model received that the server combined, with the number of rounds it combined into it. */
  onGlobal: (round: number, weights: Weights) => void;
  /** A round closed (its record is in the server's round history). */
  onRoundClosed?: () => void;
}

/**
 * The client's `train` and `onEvent` for a run: training starts only while the round's signal
 * has not aborted (a stop, or the end of a secure round), and a model an aborted secure round
 * opens the next one with (the same model, one round on) is no global model: nothing was
 * combined into it, so `onGlobal` does not hear of it.
 */
export function federatedHooks(run: FederatedHooksRun): { train: TrainFn; onEvent: (e: ClientEvent) => void } {
  const { task, board, trainOn, numSamples, log, onGlobal, onRoundClosed } = run;
  const privacy = task.training.privacy;
  let mine = 0; // rounds this browser trained
  let uncombined: number | null = null; // the round an aborted secure round opened with the same model
  return {
    train: async (round, weights, signal) => {
      signal.throwIfAborted(); // stopped (or the round ended) before training began: train nothing
      if (round !== uncombined) onGlobal(round, weights);
      mine += 1;
      const { weights: trained, history } = await trainOn(weights, mine);
      const last = history.at(-1);
      const metrics = last
        ? { train_loss: last.train_loss, train_accuracy: last.train_accuracy, val_loss: last.val_loss, val_accuracy: last.val_accuracy }
        : {};
      return { weights: trained, numSamples, metrics };
    },
    onEvent: (e) => {
      if (e.kind === "status") {
        if (e.state !== "done" && e.state !== "stopped" && e.state !== "error") {
          board.phase = e.state as Phase;
        }
        board.participants = e.participants;
        board.minParticipants = e.minParticipants;
        board.attempt = e.state === "connecting" ? e.attempt : 0;
        board.reconnecting = e.state === "connecting" && e.joined;
        if (e.joined) board.sharedRound = e.round;
        board.waitUntil = e.waitUntil;
      } else if (e.kind === "round") {
        if (e.round === uncombined) uncombined = null;
        board.sharedRound = e.round;
        onGlobal(e.round, e.weights);
        onRoundClosed?.();
      } else if (e.kind === "aborted") {
        uncombined = e.round + 1; // the same model, one round on: no training of the shared model
        board.sharedRound = e.round + 1;
        onRoundClosed?.(); // the round history says why
      } else if (e.kind === "log") {
        log(e.message, e.level);
      } else if (e.kind === "sent" && privacy !== null) {
        recordPrivateUpdate(task.id); // each protected update that left counts toward ε
      }
    },
  };
}

/**
 * Take part in the task's rounds; afterwards `model` holds the final global weights. Rejects
 * with `WaitExpired` (carrying the model to keep) when no round closes within the task's
 * `wait_for_others_s` after this browser's update.
 */
export async function runFederated(run: {
  task: Task;
  /** The name this browser joins with (shown to others and in the round history). */
  name: string;
  board: Board;
  model: tf.LayersModel;
  /** Train `model` on the local data: round `round`, this browser's `k`-th (counted from 1; the task's schedule says what it trains). */
  trainRound: (round: number, k: number) => Promise<EpochMetrics[]>;
  /** Training samples behind each update. */
  numSamples: number;
  log: (message: string, level?: LogLine["level"]) => void;
  /** Every global model received that the server combined, with the number of rounds it combined into it. */
  onGlobal: (round: number, weights: Weights) => void;
  onStop: (stop: () => void) => void;
  /** A round closed (its record is in the server's round history). */
  onRoundClosed?: () => void;
}): Promise<void> {
  const { task, name, board, model, trainRound, numSamples, log, onGlobal, onStop, onRoundClosed } = run;
  const spec = task.model;
  const trainOn = async (weights: Weights, k: number): Promise<{ weights: Weights; history: EpochMetrics[] }> => {
    setWeights(model, spec, weights);
    const history = await trainRound(k, k);
    return { weights: getWeights(model, spec), history };
  };
  const { train, onEvent } = federatedHooks({ task, board, trainOn, numSamples, log, onGlobal, onRoundClosed });
  const client = new FederatedClient({
    serverUrl: serverUrl(),
    taskId: task.id,
    name,
    invitation: invitationFor(task.id), // a private instance's task: the one this browser holds
    reference: getWeights(model, spec),
    privacy: task.training.privacy,
    secureAggregation: task.training.secure_aggregation,
    waitForOthersMs: task.training.wait_for_others_s * 1000,
    train,
    onEvent,
  });
  onStop(() => client.stop());
  const result = await client.run(board.rounds);
  setWeights(model, spec, result.weights);
  log(`sent ${(result.bytesUp / 1024).toFixed(0)} kB, received ${(result.bytesDown / 1024).toFixed(0)} kB (model updates only)`);
}
