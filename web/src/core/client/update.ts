/**
 * What a participant sends after training a round: the one update pipeline of the browser
 * client, the same as Python's `disco.client.update.prepare_update`
 * (tests/vectors/update_pipeline.json pins both):
 *
 * 1. The trained weights must have the global model's names and shapes and be finite; otherwise
 *    nothing is sent (`SessionError`: training diverged).
 * 2. The sample count must be an integer from 1 to 2^40 (it is the update's FedAvg weight).
 * 3. Metrics that are NaN or infinite are left out (and named), the others are reported.
 * 4. With the task's privacy on, the update is clipped and noised (`core/privacy`), and nothing
 *    else computed from the data leaves unprotected: no metrics, and a sample count of 1.
 */
import { SessionError } from "../errors";
import { cryptoRandom, l2Norm, noiseStd, privatizeUpdate, subtract, type RandomSource } from "../privacy";
import { MAX_NUM_SAMPLES, METRIC_NAMES, type Metrics } from "../protocol";
import type { PrivacyConfig } from "../task";
import type { Weights } from "../weights";

/** Metrics as training reports them: null or absent when unknown; may be NaN. */
export type RawMetrics = Partial<Record<(typeof METRIC_NAMES)[number], number | null>>;

/** The update as it will be sent, and what the pipeline did to it. */
export interface PreparedUpdate {
  weights: Weights;
  numSamples: number;
  metrics: Metrics;
  /** Metrics left out because they were NaN or infinite. */
  droppedMetrics: string[];
  /** With privacy: the L2 norm of the update before clipping; null without. */
  norm: number | null;
  /** With privacy: whether the update was scaled down to the clipping radius. */
  clipped: boolean;
}

/** The update to send after training `received` into `trained` on `numSamples` samples. */
export function prepareUpdate(
  received: Weights,
  trained: Weights,
  numSamples: number,
  metrics: RawMetrics,
  privacy: PrivacyConfig | null,
  random: RandomSource = cryptoRandom,
): PreparedUpdate {
  trained.checkLike(received, "trained weights");
  if (!trained.isFinite()) {
    throw new SessionError(
      "training produced NaN or infinite weights (it diverged; try a lower learning rate); nothing was sent",
    );
  }
  if (!Number.isInteger(numSamples)) throw new SessionError(`the sample count must be an integer, got ${numSamples}`);
  if (numSamples < 1 || numSamples > MAX_NUM_SAMPLES) {
    throw new SessionError(`the sample count must be from 1 to 2^40, got ${numSamples}`);
  }
  const unknown = Object.keys(metrics).filter((k) => !(METRIC_NAMES as readonly string[]).includes(k));
  if (unknown.length > 0) throw new SessionError(`unknown metrics ${unknown.join(", ")}`);
  const kept: Metrics = {};
  const droppedMetrics: string[] = [];
  for (const name of METRIC_NAMES) {
    const value = metrics[name];
    if (value === undefined || value === null) continue;
    if (Number.isFinite(value)) kept[name] = value;
    else droppedMetrics.push(name);
  }
  if (privacy === null) return { weights: trained, numSamples, metrics: kept, droppedMetrics, norm: null, clipped: false };
  const norm = l2Norm(subtract(trained, received));
  const shared = privatizeUpdate(received, trained, privacy, random);
  return { weights: shared, numSamples: 1, metrics: {}, droppedMetrics, norm, clipped: norm > privacy.clipping_radius };
}

/** One line for the log: the update's size, clipping and noise (privacy on). */
export function describePrivacy(update: PreparedUpdate, privacy: PrivacyConfig): string {
  const radius = privacy.clipping_radius;
  const std = noiseStd(privacy);
  const size = Number((update.norm ?? 0).toPrecision(3));
  return (
    `privacy: update size ${size}, ` +
    (update.clipped ? `clipped to L2 norm ≤ ${radius}` : `within the clipping radius ${radius}`) +
    (std > 0 ? `; noise σ = ${Number(std.toPrecision(3))} added` : "; no noise") +
    "; no metrics or sample count sent"
  );
}

/**
 * `prepareUpdate` on one round's training output, as both a federated client and a decentralized
 * peer do it: the metrics left out (a warning that starts with `mine`, "your round k of N") and,
 * with privacy, what was done to the update (`describePrivacy`) go to `log`.
 */
export function prepareAndLog(
  received: Weights,
  trained: { weights: Weights; numSamples: number; metrics: RawMetrics },
  privacy: PrivacyConfig | null,
  random: RandomSource | undefined,
  mine: string,
  log: (level: "info" | "warn", message: string) => void,
): PreparedUpdate {
  const prepared = prepareUpdate(received, trained.weights, trained.numSamples, trained.metrics, privacy, random);
  if (prepared.droppedMetrics.length > 0) {
    log("warn", `${mine}: metrics ${prepared.droppedMetrics.join(", ")} are not finite; they are not reported`);
  }
  if (privacy !== null) log("info", describePrivacy(prepared, privacy));
  return prepared;
}
