/**
 * Image data in the browser: files decoded, resized to the task's size and turned into
 * channels-last float32 samples in [0, 1], as Python's `disco.data.images` does with Pillow.
 *
 * Each image becomes `(image_height, image_width, channels)` values, row after row, never
 * transposed. Grey images use Pillow's 'L' luminance (0.299 R + 0.587 G + 0.114 B, rounded as
 * Pillow rounds), colour images keep R, G, B; alpha is dropped as Pillow drops it. Resizing uses
 * the browser's smooth ("high" quality) scaling, so values can differ slightly from Pillow's
 * bilinear filter; EXIF orientation is applied, as Pillow's `exif_transpose` does.
 *
 * Resizing is refused where it would ruin the picture (`sizeProblem`: the rule and the words of
 * Python's `size_problem`): a side longer than `MAX_SIDE`, a side shorter than half the task's,
 * or proportions twice as wide or as tall as the task's, or more. A file that cannot be read, an
 * unknown label or a refused size becomes a problem message naming the file (its path in the
 * folder it came from); the good files still count. Decoding needs a browser
 * (`createImageBitmap`, a 2-D canvas); the pure helpers below also run in Node.
 */
import type { TrainingInfo } from "../task";
import { DataError, type Dataset } from "./dataset";
import { ignoredNote, isHiddenPath, relativePath, suffixOf } from "./files";
import { HEADER_BYTES, headerSize } from "./imagesize";
import { columnIndex, parseCsv, pyRepr } from "./tabular";

/** File name endings read as images (the Python loader's list). */
export const IMAGE_SUFFIXES = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"];

/** Longest side, in pixels, of an image that is read at all (Python's `MAX_SIDE`). */
export const MAX_SIDE = 8192;

/** One image file and the label text the user gave it (a label name or its index). */
export interface LabelledFile {
  file: File | Blob;
  label: string;
  /** Name used in messages and `sources` (default: the File's `relativePath`). */
  name?: string;
}

/** Decoded images with their class ids and, per skipped file, one problem message. */
export interface LoadedImages extends Dataset {
  readonly problems: string[];
  /** How many of the loaded images had another size and were resized to the task's. */
  readonly resized: number;
}

/** Options of the loaders. */
export interface ImageOptions {
  /** How many files are decoded at once (default 4). */
  concurrency?: number;
}

/** One row of a labels CSV (`filename,label`). */
export interface LabelsRow {
  readonly row: number;
  readonly filename: string;
  readonly label: string;
}

/** `(height, width, channels)` of the task's images; DataError when it is not an image task. */
export function imageShape(training: TrainingInfo): [number, number, 1 | 3] {
  const { image_height: h, image_width: w } = training;
  if (training.data_type !== "image" || !h || !w) {
    throw new DataError("images can only be loaded for an image task with a size");
  }
  return [h, w, training.channels];
}

/**
 * Why an image of `width` x `height` pixels cannot be resized to the task's size, or null.
 * Refused: a side longer than `MAX_SIDE`; a side shorter than half the task's; proportions
 * (width / height) twice those of the task or more, either way (a 100x50 picture for a 28x28
 * task). The same rule and words as Python's `disco.data.images.size_problem`.
 */
export function sizeProblem(width: number, height: number, training: TrainingInfo): string | null {
  const [taskHeight, taskWidth] = imageShape(training);
  const distorted = "to resize without distorting it (crop it closer to the task's shape)";
  let reason: string;
  if (width > MAX_SIDE || height > MAX_SIDE) reason = `it is too large (at most ${MAX_SIDE} pixels per side)`;
  else if (2 * width < taskWidth || 2 * height < taskHeight) {
    reason = `it is too small to enlarge (at least ${Math.ceil(taskWidth / 2)}×${Math.ceil(taskHeight / 2)} pixels)`;
  } else if (width * taskHeight >= 2 * height * taskWidth) reason = `it is too wide ${distorted}`;
  else if (2 * width * taskHeight <= height * taskWidth) reason = `it is too tall ${distorted}`;
  else return null;
  return `image is ${width}×${height} pixels but the task expects ${taskWidth}×${taskHeight}; ${reason}`;
}

