// Training with others through the server: each round the received global model is loaded,
// trained on the local data for the round's epochs, and handed to the core client, which applies
// the one update pipeline (checks, the task's privacy, metrics: core/client/update.ts) and sends
// it. Only weights and four numbers (loss/accuracy) leave the browser; never the data. With
// secure aggregation the client sends each round's update masked instead (and no numbers): the
// server learns only the sum of the round's updates.
import type * as tf from "@tensorflow/tfjs";
import { FederatedClient } from "../../core/client/federated";
import { getWeights, setWeights } from "../../core/models";
import { epochsInRound, type Task } from "../../core/task";
import type { EpochMetrics } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { serverUrl } from "./api";
import type { Board, LogLine, Phase } from "./board";
import { recordPrivateUpdate } from "./privacyBudget";

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
  /** Train `model` on the local data for `epochs` epochs; `round` counts this browser's rounds from 1. */
  trainRound: (round: number, epochs: number) => Promise<EpochMetrics[]>;
  /** Training samples behind each update. */
  numSamples: number;
  log: (message: string, level?: LogLine["level"]) => void;
  /** Every global model received, with the number of rounds the server combined into it. */
  onGlobal: (round: number, weights: Weights) => void;
  onStop: (stop: () => void) => void;
  /** A round closed (its record is in the server's round history). */
  onRoundClosed?: () => void;
}): Promise<void> {
  const { task, name, board, model, trainRound, numSamples, log, onGlobal, onStop, onRoundClosed } = run;
  const spec = task.model;
  const privacy = task.training.privacy;
  let mine = 0; // rounds this browser trained
  const client = new FederatedClient({
    serverUrl: serverUrl(),
    taskId: task.id,
    name,
    reference: getWeights(model, spec),
    privacy,
    secureAggregation: task.training.secure_aggregation,
    waitForOthersMs: task.training.wait_for_others_s * 1000,
    train: async (round, weights) => {
      onGlobal(round, weights);
      mine += 1;
      setWeights(model, spec, weights);
      const history = await trainRound(mine, epochsInRound(task.training, mine));
      const last = history.at(-1);
      const metrics = last
        ? { train_loss: last.train_loss, train_accuracy: last.train_accuracy, val_loss: last.val_loss, val_accuracy: last.val_accuracy }
        : {};
      return { weights: getWeights(model, spec), numSamples, metrics };
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
        board.sharedRound = e.round;
        onGlobal(e.round, e.weights);
        onRoundClosed?.();
      } else if (e.kind === "aborted") {
        board.sharedRound = e.round + 1; // the same model, one round on
        onRoundClosed?.(); // the round history says why
      } else if (e.kind === "log") {
        log(e.message, e.level);
      } else if (e.kind === "sent" && privacy !== null) {
        recordPrivateUpdate(task.id); // each protected update that left counts toward ε
      }
    },
  });
  onStop(() => client.stop());
  const result = await client.run(board.rounds);
  setWeights(model, spec, result.weights);
  log(`sent ${(result.bytesUp / 1024).toFixed(0)} kB, received ${(result.bytesDown / 1024).toFixed(0)} kB (model updates only)`);
}
