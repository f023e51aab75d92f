// Connecting local files to a task: each pick of files or folder becomes one `Batch` (decoded in
// this browser, never uploaded) that can be removed on its own; bad files or rows become problems
// naming them and the good ones still count.
import { markRaw } from "vue";
import { type Dataset, makeDataset, sampleSize } from "../../core/data/dataset";
import { ignoredNote, inFolder, keepBySuffix, plural, relativePath } from "../../core/data/files";
import {
  IMAGE_SUFFIXES,
  type LoadedImages,
  loadImagesUnlabelled,
  loadLabelledImages,
  pairLabelsWithFiles,
  parseLabelsCsv,
  readTaskFolders,
} from "../../core/data/images";
import { csvText, loadCsv } from "../../core/data/tabular";
import type { Task } from "../../core/task";

/** Samples decoded from one pick of files. */
export interface Part {
  x: Float32Array;
  y: Int32Array | Float32Array;
  n: number;
  sources: string[];
}

/** Text files of a text task, read and tokenised (`textData.ts`): one document per file. */
export interface TextPart {
  documents: { name: string; ids: Int32Array }[];
  /** Token ids in all the documents. */
  tokens: number;
  /** Bytes of the files read. */
  bytes: number;
  /** The tokenizer's end-of-text id: it ends each document's part in the windows. */
  eotId: number;
}

/** What one pick of files (or one folder) gave: samples, problems and neutral notes. */
export interface Batch {
  /** Unique within its connection. */
  id: number;
  /** What was picked, for people: "folder client_1", "data.csv", "12 files for 7". */
  title: string;
  part: Part | null;
  /** A text task's documents (then `part` is null). */
  text?: TextPart | null;
  problems: string[];
  notes: string[];
  /** Paths of the files read (good or bad). */
  files: string[];
  /** How many of the pictures were resized to the task's size. */
  resized: number;
}

/** Files connected for one purpose (training, testing or predicting). */
export interface Connection {
  batches: Batch[];
  /** Reads in progress (picks may overlap); the files are ready when it is 0. */
  reading: number;
}

export function newConnection(): Connection {
  return { batches: [], reading: 0 };
}

export function clearConnection(c: Connection): void {
  c.batches = [];
}

/** Forget one batch (its samples, problems and notes). */
export function removeBatch(c: Connection, id: number): void {
  c.batches = c.batches.filter((b) => b.id !== id);
}

/** Shape of one sample of the task: [H, W, C] or [columns]. */
export function sampleShape(task: Task): number[] {
  const t = task.training;
  return t.data_type === "image"
    ? [t.image_height ?? 1, t.image_width ?? 1, t.channels]
    : [t.input_columns.length];
}

/** Number of samples connected (text files: documents). */
export function sampleCount(c: Connection): number {
  return c.batches.reduce((a, b) => a + (b.part?.n ?? b.text?.documents.length ?? 0), 0);
}

/** Every problem of every batch, in the order they were met. */
export function problemsOf(c: Connection): string[] {
  return c.batches.flatMap((b) => b.problems);
}

/** Every note of every batch. */
export function notesOf(c: Connection): string[] {
  return c.batches.flatMap((b) => b.notes);
}

/** Number of files read. */
export function fileCount(c: Connection): number {
  return c.batches.reduce((a, b) => a + b.files.length, 0);
}

/** Number of pictures resized to the task's size. */
export function resizedCount(c: Connection): number {
  return c.batches.reduce((a, b) => a + b.resized, 0);
}