/**
 * Index of `name` among `labels`: exact, else a unique case-insensitive match, else (unless
 * `byIndex` is false, as for folder names) an index.
 */
export function matchLabel(name: string, labels: readonly string[], byIndex = true): number | null {
  const text = name.trim();
  const exact = labels.indexOf(text);
  if (exact >= 0) return exact;
  const folded = labels.flatMap((l, i) => (l.toLowerCase() === text.toLowerCase() ? [i] : []));
  if (folded.length === 1) return folded[0] as number;
  if (byIndex && /^\d+$/.test(text) && Number(text) < labels.length) return Number(text);
  return null;
}

function allowed(labels: readonly string[]): string {
  return labels.map(pyRepr).join(", ");
}

/** Why a label is not accepted, naming the allowed ones. */
export function unknownLabel(where: string, label: string, labels: readonly string[]): string {
  return `${where}: unknown label ${pyRepr(label)}; the labels are ${allowed(labels)} (or their index)`;
}

/** Parse a labels CSV (columns `filename` and `label`, any case, `,` or `;`). */
export function parseLabelsCsv(text: string, file = "labels.csv"): LabelsRow[] {
  const table = parseCsv(text, file);
  const lower = table.header.map((h) => h.toLowerCase());
  if (!lower.includes("filename") || !lower.includes("label")) {
    throw new DataError(
      `${file}: needs columns 'filename' and 'label'; the file has ${table.header.map(pyRepr).join(", ")}`,
    );
  }
  if (!table.rows.length) throw new DataError(`${file}: no data rows`);
  const bad = table.rows.find((r) => r.problem !== undefined);
  if (bad?.problem !== undefined) throw new DataError(bad.problem);
  const [namePos, labelPos] = columnIndex({ ...table, header: lower }, ["filename", "label"]) as [number, number];
  return table.rows.map(({ row, cells }) => ({
    row,
    filename: (cells[namePos] ?? "").trim(),
    label: (cells[labelPos] ?? "").trim(),
  }));
}

/**
 * Pair the rows of a labels CSV with the files the user picked, matched by their path in the
 * folder they came from (`0/00001.png` matches `client_1/0/00001.png`) or by name. A row whose
 * file is missing, or whose name fits several picked files, becomes a problem.
 */
