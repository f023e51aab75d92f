/**
 * Dropped folders read recursively with fake File and Directory entries (the shape Chromium's
 * `webkitGetAsEntry()` gives), paths kept per file, and which files of a folder loaders read.
 */
import { describe, expect, it } from "vitest";
import { type EntryLike, inFolder, isHiddenPath, keepBySuffix, readDropped, relativePath } from "../src/core/data/files";

function fileEntry(name: string, content = name): EntryLike & { file(ok: (f: File) => void): void } {
  return { name, isFile: true, isDirectory: false, file: (ok) => ok(new File([content], name)) };
}

/** A folder whose reader hands out its entries `batch` at a time, then an empty batch. */
function folderEntry(name: string, children: EntryLike[], batch = 100): EntryLike & { createReader(): unknown } {
  return {
    name,
    isFile: false,
    isDirectory: true,
    createReader: () => {
      let at = 0;
      return {
        readEntries: (ok: (entries: EntryLike[]) => void) => {
          const next = children.slice(at, at + batch);
          at += next.length;
          setTimeout(() => ok(next), 0);
        },
      };
    },
  };
}

describe("readDropped", () => {
  it("reads folders recursively, with every entry past the first readEntries batch", async () => {
    const many = Array.from({ length: 130 }, (_, i) => fileEntry(`${String(i).padStart(5, "0")}.png`));
    const dropped = folderEntry("client_1", [
      folderEntry("7", [fileEntry("00001.png", "seven")]),
      folderEntry("0", many, 100),
      fileEntry(".DS_Store"),
      folderEntry("__MACOSX", [fileEntry("._00001.png")]),
    ]);
    const loose = new File(["x"], "loose.png");
    const files = await readDropped([dropped, loose]);

    expect(files).toHaveLength(132);
    const paths = files.map(relativePath);
    expect(paths[0]).toBe("client_1/0/00000.png");
    expect(paths).toContain("client_1/0/00129.png");
    expect(paths.at(-2)).toBe("client_1/7/00001.png");
    expect(paths.at(-1)).toBe("loose.png");
    expect(paths.some((p) => p.includes("DS_Store") || p.includes("MACOSX"))).toBe(false);
    // same name, other folder: distinct paths and contents
    const sevens = files.find((f) => relativePath(f) === "client_1/7/00001.png") as File;
    expect(await sevens.text()).toBe("seven");
    expect(inFolder(sevens)).toBe(true);
    expect(inFolder(loose)).toBe(false);
  });

  it("reads a chosen folder whose own name starts with a dot, still skipping hidden files inside", async () => {
    const dropped = folderEntry(".data", [folderEntry("0", [fileEntry("a.png"), fileEntry(".b.png")])]);
    const paths = (await readDropped([dropped])).map(relativePath);
    expect(paths).toEqual([".data/0/a.png"]);
    expect(isHiddenPath(".data/0/a.png")).toBe(false);
    expect(isHiddenPath(".data/.git/a.png")).toBe(true);
    expect(isHiddenPath(".hidden.png")).toBe(true);
  });

  it("rejects when a folder cannot be read", async () => {
    const broken: EntryLike & { createReader(): unknown } = {
      name: "locked",
      isFile: false,
      isDirectory: true,
      createReader: () => ({
        readEntries: (_ok: unknown, fail: (e: DOMException) => void) => fail(new DOMException("denied", "NotReadableError")),
      }),
    };
    await expect(readDropped([broken])).rejects.toThrow("denied");
  });
});

describe("keepBySuffix", () => {
  it("keeps files picked alone, and only matching files of folders", async () => {
    const folder = await readDropped([
      folderEntry("photos", [fileEntry("a.PNG"), fileEntry("notes.txt"), fileEntry(".hidden.png")]),
    ]);
    const alone = new File(["x"], "report.pdf");
    const { kept, ignored } = keepBySuffix([...folder, alone], [".png"]);
    expect(kept.map(relativePath)).toEqual(["photos/a.PNG", "report.pdf"]);
    expect(ignored).toEqual(["photos/notes.txt"]);
  });
});
