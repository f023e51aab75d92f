// Connecting local files to a task: each batch of picked files becomes one `Part` (decoded in
// this browser, never uploaded); bad files or rows become problems and the good ones still count.
import { markRaw } from "vue";
import { type Dataset, makeDataset, sampleSize } from "../../core/data/dataset";
import {
  loadImagesUnlabelled,
  loadLabelledImages,
  pairLabelsWithFiles,
  parseLabelsCsv,
} from "../../core/data/images";
import { loadCsv } from "../../core/data/tabular";
import type { Task } from "../../core/task";

/** Samples decoded from one pick of files. */
export interface Part {
  x: Float32Array;
  y: Int32Array | Float32Array;
  n: number;
  sources: string[];
}

/** Files connected for one purpose (training, testing or predicting). */
export interface Connection {
  parts: Part[];
  problems: string[];
  /** Names of the files read so far (good or bad). */
  fileNames: string[];
  busy: boolean;
}

export function newConnection(): Connection {
  return { parts: [], problems: [], fileNames: [], busy: false };
}

export function clearConnection(c: Connection): void {
  c.parts = [];
  c.problems = [];
  c.fileNames = [];
}

/** Shape of one sample of the task: [H, W, C] or [columns]. */
export function sampleShape(task: Task): number[] {
  const t = task.training;
  return t.data_type === "image"
    ? [t.image_height ?? 1, t.image_width ?? 1, t.channels]
    : [t.input_columns.length];
}

/** Number of samples connected. */
export function sampleCount(c: Connection): number {
  return c.parts.reduce((a, p) => a + p.n, 0);
}

/** All connected samples as one dataset (null when there are none). */
export function datasetOf(c: Connection, task: Task): Dataset | null {
  const n = sampleCount(c);
  if (!n) return null;
  const shape = sampleShape(task);
  const size = sampleSize(shape);
  const x = new Float32Array(n * size);
  const intLabels = c.parts.every((p) => p.y instanceof Int32Array);
  const y = intLabels ? new Int32Array(n) : new Float32Array(n);
  const sources: string[] = [];
  let at = 0;
  for (const p of c.parts) {
    x.set(p.x, at * size);
    y.set(p.y, at);
    sources.push(...p.sources);
    at += p.n;
  }
  return makeDataset(x, y, shape, sources);
}

/** Samples per label (index = label id). */
export function countsPerLabel(c: Connection, labels: readonly string[]): number[] {
  const counts = labels.map(() => 0);
  for (const p of c.parts) {
    for (const v of p.y) if (v >= 0 && v < counts.length) counts[v] = (counts[v] ?? 0) + 1;
  }
  return counts;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function add(c: Connection, part: Part | null, problems: string[], files: readonly File[]): void {
  if (part && part.n > 0) c.parts = [...c.parts, markRaw(part)];
  c.problems = [...c.problems, ...problems];
  c.fileNames = [...c.fileNames, ...files.map((f) => f.name)];
}

async function withBusy(c: Connection, work: () => Promise<void>): Promise<void> {
  c.busy = true;
  try {
    await work();
  } finally {
    c.busy = false;
  }
}

/** CSV files of a tabular task; `labelled` false reads the inputs only (for predictions). */
export async function addCsvFiles(
  c: Connection,
  task: Task,
  files: readonly File[],
  labelled = true,
): Promise<void> {
  await withBusy(c, async () => {
    for (const file of files) {
      try {
        const d = loadCsv(await file.text(), task.training, {
          file: file.name,
          skipBad: true,
          labelled,
        });
        add(
          c,
          { x: d.x, y: labelled ? d.y : new Int32Array(d.n), n: d.n, sources: d.rows.map((r) => `${file.name}:${r}`) },
          d.problems,
          [file],
        );
      } catch (e) {
        add(c, null, [message(e)], [file]);
      }
    }
  });
}

/** Image files that all show `label` (one picker per label). */
export async function addImagesForLabel(
  c: Connection,
  task: Task,
  label: string,
  files: readonly File[],
): Promise<void> {
  await withBusy(c, async () => {
    const d = await loadLabelledImages(
      files.map((file) => ({ file, label })),
      task.training,
    );
    add(c, { x: d.x, y: d.y, n: d.n, sources: [...(d.sources ?? [])] }, d.problems, files);
  });
}

/** A labels CSV (filename,label) and the image files it names. */
export async function addImagesWithCsv(
  c: Connection,
  task: Task,
  csv: File,
  images: readonly File[],
): Promise<void> {
  await withBusy(c, async () => {
    let rows;
    try {
      rows = parseLabelsCsv(await csv.text(), csv.name);
    } catch (e) {
      add(c, null, [message(e)], [csv]);
      return;
    }
    const { items, problems } = pairLabelsWithFiles(rows, images, csv.name);
    const used = new Set(items.map((i) => i.file));
    const unlisted = images
      .filter((f) => !used.has(f))
      .map((f) => `${f.name}: not listed in ${csv.name}, so its label is unknown`);
    const d = await loadLabelledImages(items, task.training);
    add(
      c,
      { x: d.x, y: d.y, n: d.n, sources: [...(d.sources ?? [])] },
      [...problems, ...unlisted, ...d.problems],
      [csv, ...images],
    );
  });
}

/** Images without labels, to predict. */
export async function addUnlabelledImages(
  c: Connection,
  task: Task,
  files: readonly File[],
): Promise<void> {
  await withBusy(c, async () => {
    const d = await loadImagesUnlabelled(files, task.training);
    add(c, { x: d.x, y: d.y, n: d.n, sources: [...(d.sources ?? [])] }, d.problems, files);
  });
}