export function pairLabelsWithFiles(
  rows: readonly LabelsRow[],
  files: readonly File[],
  csvName = "labels.csv",
): { items: LabelledFile[]; problems: string[] } {
  const byPath = new Map<string, File[]>(); // every trailing part of each relative path
  for (const f of files) {
    const parts = relativePath(f).split("/");
    for (let k = parts.length - 1; k >= 0; k--) {
      const key = parts.slice(k).join("/");
      pushTo(byPath, key, f);
    }
  }
  const items: LabelledFile[] = [];
  const problems: string[] = [];
  const firstRow = new Map<File, number>(); // a file listed twice counts once, from its first row
  for (const { row, filename, label } of rows) {
    const where = `${csvName}: row ${row}: image ${pyRepr(filename)}`;
    const found = byPath.get(filename.replace(/\\/g, "/").replace(/^\.\//, "")) ?? [];
    if (found.length === 1) {
      const file = found[0] as File;
      const earlier = firstRow.get(file);
      if (earlier !== undefined) problems.push(`${where} is already listed in row ${earlier}`);
      else {
        firstRow.set(file, row);
        items.push({ file, label, name: relativePath(file) });
      }
    } else if (!found.length) problems.push(`${where} not found`);
    else {
      const paths = found.map(relativePath).sort();
      const shown = paths.slice(0, 3).join(", ") + (paths.length > 3 ? ", …" : "");
      problems.push(`${where} matches ${found.length} picked files (${shown}); write its folder too`);
    }
  }
  return { items, problems };
}

/** A folder picked or dropped for the whole task, sorted out (see `readTaskFolders`). */
export interface TaskFolder {
  /** The folder's name: the first part of its files' paths ("" for files not in a folder). */
  readonly name: string;
  /** Its pictures in sub-folders named after labels, with that label (unless `labelsCsv`). */
  readonly items: LabelledFile[];
  /** A `labels.csv` directly in the folder: the labels come from it, for `images`. */
  readonly labelsCsv: File | null;
  /** Every picture in the folder, at any depth. */
  readonly images: File[];
  readonly problems: string[];
  /** Neutral notes: files that were not read and why. */
  readonly notes: string[];
}

/** Append `value` to the list under `key` (in place: linear in the number of files). */
function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/**
 * Sort the files of folders picked for the whole task (`client_1/0/00001.png`, the layout
 * `disco data samples` writes), one `TaskFolder` per folder. A sub-folder named after a label
 * (exactly, or in another case) gives that label to every picture in it, at any depth; another
 * sub-folder is a problem naming it and the labels. Files directly in the folder are not read
 * (a note says so), except a `labels.csv`, which then labels the folder's pictures instead.
 * Files that are not pictures are noted; hidden files are left out. Files come out sorted by path.
 */
export function readTaskFolders(files: readonly File[], labels: readonly string[]): TaskFolder[] {
  const byRoot = new Map<string, File[]>();
  for (const file of files) {
    const path = relativePath(file);
    if (isHiddenPath(path)) continue;
    const root = path.includes("/") ? path.slice(0, path.indexOf("/")) : "";
    pushTo(byRoot, root, file);
  }
  const byPath = (a: File, b: File): number => {
    const [p, q] = [relativePath(a), relativePath(b)];
    return p < q ? -1 : p > q ? 1 : 0;
  };
  return [...byRoot].map(([root, unsorted]) => {
    const members = [...unsorted].sort(byPath); // pickers give folders in no fixed order
    let labelsCsv: File | null = null;
    const images: File[] = [];
    const topPictures: string[] = [];
    const topOthers: string[] = [];
    const notPictures: string[] = [];
    const bySub = new Map<string, File[]>();
    for (const file of members) {
      const path = relativePath(file);
      const parts = path.split("/");
      const atTop = parts.length <= 2;
      const picture = IMAGE_SUFFIXES.includes(suffixOf(path));
      if (picture) images.push(file);
      if (atTop && root && parts[1]?.toLowerCase() === "labels.csv" && labelsCsv === null) labelsCsv = file;
      else if (atTop) (picture ? topPictures : topOthers).push(path);
      else if (!picture) notPictures.push(path);
      else pushTo(bySub, parts[1] as string, file);
    }
    const problems: string[] = [];
    const notes: string[] = [];
    const items: LabelledFile[] = [];
    if (labelsCsv === null) {
      for (const [sub, inside] of bySub) {
        const label = matchLabel(sub, labels, false);
        if (label === null) {
          problems.push(
            `${root}/${sub}: folder ${pyRepr(sub)} is not a label of this task; the labels are ${allowed(labels)}`,
          );
        } else items.push(...inside.map((file) => ({ file, label: labels[label] as string, name: relativePath(file) })));
      }
      if (root && !bySub.size) {
        problems.push(`${root}: no label folders; put the images in one sub-folder per label (${allowed(labels)})`);
      } else {
        const where = root ? `directly in ${root} instead of a label sub-folder` : "not in a folder";
        const top = ignoredNote([...topPictures, ...topOthers].sort(), where);
        if (top) notes.push(top);
      }
    } else {
      const top = ignoredNote(topOthers, `directly in ${root}`);
      if (top) notes.push(top);
    }
    const others = ignoredNote(notPictures, "not pictures");
    if (others) notes.push(others);
    return { name: root, items, labelsCsv, images, problems, notes };
  });
}

/**
 * RGBA pixels (`width * height * 4` bytes, row after row) as float32 `(height, width, channels)`
 * in [0, 1]: grey with Pillow's integer luminance, or R, G, B.
 */
export function pixelsToSample(rgba: ArrayLike<number>, width: number, height: number, channels: 1 | 3): Float32Array {
  const count = width * height;
  if (rgba.length !== count * 4) throw new DataError(`expected ${count * 4} RGBA bytes, got ${rgba.length}`);
  const out = new Float32Array(count * channels);
  for (let p = 0; p < count; p++) {
    const r = rgba[4 * p] as number;
    const g = rgba[4 * p + 1] as number;
    const b = rgba[4 * p + 2] as number;
    if (channels === 1) {
      out[p] = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16) / 255;
    } else {
      out[3 * p] = r / 255;
      out[3 * p + 1] = g / 255;
      out[3 * p + 2] = b / 255;
    }
  }
  return out;
}

function fileName(item: { file: File | Blob; name?: string }): string {
  return item.name ?? (item.file instanceof File ? relativePath(item.file) : "image");
}

/** A size the loader refuses to resize (its message, without the file name). */
class RefusedSize extends DataError {}

type Context2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;
let sharedCanvas: { width: number; height: number; ctx: Context2D } | null = null;

/** One reusable 2-D canvas of the given size (creating a canvas per image is slow). */
function canvasOf(width: number, height: number): Context2D {
  if (sharedCanvas?.width === width && sharedCanvas.height === height) return sharedCanvas.ctx;
  const canvas =
    typeof OffscreenCanvas !== "undefined"
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement("canvas"), { width, height });
  const ctx = canvas.getContext("2d", { willReadFrequently: true }) as Context2D | null;
  if (ctx === null) throw new DataError("no 2-D canvas to decode images on");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  sharedCanvas = { width, height, ctx };
  return ctx;
}

