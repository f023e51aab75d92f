// Training with others through the server: each round the received global model is loaded,
// trained on the local data for epochs_per_round epochs, and the new weights are sent back.
// Only weights and four numbers (loss/accuracy) leave the browser; never the data.
import type * as tf from "@tensorflow/tfjs";
import { FederatedClient } from "../../core/client/federated";
import { getWeights, setWeights } from "../../core/models";
import { l2Norm, noiseStd, privatizeUpdate, subtract } from "../../core/privacy";
import type { Metrics } from "../../core/protocol";
import type { Task } from "../../core/task";
import type { EpochMetrics } from "../../core/training/trainer";
import type { Weights } from "../../core/weights";
import { serverUrl } from "./api";
import { recordPrivateUpdate } from "./privacyBudget";
import type { Board, LogLine, Phase } from "./session";

/** Take part in the task's rounds; afterwards `model` holds the final global weights. */
export async function runFederated(run: {
  task: Task;
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
}): Promise<void> {
  const { task, board, model, trainRound, numSamples, log, onGlobal, onStop } = run;
  const spec = task.model;
  const { epochs, epochs_per_round: per } = task.training;
  const privacy = task.training.privacy;
  let mine = 0; // rounds this browser trained
  const client = new FederatedClient({
    serverUrl: serverUrl(),
    taskId: task.id,
    name: `browser-${Math.random().toString(36).slice(2, 7)}`,
    reference: getWeights(model, spec),
    train: async (round, weights) => {
      onGlobal(round, weights);
      mine += 1;
      setWeights(model, spec, weights);
      const history = await trainRound(mine, Math.max(1, Math.min(per, epochs - (mine - 1) * per)));
      const last = history.at(-1);
      const metrics: Metrics = {};
      if (last) {
        for (const key of ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] as const) {
          const v = last[key];
          if (v !== null && Number.isFinite(v)) metrics[key] = v;
        }
      }
      const trained = getWeights(model, spec);
      if (privacy === null) return { weights: trained, numSamples, metrics };
      const shared = privatizeUpdate(weights, trained, privacy);
      recordPrivateUpdate(task.id);
      const norm = l2Norm(subtract(trained, weights));
      const radius = privacy.clipping_radius;
      log(
        `privacy: update size ${Number(norm.toPrecision(3))}, ` +
          (norm > radius ? `clipped to L2 norm ≤ ${radius}` : `within the clipping radius ${radius}`) +
          (noiseStd(privacy) > 0 ? `; noise σ = ${Number(noiseStd(privacy).toPrecision(3))} added` : "; no noise") +
          "; no metrics or sample count sent",
      );
      // nothing else computed from the data leaves unprotected: no metrics, equal weights
      return { weights: shared, numSamples: 1, metrics: {} };
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
      } else if (e.kind === "round") {
        onGlobal(e.round, e.weights);
      } else if (e.kind === "log") {
        log(e.message, e.level);
      }
    },
  });
  onStop(() => client.stop());
  const result = await client.run(board.rounds);
  setWeights(model, spec, result.weights);
  log(`sent ${(result.bytesUp / 1024).toFixed(0)} kB, received ${(result.bytesDown / 1024).toFixed(0)} kB (model updates only)`);
}
