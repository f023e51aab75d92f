/**
 * Image loading, the parts that run without a browser: the size rule (the same cases and
 * messages as Python's, from tests/data/fixtures/image_sizes.json), pixels to samples (Pillow's
 * 'L' luminance, channels-last), label matching, the labels CSV, folders picked for the whole
 * task, and per-file problems. Decoding itself needs `createImageBitmap` and a canvas (browser
 * tests cover it).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DataError } from "../src/core/data/dataset";
import { relativePath } from "../src/core/data/files";
import {
  imageShape,
  loadLabelledImages,
  matchLabel,
  pairLabelsWithFiles,
  parseLabelsCsv,
  pixelsToSample,
  readTaskFolders,
  sizeProblem,
} from "../src/core/data/images";
import type { Task, TrainingInfo } from "../src/core/task";

const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
const training = (id: string): TrainingInfo => catalog.find((c) => c.task.id === id)?.task.training as TrainingInfo;
const sizes = JSON.parse(
  readFileSync(new URL("../../tests/data/fixtures/image_sizes.json", import.meta.url), "utf8"),
) as { cases: { task: [number, number]; image: [number, number]; problem: string | null }[] };

/** A file as a folder picker (`<input webkitdirectory>`) gives it: with its path in the folder. */
function picked(path: string, content = path): File {
  const file = new File([content], path.slice(path.lastIndexOf("/") + 1));
  return Object.defineProperty(file, "webkitRelativePath", { value: path });
}

describe("sizeProblem", () => {
  it.each(sizes.cases)("$image for a $task task: the same answer as Python", ({ task, image, problem }) => {
    const t = { ...training("mnist"), image_width: task[0], image_height: task[1] };
    expect(sizeProblem(image[0], image[1], t)).toBe(problem);
  });
});

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

  it("match paths of files picked through a folder; a bare name that fits several is a problem", () => {
    const zero = picked("client_1/0/00001.png");
    const seven = picked("client_1/7/00001.png");
    const rows = parseLabelsCsv("filename,label\n0/00001.png,0\n./7\\00001.png,7\n00001.png,0\n", "labels.csv");
    const { items, problems } = pairLabelsWithFiles(rows, [zero, seven]);
    expect(items.map((i) => [i.file, i.name, i.label])).toEqual([
      [zero, "client_1/0/00001.png", "0"],
      [seven, "client_1/7/00001.png", "7"],
    ]);
    expect(problems).toEqual([
      "labels.csv: row 4: image '00001.png' matches 2 picked files (client_1/0/00001.png, client_1/7/00001.png); write its folder too",
    ]);
  });

  it("count a file listed twice once, from its first row, and say so", () => {
    const zero = picked("client_1/0/00001.png");
    const rows = parseLabelsCsv("filename,label\n0/00001.png,0\n./0/00001.png,3\n", "labels.csv");
    const { items, problems } = pairLabelsWithFiles(rows, [zero]);
    expect(items.map((i) => i.label)).toEqual(["0"]);
    expect(problems).toEqual(["labels.csv: row 3: image './0/00001.png' is already listed in row 2"]);
  });

  it("refuse a labels CSV with a header and no rows", () => {
    expect(() => parseLabelsCsv("filename,label\n\n", "mine.csv")).toThrow(new DataError("mine.csv: no data rows"));
  });
});

describe("readTaskFolders", () => {
  const labels = training("mnist").labels;

  it("labels pictures by their sub-folder, keeping same-named files apart", () => {
    const files = [
      picked("client_1/0/00001.png"),
      picked("client_1/0/deeper/00002.png"),
      picked("client_1/7/00001.png"),
      picked("client_1/README.txt"),
      picked("client_1/cover.png"),
      picked("client_1/7/notes.txt"),
      picked("client_1/.DS_Store"),
      picked("client_1/horse/00001.png"),
    ];
    const [folder, ...others] = readTaskFolders(files, labels);
    expect(others).toEqual([]);
    expect(folder?.name).toBe("client_1");
    expect(folder?.labelsCsv).toBeNull();
    expect(folder?.items.map((i) => [i.name, i.label])).toEqual([
      ["client_1/0/00001.png", "0"],
      ["client_1/0/deeper/00002.png", "0"],
      ["client_1/7/00001.png", "7"],
    ]);
    expect(folder?.problems).toEqual([
      "client_1/horse: folder 'horse' is not a label of this task; the labels are '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'",
    ]);
    expect(folder?.notes).toEqual([
      "Not read, directly in client_1 instead of a label sub-folder: client_1/README.txt, client_1/cover.png",
      "Not read, not pictures: client_1/7/notes.txt",
    ]);
  });

  it("uses a labels.csv found in the folder, and says when there are no label folders", () => {
    const csv = picked("mine/labels.csv", "filename,label\n");
    const [withCsv] = readTaskFolders([picked("mine/a.png"), csv, picked("mine/images/b.png")], labels);
    expect(withCsv?.labelsCsv).toBe(csv);
    expect(withCsv?.images.map(relativePath)).toEqual(["mine/a.png", "mine/images/b.png"]);
    expect(withCsv?.problems).toEqual([]);

    const [flat] = readTaskFolders([picked("zeros/a.png")], labels);
    expect(flat?.items).toEqual([]);
    expect(flat?.problems).toEqual([
      "zeros: no label folders; put the images in one sub-folder per label ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')",
    ]);
  });

  it("matches folder names like Python: exactly or in another case, never by index", () => {
    const [folder] = readTaskFolders([picked("d/T-Shirt/a.png"), picked("d/3/b.png")], training("fashion_mnist").labels);
    expect(folder?.items.map((i) => i.label)).toEqual(["t-shirt"]);
    expect(folder?.problems[0]).toMatch(/^d\/3: folder '3' is not a label of this task/);
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
    expect(result.resized).toBe(0);
  });

  it("names a file by its path in the folder it came from", async () => {
    const result = await loadLabelledImages([{ file: picked("client_1/0/00001.png", "junk"), label: "0" }], training("mnist"));
    expect(result.problems[0]).toMatch(/^client_1\/0\/00001\.png: cannot read image/);
  });

  it("needs an image task", () => {
    expect(imageShape(training("cifar10"))).toEqual([32, 32, 3]);
    expect(() => imageShape(training("titanic"))).toThrow("images can only be loaded for an image task");
  });
});
