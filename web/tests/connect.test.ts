/**
 * Connecting files, the parts that need no browser: CSV files become removable batches with
 * their problems, empty and non-text files get plain messages, labels without samples are named.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  addCsvFiles,
  datasetOf,
  describePick,
  fileCount,
  missingLabels,
  newConnection,
  problemsOf,
  removeBatch,
  sampleCount,
} from "../src/app/composables/connect";
import type { Task } from "../src/core/task";

const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
const titanic = catalog.find((c) => c.task.id === "titanic")?.task as Task;
const HEADER = "Survived,Pclass,Sex,Age,SibSp,Parch,Fare";

describe("addCsvFiles", () => {
  it("makes one removable batch per file, with plain messages for empty and non-text files", async () => {
    const c = newConnection();
    const good = new File([`${HEADER}\n0,3,male,22,1,0,7.25\n1,1,female,38,1,0,71.3\n`], "good.csv");
    const empty = new File([`${HEADER}\n`], "file.csv");
    const png = new File([Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d])], "photo.png");
    await addCsvFiles(c, titanic, [good, empty, png]);

    expect(c.batches.map((b) => b.title)).toEqual(["good.csv", "file.csv", "photo.png"]);
    expect(sampleCount(c)).toBe(2);
    expect(fileCount(c)).toBe(3);
    expect(problemsOf(c)).toEqual(["file.csv: no data rows", "photo.png: not a CSV text file"]);
    expect(datasetOf(c, titanic)?.sources).toEqual(["good.csv:2", "good.csv:3"]);
    expect(missingLabels(c, titanic.training.labels)).toEqual([]);

    removeBatch(c, c.batches[2]?.id ?? -1);
    expect(problemsOf(c)).toEqual(["file.csv: no data rows"]);
    removeBatch(c, c.batches[0]?.id ?? -1);
    expect(sampleCount(c)).toBe(0);
    expect(datasetOf(c, titanic)).toBeNull();
    expect(c.batches.map((b) => b.title)).toEqual(["file.csv"]);
  });

  it("names the labels that have no sample yet, once something is connected", async () => {
    const c = newConnection();
    expect(missingLabels(c, titanic.training.labels)).toEqual([]);
    await addCsvFiles(c, titanic, [new File([`${HEADER}\n1,1,female,38,1,0,71.3\n`], "one.csv")]);
    expect(missingLabels(c, titanic.training.labels)).toEqual(["died"]);
  });
});

describe("describePick", () => {
  const inFolder = (path: string): File =>
    Object.defineProperty(new File(["x"], path.split("/").at(-1) as string), "webkitRelativePath", { value: path });

  it("says what was picked", () => {
    expect(describePick([inFolder("client_1/0/a.png"), inFolder("client_1/1/a.png")])).toBe("folder client_1");
    expect(describePick([new File(["x"], "a.png")])).toBe("a.png");
    expect(describePick([new File(["x"], "a.png"), inFolder("f/b.png")])).toBe("2 files");
  });
});