/**
 * Decode `blob` and draw it at the task's size with smooth scaling: RGBA bytes, and whether it
 * had another size. A size `sizeProblem` refuses throws `RefusedSize`.
 */
async function decodeRgba(blob: Blob, training: TrainingInfo): Promise<{ rgba: Uint8ClampedArray; resized: boolean }> {
  const [height, width] = imageShape(training);
  if (typeof createImageBitmap !== "function") {
    throw new DataError("this browser cannot decode images (createImageBitmap is missing)");
  }
  // refuse huge pictures from their header, before decoding takes gigabytes
  const head = headerSize(new Uint8Array(await blob.slice(0, HEADER_BYTES).arrayBuffer()));
  if (head !== null && (head.width > MAX_SIDE || head.height > MAX_SIDE)) {
    throw new RefusedSize(sizeProblem(head.width, head.height, training) as string);
  }
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    premultiplyAlpha: "none",
    colorSpaceConversion: "none",
  });
  try {
    const problem = sizeProblem(bitmap.width, bitmap.height, training);
    if (problem !== null) throw new RefusedSize(problem);
    // draw and read back with no await in between: concurrent decodes can share the canvas
    const ctx = canvasOf(width, height);
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(bitmap, 0, 0, width, height);
    const resized = bitmap.width !== width || bitmap.height !== height;
    return { rgba: ctx.getImageData(0, 0, width, height).data, resized };
  } finally {
    bitmap.close();
  }
}

/** One image file as float32 `(height, width, channels)` in [0, 1], and whether it was resized. */
async function decodeSample(
  file: File | Blob,
  training: TrainingInfo,
  name: string,
): Promise<{ sample: Float32Array; resized: boolean }> {
  const [height, width, channels] = imageShape(training);
  try {
    const { rgba, resized } = await decodeRgba(file, training);
    return { sample: pixelsToSample(rgba, width, height, channels), resized };
  } catch (error) {
    if (error instanceof RefusedSize) throw new DataError(`${name}: ${error.message}`);
    const reason = error instanceof Error ? error.message : String(error);
    throw new DataError(`${name}: cannot read image (${reason})`);
  }
}

