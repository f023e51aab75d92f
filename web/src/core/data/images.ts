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
 * A file that cannot be read, an unknown label or (with `size: "reject"`) a wrong size becomes a
 * problem message naming the file; the good files still count. Decoding needs a browser
 * (`createImageBitmap`, a 2-D canvas); the pure helpers below also run in Node.
 */
import type { TrainingInfo } from "../task";
import { DataError, type Dataset } from "./dataset";
import { columnIndex, parseCsv, pyRepr } from "./tabular";

/** File name endings read as images (the Python loader's list). */
export const IMAGE_SUFFIXES = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"];

/** One image file and the label text the user gave it (a label name or its index). */
export interface LabelledFile {
  file: File | Blob;
  label: string;
  /** Name used in messages and `sources` (default: the File's name). */
  name?: string;
}

/** Decoded images with their class ids and, per skipped file, one problem message. */
export interface LoadedImages extends Dataset {
  readonly problems: string[];
}

/** Options of the loaders. */
export interface ImageOptions {
  /** `"resize"` (default) scales every image to the task's size; `"reject"` skips others. */
  size?: "resize" | "reject";
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

/** Index of `name` among `labels`: exact, else a unique case-insensitive match, else an index. */
export function matchLabel(name: string, labels: readonly string[]): number | null {
  const text = name.trim();
  const exact = labels.indexOf(text);
  if (exact >= 0) return exact;
  const folded = labels.flatMap((l, i) => (l.toLowerCase() === text.toLowerCase() ? [i] : []));
  if (folded.length === 1) return folded[0] as number;
  if (/^\d+$/.test(text) && Number(text) < labels.length) return Number(text);
  return null;
}

/** Why a label is not accepted, naming the allowed ones. */
export function unknownLabel(where: string, label: string, labels: readonly string[]): string {
  return `${where}: unknown label ${pyRepr(label)}; the labels are ${labels.map(pyRepr).join(", ")} (or their index)`;
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
 * Pair the rows of a labels CSV with the files the user picked (matched by name, or by the end
 * of their relative path). A row whose file is missing becomes a problem.
 */
export function pairLabelsWithFiles(
  rows: readonly LabelsRow[],
  files: readonly File[],
  csvName = "labels.csv",
): { items: LabelledFile[]; problems: string[] } {
  const byPath = new Map<string, File>(); // every trailing part of each relative path
  for (const f of files) {
    const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    const parts = rel.split("/");
    for (let k = parts.length - 1; k >= 0; k--) {
      const key = parts.slice(k).join("/");
      if (!byPath.has(key)) byPath.set(key, f);
    }
  }
  const items: LabelledFile[] = [];
  const problems: string[] = [];
  for (const { row, filename, label } of rows) {
    const found = byPath.get(filename.replace(/^\.\//, ""));
    if (found === undefined) problems.push(`${csvName}: row ${row}: image ${pyRepr(filename)} not found`);
    else items.push({ file: found, label, name: filename });
  }
  return { items, problems };
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
  return item.name ?? ("name" in item.file ? item.file.name : "image");
}

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

/** Decode `blob` and draw it at `width` x `height` with smooth scaling; RGBA bytes. */
async function decodeRgba(
  blob: Blob,
  width: number,
  height: number,
  policy: "resize" | "reject",
): Promise<Uint8ClampedArray> {
  if (typeof createImageBitmap !== "function") {
    throw new DataError("this browser cannot decode images (createImageBitmap is missing)");
  }
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    premultiplyAlpha: "none",
    colorSpaceConversion: "none",
  });
  try {
    if (policy === "reject" && (bitmap.width !== width || bitmap.height !== height)) {
      throw new DataError(`image is ${bitmap.width}x${bitmap.height}, the task expects ${width}x${height}`);
    }
    // draw and read back with no await in between: concurrent decodes can share the canvas
    const ctx = canvasOf(width, height);
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(bitmap, 0, 0, width, height);
    return ctx.getImageData(0, 0, width, height).data;
  } finally {
    bitmap.close();
  }
}

/** One image file as float32 `(height, width, channels)` in [0, 1]; DataError naming the file. */
export async function loadImage(
  file: File | Blob,
  training: TrainingInfo,
  options: ImageOptions & { name?: string } = {},
): Promise<Float32Array> {
  const [height, width, channels] = imageShape(training);
  const name = fileName({ file, ...(options.name === undefined ? {} : { name: options.name }) });
  try {
    const rgba = await decodeRgba(file, width, height, options.size ?? "resize");
    return pixelsToSample(rgba, width, height, channels);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof DataError && reason.startsWith("image is ")) throw new DataError(`${name}: ${reason}`);
    throw new DataError(`${name}: cannot read image (${reason})`);
  }
}

async function decodeAll(
  items: readonly { file: File | Blob; name?: string; label: number }[],
  training: TrainingInfo,
  options: ImageOptions,
): Promise<{ samples: (Float32Array | null)[]; problems: string[] }> {
  const samples: (Float32Array | null)[] = new Array<Float32Array | null>(items.length).fill(null);
  const problems: (string | null)[] = new Array<string | null>(items.length).fill(null);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const item = items[i] as (typeof items)[number];
      try {
        samples[i] = await loadImage(item.file, training, { ...options, name: fileName(item) });
      } catch (error) {
        if (!(error instanceof DataError)) throw error;
        problems[i] = error.message;
      }
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 4, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { samples, problems: problems.filter((p): p is string => p !== null) };
}

function stack(samples: readonly Float32Array[], size: number): Float32Array {
  const x = new Float32Array(samples.length * size);
  samples.forEach((s, i) => x.set(s, i * size));
  return x;
}

/**
 * Decode labelled image files for the task (labels: a name, a unique case-insensitive name, or
 * an index). Unreadable files, unknown labels and rejected sizes become `problems`; the others
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
  const good = known.flatMap((k, i) => {
    const sample = decoded.samples[i];
    return sample ? [{ ...k, sample }] : [];
  });
  return {
    x: stack(good.map((g) => g.sample), shape[0] * shape[1] * shape[2]),
    y: Int32Array.from(good, (g) => g.label),
    n: good.length,
    sampleShape: shape,
    sources: good.map((g) => g.name),
    problems: [...problems, ...decoded.problems],
  };
}

/** Decode images for prediction, in order; unreadable ones become `problems` (y is empty). */
export async function loadImagesUnlabelled(
  files: readonly (File | Blob)[],
  training: TrainingInfo,
  options: ImageOptions = {},
): Promise<LoadedImages> {
  const shape = imageShape(training);
  const items = files.map((file) => ({ file, name: fileName({ file }), label: 0 }));
  const decoded = await decodeAll(items, training, options);
  const good = items.flatMap((k, i) => {
    const sample = decoded.samples[i];
    return sample ? [{ ...k, sample }] : [];
  });
  return {
    x: stack(good.map((g) => g.sample), shape[0] * shape[1] * shape[2]),
    y: new Int32Array(good.length),
    n: good.length,
    sampleShape: shape,
    sources: good.map((g) => g.name),
    problems: decoded.problems,
  };
}