/** All connected samples as one dataset (null when there are none). */
export function datasetOf(c: Connection, task: Task): Dataset | null {
  const n = sampleCount(c);
  if (!n) return null;
  const shape = sampleShape(task);
  const size = sampleSize(shape);
  const parts = c.batches.flatMap((b) => (b.part ? [b.part] : []));
  const x = new Float32Array(n * size);
  const intLabels = parts.every((p) => p.y instanceof Int32Array);
  const y = intLabels ? new Int32Array(n) : new Float32Array(n);
  const sources: string[] = [];
  let at = 0;
  for (const p of parts) {
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
  for (const b of c.batches) {
    for (const v of b.part?.y ?? []) if (v >= 0 && v < counts.length) counts[v] = (counts[v] ?? 0) + 1;
  }
  return counts;
}

/** The labels without a single sample yet (none when nothing is connected). */
export function missingLabels(c: Connection, labels: readonly string[]): string[] {
  if (!sampleCount(c)) return [];
  const counts = countsPerLabel(c, labels);
  return labels.filter((_, i) => !counts[i]);
}

/** "folder client_1", "00001.png", "12 files": what a pick of files was, for people. */
export function describePick(files: readonly File[]): string {
  const roots = new Set(files.map((f) => (inFolder(f) ? relativePath(f).split("/")[0] : null)));
  if (roots.size === 1 && !roots.has(null)) return `folder ${[...roots][0] as string}`;
  if (files.length === 1) return relativePath(files[0] as File);
  return plural(files.length, "file");
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

let nextId = 1;

/** Add what one pick of files gave to `c`, as one batch. */
export function add(
  c: Connection,
  title: string,
  files: readonly File[],
  found: { part?: Part | null; text?: TextPart | null; problems?: string[]; notes?: (string | null)[]; resized?: number },
): void {
  const part = found.part && found.part.n > 0 ? markRaw(found.part) : null;
  const text = found.text && found.text.documents.length > 0 ? markRaw(found.text) : null;
  const batch: Batch = {
    id: nextId++,
    title,
    part,
    text,
    problems: found.problems ?? [],
    notes: (found.notes ?? []).filter((n): n is string => n !== null),
    files: files.map(relativePath),
    resized: found.resized ?? 0,
  };
  c.batches = [...c.batches, batch];
}

function imagePart(d: LoadedImages): Part {
  return { x: d.x, y: d.y, n: d.n, sources: [...(d.sources ?? [])] };
}

/** Run `work` while `c` shows that files are being read. */
export async function withBusy(c: Connection, work: () => Promise<void>): Promise<void> {
  c.reading += 1;
  try {
    await work();
  } finally {
    c.reading -= 1;
  }
}

/** CSV files of a tabular task, one batch each; `labelled` false reads the inputs only. */
export async function addCsvFiles(
  c: Connection,
  task: Task,
  files: readonly File[],
  labelled = true,
): Promise<void> {
  const { kept, ignored } = keepBySuffix(files, [".csv"]);
  await withBusy(c, async () => {
    const skipped = ignoredNote(ignored, "not .csv files");
    if (skipped && !kept.length) add(c, describePick(files), [], { notes: [skipped] });
    for (const [k, file] of kept.entries()) {
      const name = relativePath(file);
      const notes = k === 0 ? [skipped] : [];
      try {
        const d = loadCsv(csvText(new Uint8Array(await file.arrayBuffer()), name), task.training, {
          file: name,
          labelled,
        });
        const y = labelled ? d.y : new Int32Array(d.n);
        const sources = d.rows.map((r) => `${name}:${r}`);
        add(c, name, [file], { part: { x: d.x, y, n: d.n, sources }, problems: d.problems, notes });
      } catch (e) {
        add(c, name, [file], { problems: [message(e)], notes });
      }
    }
  });
}

/** Image files (or folders of them) that all show `label`: one picker per label. */
export async function addImagesForLabel(
  c: Connection,
  task: Task,
  label: string,
  files: readonly File[],
): Promise<void> {
  const { kept, ignored } = keepBySuffix(files, IMAGE_SUFFIXES);
  await withBusy(c, async () => {
    const d = await loadLabelledImages(
      kept.map((file) => ({ file, label, name: relativePath(file) })),
      task.training,
    );
    add(c, `${describePick(files)} for ${label}`, kept, {
      part: imagePart(d),
      problems: d.problems,
      notes: [ignoredNote(ignored, "not pictures")],
      resized: d.resized,
    });
  });
}

/** Label the `images` with a labels CSV (filename,label); pictures it does not list are problems. */
async function labelWithCsv(
  task: Task,
  csv: File,
  images: readonly File[],
): Promise<{ part: Part | null; problems: string[]; resized: number }> {
  const csvName = relativePath(csv);
  let rows;
  try {
    rows = parseLabelsCsv(csvText(new Uint8Array(await csv.arrayBuffer()), csvName), csvName);
  } catch (e) {
    return { part: null, problems: [message(e)], resized: 0 };
  }
  const { items, problems } = pairLabelsWithFiles(rows, images, csvName);
  const used = new Set(items.map((i) => i.file));
  const unlisted = images
    .filter((f) => !used.has(f))
    .map((f) => `${relativePath(f)}: not listed in ${csvName}, so its label is unknown`);
  const d = await loadLabelledImages(items, task.training);
  return { part: imagePart(d), problems: [...problems, ...unlisted, ...d.problems], resized: d.resized };
}

/** A labels CSV (filename,label) and the image files (or folders) it names. */
export async function addImagesWithCsv(
  c: Connection,
  task: Task,
  csv: File,
  images: readonly File[],
): Promise<void> {
  const { kept, ignored } = keepBySuffix(images, IMAGE_SUFFIXES);
  await withBusy(c, async () => {
    const found = await labelWithCsv(task, csv, kept);
    const notes = [ignoredNote(ignored, "not pictures")];
    add(c, `${relativePath(csv)} with ${describePick(images)}`, [csv, ...kept], { ...found, notes });
  });
}

/**
 * Folders picked or dropped for the whole task, one batch each: sub-folders named after labels
 * (the layout `disco data samples` writes), or pictures with a `labels.csv` in the folder.
 */
export async function addTaskFolders(c: Connection, task: Task, files: readonly File[]): Promise<void> {
  await withBusy(c, async () => {
    for (const folder of readTaskFolders(files, task.training.labels)) {
      const title = folder.name ? `folder ${folder.name}` : describePick(files.filter((f) => !inFolder(f)));
      if (folder.labelsCsv !== null) {
        const found = await labelWithCsv(task, folder.labelsCsv, folder.images);
        const notes = [`Labels read from ${relativePath(folder.labelsCsv)}`, ...folder.notes];
        add(c, title, [folder.labelsCsv, ...folder.images], {
          ...found,
          problems: [...folder.problems, ...found.problems],
          notes,
        });
        continue;
      }
      const d = await loadLabelledImages(folder.items, task.training);
      add(c, title, folder.items.map((i) => i.file as File), {
        part: imagePart(d),
        problems: [...folder.problems, ...d.problems],
        notes: folder.notes,
        resized: d.resized,
      });
    }
  });
}

/** Images without labels (or folders of them), to predict. */
export async function addUnlabelledImages(c: Connection, task: Task, files: readonly File[]): Promise<void> {
  const { kept, ignored } = keepBySuffix(files, IMAGE_SUFFIXES);
  await withBusy(c, async () => {
    const d = await loadImagesUnlabelled(kept, task.training);
    add(c, describePick(files), kept, {
      part: imagePart(d),
      problems: d.problems,
      notes: [ignoredNote(ignored, "not pictures")],
      resized: d.resized,
    });
  });
}
