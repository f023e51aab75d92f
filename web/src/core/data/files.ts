/**
 * Files the user picked or dropped, and where they sit in the folder they came from.
 *
 * A file picked through a folder picker (`<input webkitdirectory>`) carries its path in
 * `webkitRelativePath` (`client_1/0/00001.png`); a file read from a dropped folder gets the same
 * path, built while walking the folder (`readDropped`). `relativePath` gives either, or the
 * bare name of a file picked alone, so files with the same name in different folders stay
 * distinct. Hidden files and folders (`.DS_Store`, `__MACOSX/`) are never user data: they are
 * left out when a folder is read, as Python's loaders leave them out.
 */

/** Paths of files read from dropped folders (a File's own `webkitRelativePath` is read-only). */
const droppedPaths = new WeakMap<Blob, string>();

/** Where `file` sits in the folder it was picked or dropped with, or its name. */
export function relativePath(file: File): string {
  return droppedPaths.get(file) ?? (file.webkitRelativePath || file.name);
}

/** Whether `file` came inside a folder (picked or dropped). */
export function inFolder(file: File): boolean {
  return relativePath(file).includes("/");
}

function isHiddenName(name: string): boolean {
  return name.startsWith(".") || name === "__MACOSX";
}

/**
 * Whether a path names a hidden file or lies in a hidden or system folder *inside* the folder
 * the person chose (the first part of a folder path): choosing `.data/` itself is deliberate.
 */
export function isHiddenPath(path: string): boolean {
  const parts = path.split("/");
  return (parts.length > 1 ? parts.slice(1) : parts).some(isHiddenName);
}

/** Lower-case suffix of a path with its dot (`.png`), or "" when it has none. */
export function suffixOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/** "1 picture" / "3 pictures". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/**
 * The files of a pick that a loader should read: files picked alone always (a wrong one gets
 * its own message there), files that came in a folder only when their suffix is among
 * `suffixes`; hidden files are dropped. `ignored` names the other files of the folders.
 */
export function keepBySuffix(
  files: readonly File[],
  suffixes: readonly string[],
): { kept: File[]; ignored: string[] } {
  const kept: File[] = [];
  const ignored: string[] = [];
  for (const file of files) {
    const path = relativePath(file);
    if (isHiddenPath(path)) continue;
    if (!inFolder(file) || suffixes.includes(suffixOf(path))) kept.push(file);
    else ignored.push(path);
  }
  return { kept, ignored };
}

/** A note naming the files of a folder that were not read and why, or null when none. */
export function ignoredNote(ignored: readonly string[], why: string): string | null {
  if (!ignored.length) return null;
  const more = ignored.length > 3 ? ` and ${ignored.length - 3} more` : "";
  return `Not read, ${why}: ${ignored.slice(0, 3).join(", ")}${more}`;
}

/** The parts of the File and Directory Entries API that reading a dropped folder needs. */
export interface EntryLike {
  readonly name: string;
  readonly isFile: boolean;
  readonly isDirectory: boolean;
}
interface FileEntryLike extends EntryLike {
  file(success: (file: File) => void, failure?: (error: DOMException) => void): void;
}
interface DirectoryEntryLike extends EntryLike {
  createReader(): {
    readEntries(success: (entries: EntryLike[]) => void, failure?: (error: DOMException) => void): void;
  };
}

function fileOf(entry: FileEntryLike): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** Every entry of a folder: `readEntries` gives them in batches (100 in Chromium) until none. */
async function childrenOf(entry: DirectoryEntryLike): Promise<EntryLike[]> {
  const reader = entry.createReader();
  const all: EntryLike[] = [];
  for (;;) {
    const batch = await new Promise<EntryLike[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return all;
    all.push(...batch);
  }
}

async function walk(entry: EntryLike, parent: string, out: File[]): Promise<void> {
  const path = parent ? `${parent}/${entry.name}` : entry.name;
  if ((parent !== "" || !entry.isDirectory) && isHiddenName(entry.name)) return; // a dropped folder counts as chosen
  if (entry.isDirectory) {
    const children = await childrenOf(entry as DirectoryEntryLike);
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) await walk(child, path, out);
  } else if (entry.isFile) {
    const file = await fileOf(entry as FileEntryLike);
    if (parent) droppedPaths.set(file, path);
    out.push(file);
  }
}

/**
 * The files of what was dropped: dropped files as they are, dropped folders read recursively
 * (sorted by path, hidden entries left out), each file's `relativePath` starting with the
 * dropped folder's name. `entries` must be taken from the drop event before any `await`
 * (`item.webkitGetAsEntry()`): the browser empties the DataTransfer once the handler returns.
 */
export async function readDropped(entries: readonly (EntryLike | File)[]): Promise<File[]> {
  const out: File[] = [];
  for (const entry of entries) {
    if (entry instanceof File) out.push(entry);
    else await walk(entry, "", out);
  }
  return out;
}

/**
 * What a drop event holds, taken synchronously: for each item its folder entry, or the file
 * itself (kept as the browser gave it). Null when the browser cannot tell folders apart.
 */
export function droppedEntries(transfer: DataTransfer): (EntryLike | File)[] | null {
  const items = Array.from(transfer.items).filter((item) => item.kind === "file");
  if (!items.length || typeof items[0]?.webkitGetAsEntry !== "function") return null;
  return items.flatMap((item): (EntryLike | File)[] => {
    const entry = item.webkitGetAsEntry();
    if (entry?.isDirectory) return [entry];
    const file = item.getAsFile();
    return file ? [file] : [];
  });
}
