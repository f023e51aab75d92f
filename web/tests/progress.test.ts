/**
 * Reading the training curves: the "still improving" rule behind the board's hint and "Train
 * more rounds", and the words of a wait for participants.
 */
import { describe, expect, it } from "vitest";
import { type EpochFigures, clockText, durationText, stillImproving, waitingText } from "../src/app/composables/progress";

/** Epochs with the given validation accuracies and losses (training figures alongside). */
function epochs(accs: (number | null)[], losses: number[]): EpochFigures[] {
  return losses.map((loss, i) => ({
    train_loss: loss,
    train_accuracy: accs[i] ?? null,
    val_loss: loss,
    val_accuracy: accs[i] ?? null,
  }));
}

describe("stillImproving", () => {
  it("says yes when accuracy is still climbing at the end (72% on a small table)", () => {
    expect(stillImproving(epochs([0.5, 0.58, 0.63, 0.68, 0.72], [0.69, 0.66, 0.64, 0.63, 0.62]))).toBe(true);
  });

  it("says yes when the loss still falls clearly even though accuracy is flat", () => {
    expect(stillImproving(epochs([0.8, 0.8, 0.8, 0.8, 0.8], [0.6, 0.55, 0.5, 0.46, 0.42]))).toBe(true);
  });

  it("says no once the curves have levelled off", () => {
    expect(stillImproving(epochs([0.9, 0.91, 0.9, 0.91, 0.905], [0.3, 0.295, 0.3, 0.298, 0.297]))).toBe(false);
  });

  it("says no when accuracy is at the ceiling, however the loss moves", () => {
    expect(stillImproving(epochs([0.97, 0.98, 0.99, 1, 1], [0.2, 0.15, 0.1, 0.07, 0.05]))).toBe(false);
  });

  it("looks at the trend of the last epochs, not at one lucky jump", () => {
    // flat and noisy, then the last epoch happens to be the best: no clear trend
    expect(stillImproving(epochs([0.8, 0.78, 0.8, 0.79, 0.81], [0.5, 0.51, 0.5, 0.505, 0.5]))).toBe(false);
    // only the last window counts: early progress followed by a plateau is not "still improving"
    const early = epochs([0.3, 0.5, 0.7], [1.2, 0.9, 0.6]);
    const plateau = epochs([0.85, 0.85, 0.85, 0.85, 0.85], [0.4, 0.4, 0.4, 0.4, 0.4]);
    expect(stillImproving([...early, ...plateau])).toBe(false);
    expect(stillImproving(early)).toBe(true);
  });

  it("needs at least three epochs", () => {
    expect(stillImproving(epochs([0.5, 0.7], [0.7, 0.5]))).toBe(false);
    expect(stillImproving([])).toBe(false);
  });

  it("uses the training figures when no samples were kept aside, and the loss alone for regression", () => {
    const noVal = [0.9, 0.7, 0.5, 0.4].map((l) => ({ train_loss: l, train_accuracy: null, val_loss: null, val_accuracy: null }));
    expect(stillImproving(noVal)).toBe(true);
    const flat = [0.4, 0.4, 0.4, 0.4].map((l) => ({ train_loss: l, train_accuracy: null, val_loss: null, val_accuracy: null }));
    expect(stillImproving(flat)).toBe(false);
    expect(stillImproving(epochs([null, null, null], [12, 10, 8]))).toBe(true);
  });

  it("ignores a validation loss that diverges (nothing finite to read)", () => {
    expect(stillImproving(epochs([0.5, 0.5, 0.5], [Number.NaN, Number.NaN, Number.NaN]))).toBe(false);
  });
});

describe("waiting words", () => {
  it("counts who is missing", () => {
    expect(waitingText(1, 2)).toBe("Waiting for 1 more participant — 1 of 2 here");
    expect(waitingText(0, 3)).toBe("Waiting for 3 more participants — 0 of 3 here");
    expect(waitingText(2, 2)).toBeNull();
    expect(waitingText(null, 2)).toBeNull();
  });

  it("shows time left as a clock and durations in words", () => {
    expect(clockText(600_000)).toBe("10:00");
    expect(clockText(65_001)).toBe("1:06");
    expect(clockText(-5)).toBe("0:00");
    expect(clockText(3_723_000)).toBe("1:02:03");
    expect(durationText(600)).toBe("10 minutes");
    expect(durationText(3)).toBe("3 seconds");
    expect(durationText(60)).toBe("60 seconds");
    expect(durationText(7200)).toBe("2 hours");
  });
});
