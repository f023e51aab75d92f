// The training charts' series, read from the board's epoch history: loss, accuracy and, for a
// language model, perplexity, each for training and validation (TrainStep's charts).
import { type ComputedRef, computed } from "vue";
import type { Task } from "../../core/task";
import type { Board } from "./board";

/** The charts of `board`'s history for `task`, and which of them show. */
export function useTrainCharts(board: ComputedRef<Board>, task: ComputedRef<Task>) {
  const lossSeries = computed(() => [
    { label: "training", color: "#1f5fbf", points: board.value.history.map((h) => ({ x: h.x, y: h.train_loss })) },
    {
      label: "validation",
      color: "#c2410c",
      dashed: true,
      points: board.value.history.filter((h) => h.val_loss !== null).map((h) => ({ x: h.x, y: h.val_loss ?? 0 })),
    },
  ]);
  const accSeries = computed(() => [
    {
      label: "training",
      color: "#1f5fbf",
      points: board.value.history.filter((h) => h.train_accuracy !== null).map((h) => ({ x: h.x, y: h.train_accuracy ?? 0 })),
    },
    {
      label: "validation",
      color: "#c2410c",
      dashed: true,
      points: board.value.history.filter((h) => h.val_accuracy !== null).map((h) => ({ x: h.x, y: h.val_accuracy ?? 0 })),
    },
  ]);
  /** A language model: perplexity instead of accuracy (token accuracy says little to people). */
  const isText = computed(() => task.value.training.data_type === "text");
  const hasAccuracy = computed(() => task.value.model.loss !== "mse" && !isText.value);
  const pplSeries = computed(() => [
    {
      label: "training",
      color: "#1f5fbf",
      points: board.value.history.filter((h) => h.train_perplexity != null).map((h) => ({ x: h.x, y: h.train_perplexity ?? 0 })),
    },
    {
      label: "validation",
      color: "#c2410c",
      dashed: true,
      points: board.value.history.filter((h) => h.val_perplexity != null).map((h) => ({ x: h.x, y: h.val_perplexity ?? 0 })),
    },
  ]);
  return { lossSeries, accSeries, isText, hasAccuracy, pplSeries };
}
