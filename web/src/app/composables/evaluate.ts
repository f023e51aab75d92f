// Testing a trained model on labelled data and predicting on unlabelled data, in the browser.
import type * as tf from "@tensorflow/tfjs";
import type { Dataset } from "../../core/data/dataset";
import type { Task } from "../../core/task";
import { classesFromOutputs, evaluate, predict } from "../../core/training/trainer";

/** One sample's prediction. */
export interface Prediction {
  source: string;
  predicted: number;
  confidence: number;
  /** The true class id, when known. */
  truth?: number;
}

/** Accuracy, confusion matrix ([truth][predicted]) and per-sample results on labelled data. */
export interface TestResult {
  n: number;
  accuracy: number | null;
  loss: number;
  confusion: number[][];
  samples: Prediction[];
}

/** Predicted class and its probability for every sample of `data`. */
export async function predictAll(model: tf.LayersModel, data: Dataset): Promise<Prediction[]> {
  const outputs = await predict(model, data);
  const classes = classesFromOutputs(outputs, data.n);
  const width = data.n ? outputs.length / data.n : 1;
  return Array.from(classes, (c, i) => {
    const p =
      width === 1 ? (c === 1 ? outputs[i] ?? 0 : 1 - (outputs[i] ?? 0)) : (outputs[i * width + c] ?? 0);
    return { source: data.sources?.[i] ?? `sample ${i + 1}`, predicted: c, confidence: p };
  });
}

/** Test the model on labelled data. */
export async function testModel(model: tf.LayersModel, task: Task, data: Dataset): Promise<TestResult> {
  const { loss, accuracy } = await evaluate(model, data);
  const samples = await predictAll(model, data);
  const k = Math.max(task.training.labels.length, 2);
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  samples.forEach((s, i) => {
    const truth = data.y[i] ?? 0;
    s.truth = truth;
    const row = confusion[truth];
    if (row && s.predicted < k) row[s.predicted] = (row[s.predicted] ?? 0) + 1;
  });
  return { n: data.n, accuracy, loss, confusion, samples };
}

function csvCell(text: string): string {
  return /[",\n;]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Predictions as CSV text: source, predicted label, confidence (and the truth when known). */
export function predictionsCsv(rows: Prediction[], labels: readonly string[]): string {
  const withTruth = rows.some((r) => r.truth !== undefined);
  const name = (c: number): string => labels[c] ?? String(c);
  const header = ["source", "prediction", "confidence", ...(withTruth ? ["truth"] : [])];
  const lines = rows.map((r) =>
    [
      csvCell(r.source),
      csvCell(name(r.predicted)),
      r.confidence.toFixed(4),
      ...(withTruth && r.truth !== undefined ? [csvCell(name(r.truth))] : []),
    ].join(","),
  );
  return `${[header.join(","), ...lines].join("\n")}\n`;
}
