/**
 * Tokenising off the page's thread (`core/text/encodeText.ts`) against tests/vectors/tokenizer.json:
 * through the worker's own code (`encodeWorker.ts`, run here behind a stand-in for the browser's
 * `Worker`, which Node lacks) the ids are Python's; text that is not valid Unicode is refused
 * before any work is sent; and a worker that cannot start or cannot encode leaves the text to be
 * encoded on this thread, with the same ids, never a promise that does not settle.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DataError } from "../src/core/data/dataset";
import { Tokenizer } from "../src/core/text/tokenizer";

interface Vectors {
  tokenizer: string;
  encode: { name: string; text: string; ids: number[] }[];
  random: { text: string; ids: number[] }[];
}

const VECTORS = new URL("../../tests/vectors/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("tokenizer.json", VECTORS), "utf8")) as Vectors;
const tokenizer = await Tokenizer.fromBytes(new Uint8Array(readFileSync(new URL(vectors.tokenizer, VECTORS))));
const cases = [...vectors.encode, ...vectors.random.map((r, i) => ({ name: `random ${i}`, ...r }))];

type Behaviour = "real" | "fails to load" | "cannot encode";

/** A stand-in for `Worker`: runs encodeWorker.ts in this process, or fails as told. */
function installWorker(behaviour: Behaviour): { started: number; asked: number; bytesSent: number } {
  const seen = { started: 0, asked: 0, bytesSent: 0 };
  class StandIn {
    onmessage: ((event: { data: unknown }) => void) | null = null;
    onerror: ((event: { preventDefault(): void }) => void) | null = null;
    private scope: { onmessage: ((event: { data: unknown }) => void) | null } | null = null;
    constructor(url: URL, options: { type: string }) {
      seen.started += 1;
      expect(url.pathname).toMatch(/encodeWorker\.ts$/);
      expect(options.type).toBe("module");
      if (behaviour === "fails to load") {
        setTimeout(() => this.onerror?.({ preventDefault: () => undefined }), 0);
        return;
      }
      const scope = globalThis as unknown as { onmessage: StandIn["onmessage"]; postMessage: (m: unknown) => void };
      scope.postMessage = (message) => setTimeout(() => this.onmessage?.({ data: message }), 0);
      this.scope = scope;
    }
    postMessage(request: { id: number; text: string; tokenizer: Uint8Array | null }): void {
      seen.asked += 1;
      if (request.tokenizer !== null) seen.bytesSent += 1;
      if (behaviour === "cannot encode") {
        setTimeout(() => this.onmessage?.({ data: { id: request.id, error: "out of memory" } }), 0);
        return;
      }
      setTimeout(() => this.scope?.onmessage?.({ data: structuredClone(request) }), 0);
    }
    terminate(): void {}
  }
  vi.stubGlobal("Worker", StandIn);
  return seen;
}

/** A fresh copy of the module (it keeps its worker), and of the worker's. */
async function fresh(behaviour: Behaviour | null) {
  vi.resetModules();
  const seen = behaviour === null ? null : installWorker(behaviour);
  if (behaviour === "real") await import("../src/core/text/encodeWorker");
  const { encodeText } = await import("../src/core/text/encodeText");
  return { encodeText, seen };
}

afterEach(() => {
  vi.unstubAllGlobals();
  delete (globalThis as { onmessage?: unknown }).onmessage;
});

describe("encoding text off the page's thread", () => {
  it("gives Python's ids through the worker, sent the tokenizer once", async () => {
    const { encodeText, seen } = await fresh("real");
    const all = await Promise.all(cases.map((c) => encodeText(tokenizer, c.text)));
    all.forEach((ids, i) => {
      expect(ids).toBeInstanceOf(Int32Array);
      expect(Array.from(ids), cases[i]?.name).toEqual(cases[i]?.ids);
    });
    expect(seen).toEqual({ started: 1, asked: cases.length, bytesSent: 1 });
  });

  it("refuses text that is not valid Unicode before sending it, with the tokenizer's error", async () => {
    const { encodeText, seen } = await fresh("real");
    const refused = await encodeText(tokenizer, "a\uD800b").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).name).toBe(DataError.name); // the module's own class: a fresh copy
    expect((refused as Error).message).toBe(
      "the text is not valid Unicode: a lone surrogate (U+D800) at character 1",
    );
    expect(seen?.asked).toBe(0);
  });

  it("encodes here when the worker cannot start, and does not try again", async () => {
    const { encodeText, seen } = await fresh("fails to load");
    const first = await Promise.all(cases.slice(0, 3).map((c) => encodeText(tokenizer, c.text)));
    expect(first.map((ids) => Array.from(ids))).toEqual(cases.slice(0, 3).map((c) => c.ids));
    const later = await encodeText(tokenizer, cases[3]?.text ?? "");
    expect(Array.from(later)).toEqual(cases[3]?.ids);
    expect(seen?.started).toBe(1);
  });

  it("encodes here a text the worker could not encode", async () => {
    const { encodeText, seen } = await fresh("cannot encode");
    const ids = await encodeText(tokenizer, cases[0]?.text ?? "");
    expect(Array.from(ids)).toEqual(cases[0]?.ids);
    expect(seen?.asked).toBe(1);
  });

  it("encodes here where there are no workers (Node)", async () => {
    const { encodeText } = await fresh(null);
    expect(typeof (globalThis as { Worker?: unknown }).Worker).toBe("undefined");
    const ids = await encodeText(tokenizer, cases[1]?.text ?? "");
    expect(Array.from(ids)).toEqual(cases[1]?.ids);
  });
});
