/**
 * Image loading, the parts that run without a browser: pixels to samples (Pillow's 'L'
 * luminance, channels-last), label matching, the labels CSV, and per-file problems.
 * Decoding itself needs `createImageBitmap` and a canvas (browser tests cover it).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataError } from "../src/core/data/dataset";
import {
  imageShape,
  loadLabelledImages,
  matchLabel,
  pairLabelsWithFiles,
  parseLabelsCsv,
  pixelsToSample,
} from "../src/core/data/images";
import type { Task, TrainingInfo } from "../src/core/task";

const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
const training = (id: string): TrainingInfo => catalog.find((c) => c.task.id === id)?.task.training as TrainingInfo;

describe("pixelsToSample", () => {
  // RGBA of 8 pixels and Pillow's convert("L") of their RGB: [76, 150, 29, 132, 128, 255, 2, 95]
  const rgb = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 99], [128, 128, 128], [255, 255, 255], [1, 2, 3], [250, 17, 90]];
  const rgba = Uint8ClampedArray.from(rgb.flatMap((p) => [...p, 200]));

  it("greys like Pillow's 'L' mode, in [0, 1]", () => {
    const grey = pixelsToSample(rgba, 4, 2, 1);
    expect(Array.from(grey)).toEqual([76, 150, 29, 132, 128, 255, 2, 95].map((v) => Math.fround(v / 255)));
  });

  it("keeps RGB channels-last, row after row, and drops alpha", () => {
    const colour = pixelsToSample(rgba, 4, 2, 3);
    expect(colour.length).toBe(24);
    expect(Array.from(colour.slice(9, 12))).toEqual([12, 200, 99].map((v) => Math.fround(v / 255)));
    expect(() => pixelsToSample(rgba, 3, 2, 3)).toThrow(DataError);
  });
});

describe("labels", () => {
  const labels = ["covid-negative", "covid-positive"];

  it("match exactly, case-insensitively when unique, or by index", () => {
    expect(matchLabel("covid-positive", labels)).toBe(1);
    expect(matchLabel("COVID-Negative", labels)).toBe(0);
    expect(matchLabel(" 1 ", labels)).toBe(1);
    expect(matchLabel("2", labels)).toBeNull();
    expect(matchLabel("ab", ["Ab", "aB"])).toBeNull(); // ambiguous
    expect(matchLabel("b", ["A", "B"])).toBe(1);
  });

  it("come from a labels CSV with filename and label columns, in any case", () => {
    const rows = parseLabelsCsv("\ufeffFileName;Label\na.png;covid-positive\n\n sub/b.png ; 0 \n", "labels.csv");
    expect(rows).toEqual([
      { row: 2, filename: "a.png", label: "covid-positive" },
      { row: 4, filename: "sub/b.png", label: "0" },
    ]);
    expect(() => parseLabelsCsv("name,class\na.png,0\n", "l.csv")).toThrow(
      "l.csv: needs columns 'filename' and 'label'; the file has 'name', 'class'",
    );
  });

  it("pair with the picked files; a missing file is a problem naming the row", () => {
    const a = new File([new Uint8Array([1])], "a.png");
    const b = new File([new Uint8Array([2])], "b.png");
    const { items, problems } = pairLabelsWithFiles(
      [
        { row: 2, filename: "a.png", label: "1" },
        { row: 3, filename: "b.png", label: "0" },
        { row: 4, filename: "c.png", label: "0" },
      ],
      [a, b],
    );
    expect(items.map((i) => [i.name, i.label])).toEqual([["a.png", "1"], ["b.png", "0"]]);
    expect(problems).toEqual(["labels.csv: row 4: image 'c.png' not found"]);
  });
});

describe("loadLabelledImages", () => {
  it("reports unknown labels and unreadable files per file; good files would still count", async () => {
    const t = training("mnist");
    const file = new File([new Uint8Array([0, 1, 2])], "seven.png");
    const result = await loadLabelledImages(
      [
        { file, label: "eleven" },
        { file, label: "7" },
      ],
      t,
    );
    expect(result.n).toBe(0);
    expect(result.sampleShape).toEqual([28, 28, 1]);
    expect(result.problems[0]).toBe(
      "seven.png: unknown label 'eleven'; the labels are '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' (or their index)",
    );
    expect(result.problems[1]).toMatch(/^seven\.png: cannot read image \(/);
  });

  it("needs an image task", () => {
    expect(imageShape(training("cifar10"))).toEqual([32, 32, 3]);
    expect(() => imageShape(training("titanic"))).toThrow("images can only be loaded for an image task");
  });
});