/**
 * One image file as float32 `(height, width, channels)` in [0, 1], resized to the task's size;
 * a DataError naming the file when it cannot be read or its size is refused (`sizeProblem`).
 */
export async function loadImage(file: File | Blob, training: TrainingInfo, name?: string): Promise<Float32Array> {
  imageShape(training);
  return (await decodeSample(file, training, fileName(name === undefined ? { file } : { file, name }))).sample;
}

interface Decoded {
  samples: (Float32Array | null)[];
  problems: string[];
  resized: boolean[];
}

async function decodeAll(
  items: readonly { file: File | Blob; name: string }[],
  training: TrainingInfo,
  options: ImageOptions,
): Promise<Decoded> {
  const samples: (Float32Array | null)[] = new Array<Float32Array | null>(items.length).fill(null);
  const problems: (string | null)[] = new Array<string | null>(items.length).fill(null);
  const resized: boolean[] = new Array<boolean>(items.length).fill(false);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const item = items[i] as (typeof items)[number];
      try {
        const decoded = await decodeSample(item.file, training, item.name);
        samples[i] = decoded.sample;
        resized[i] = decoded.resized;
      } catch (error) {
        if (!(error instanceof DataError)) throw error;
        problems[i] = error.message;
      }
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 4, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { samples, problems: problems.filter((p): p is string => p !== null), resized };
}

/** The decoded items that could be read, in order, with their samples. */
function goodOnes<T>(items: readonly T[], decoded: Decoded): (T & { sample: Float32Array; resized: boolean })[] {
  return items.flatMap((item, i) => {
    const sample = decoded.samples[i];
    return sample ? [{ ...item, sample, resized: decoded.resized[i] === true }] : [];
  });
}

function stack(samples: readonly Float32Array[], size: number): Float32Array {
  const x = new Float32Array(samples.length * size);
  samples.forEach((s, i) => x.set(s, i * size));
  return x;
}

/**
 * Decode labelled image files for the task (labels: a name, a unique case-insensitive name, or
 * an index). Unreadable files, unknown labels and refused sizes become `problems`; the others
 * are returned in the given order.
 */
export async function loadLabelledImages(
  items: readonly LabelledFile[],
  training: TrainingInfo,
  options: ImageOptions = {},
): Promise<LoadedImages> {
  const shape = imageShape(training);
  const problems: string[] = [];
  const known: { file: File | Blob; name: string; label: number }[] = [];
  for (const item of items) {
    const label = matchLabel(item.label, training.labels);
    if (label === null) problems.push(unknownLabel(fileName(item), item.label, training.labels));
    else known.push({ file: item.file, name: fileName(item), label });
  }
  const decoded = await decodeAll(known, training, options);
  const good = goodOnes(known, decoded);
  return {
    x: stack(good.map((g) => g.sample), shape[0] * shape[1] * shape[2]),
    y: Int32Array.from(good, (g) => g.label),
    n: good.length,
    sampleShape: shape,
    sources: good.map((g) => g.name),
    problems: [...problems, ...decoded.problems],
    resized: good.filter((g) => g.resized).length,
  };
}

/** Decode images for prediction, in order; unreadable ones become `problems` (y is empty). */
export async function loadImagesUnlabelled(
  files: readonly (File | Blob)[],
  training: TrainingInfo,
  options: ImageOptions = {},
): Promise<LoadedImages> {
  const shape = imageShape(training);
  const items = files.map((file) => ({ file, name: fileName({ file }) }));
  const decoded = await decodeAll(items, training, options);
  const good = goodOnes(items, decoded);
  return {
    x: stack(good.map((g) => g.sample), shape[0] * shape[1] * shape[2]),
    y: new Int32Array(good.length),
    n: good.length,
    sampleShape: shape,
    sources: good.map((g) => g.name),
    problems: decoded.problems,
    resized: good.filter((g) => g.resized).length,
  };
}
