/** Picture sizes read from file headers, for files Pillow wrote in every supported format. */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { headerSize } from "../src/core/data/imagesize";

const DIR = new URL("../../tests/data/fixtures/headers/", import.meta.url);
const files = readdirSync(DIR).filter((n) => n.startsWith("37x23"));

describe("headerSize", () => {
  it("covers every format the loaders accept", () => {
    const kinds = new Set(files.map((n) => n.slice(n.lastIndexOf(".") + 1)));
    expect([...kinds].sort()).toEqual(["bmp", "gif", "jpg", "png", "webp"]);
    expect(files.length).toBeGreaterThanOrEqual(9);
  });

  it.each(files)("reads 37×23 from %s", (name) => {
    const bytes = new Uint8Array(readFileSync(new URL(name, DIR)));
    expect(headerSize(bytes)).toEqual({ width: 37, height: 23 });
  });

  it("reads a huge PNG's size from its first 24 bytes", () => {
    const png = new Uint8Array(33);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    new DataView(png.buffer).setUint32(16, 20000);
    new DataView(png.buffer).setUint32(20, 30000);
    expect(headerSize(png)).toEqual({ width: 20000, height: 30000 });
  });

  it("gives null for what it does not know or what is cut short", () => {
    expect(headerSize(new TextEncoder().encode("not a picture at all"))).toBeNull();
    expect(headerSize(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))).toBeNull();
    const jpeg = new Uint8Array(readFileSync(new URL("37x23.jpg", DIR)));
    expect(headerSize(jpeg.subarray(0, 20))).toBeNull();
  });
});
