/**
 * Text generation in the browser (`core/text/generate.ts`): greedy decoding gives Python's ids
 * with the same weights (tests/vectors/text_generation.json, written by
 * tests/vectors/text_generation.py), and the rules — stop strings, held-back pieces, top-k,
 * temperature, the seed, stopping — on small logits tables.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { buildModel, setWeights } from "../src/core/models";
import type { ModelSpec } from "../src/core/task";
import { type LogitsFn, chooseToken, generate, heldBack, modelLogits, promptIds } from "../src/core/text/generate";
import { Tokenizer } from "../src/core/text/tokenizer";
import { Weights } from "../src/core/weights";

interface Vectors {
  tokenizer: string;
  spec: ModelSpec;
  max_tokens: number;
  context: number;
  weights: { name: string; shape: number[]; values: number[] }[];
  cases: { prompt: string; ids: number[]; text: string }[];
}

const VECTORS = new URL("../../tests/vectors/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("text_generation.json", VECTORS), "utf8")) as Vectors;
let tokenizer: Tokenizer;

beforeAll(async () => {
  await tf.setBackend("cpu");
  tokenizer = await Tokenizer.fromBytes(new Uint8Array(readFileSync(new URL(vectors.tokenizer, VECTORS))));
});

async function collect(pieces: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of pieces) out.push(p);
  return out;
}

/** A logits function that scores `script[k]` highest at step k (then the end-of-text token). */
function scripted(script: readonly number[], seen: number[][] = []): LogitsFn {
  let k = 0;
  return async (ids) => {
    seen.push([...ids]);
    const scores = new Float32Array(tokenizer.vocabSize);
    scores[script[k++] ?? tokenizer.eotId] = 10;
    return scores;
  };
}

describe("greedy generation matches Python's", () => {
  it.each(vectors.cases.map((c) => [JSON.stringify(c.prompt), c] as const))("prompt %s", async (_, c) => {
    const model = buildModel(vectors.spec);
    try {
      const w = vectors.weights;
      setWeights(model, vectors.spec, new Weights(w.map((x) => x.name), w.map((x) => x.shape), w.map((x) => Float32Array.from(x.values))));
      const ids: number[] = [];
      const pieces = await collect(
        generate(modelLogits(model), tokenizer, c.prompt, { context: vectors.context, maxTokens: vectors.max_tokens, temperature: 0 }, (id) => ids.push(id)),
      );
      expect(ids).toEqual(c.ids);
      expect(pieces.join("")).toBe(c.text);
    } finally {
      model.dispose();
    }
  });
});

describe("generate", () => {
  it("starts after the end-of-text token and sees at most the context", async () => {
    const seen: number[][] = [];
    const script = tokenizer.encode(" and summer's lease hath all too short a date");
    await collect(generate(scripted(script, seen), tokenizer, "Shall I", { context: 4, maxTokens: 6, temperature: 0 }));
    expect(seen[0]).toEqual(promptIds(tokenizer, "Shall I").slice(-4));
    expect(promptIds(tokenizer, "Shall I")[0]).toBe(tokenizer.eotId);
    expect(seen.every((ids) => ids.length <= 4)).toBe(true);
    expect(seen).toHaveLength(6);
  });

  it("gives the text back whole, and ends at the end-of-text token", async () => {
    const text = " and summer's lease";
    const pieces = await collect(generate(scripted(tokenizer.encode(text)), tokenizer, "", { context: 8, maxTokens: 50, temperature: 0 }));
    expect(pieces.join("")).toBe(text);
  });

  it("stops before a stop string, holding back its possible start", async () => {
    const text = "To be, or not to be: that is the question";
    const pieces = await collect(
      generate(scripted(tokenizer.encode(text)), tokenizer, "", { context: 8, maxTokens: 80, temperature: 0, stop: [": that"] }),
    );
    expect(pieces.join("")).toBe("To be, or not to be");
    for (const p of pieces) expect(p.endsWith(":")).toBe(false);
  });

  it("holds a character split across tokens until it is whole", async () => {
    const emoji = tokenizer.encode("😀");
    expect(emoji.length).toBeGreaterThan(1); // the test tokenizer spells it in bytes
    const pieces = await collect(generate(scripted([...emoji, ...tokenizer.encode("!")]), tokenizer, "", { context: 8, maxTokens: 20, temperature: 0 }));
    expect(pieces.join("")).toBe("😀!");
    expect(pieces.some((p) => p.includes("\ufffd"))).toBe(false);
  });

  it("makes nothing with max_tokens 0 and stops when asked", async () => {
    expect(await collect(generate(scripted([5, 6]), tokenizer, "x", { context: 8, maxTokens: 0 }))).toEqual([]);
    let calls = 0;
    const pieces = await collect(
      generate(scripted(tokenizer.encode("abcdefgh")), tokenizer, "", { context: 8, maxTokens: 8, temperature: 0, shouldStop: () => ++calls > 3 }),
    );
    expect(pieces.join("").length).toBeLessThan(8);
  });

  it("refuses settings Python refuses, in Python's words", async () => {
    const run = (o: object) => collect(generate(scripted([]), tokenizer, "", { context: 8, ...o }));
    await expect(run({ maxTokens: -1 })).rejects.toThrow("max_tokens must be a whole number, at least 0; got -1");
    await expect(run({ temperature: -0.5 })).rejects.toThrow("temperature must be 0 (always the likeliest token) or more");
    await expect(run({ topK: 1.5 })).rejects.toThrow("top_k must be a whole number (0: no limit)");
    await expect(run({ stop: [""] })).rejects.toThrow("a stop string cannot be empty");
  });
});

describe("choosing a token", () => {
  const scores = [1, 5, 5, 2, -3];
  it("is greedy at temperature 0 or top-k 1, ties to the lowest id", () => {
    expect(chooseToken(scores, 0, 40, Math.random)).toBe(1);
    expect(chooseToken(scores, 1.5, 1, Math.random)).toBe(1);
  });

  it("draws only among the top k, ties at the cut kept", () => {
    const drawn = new Set<number>();
    let u = 0;
    for (let i = 0; i < 200; i++) drawn.add(chooseToken(scores, 1, 2, () => (u = (u + 0.618) % 1)));
    expect([...drawn].sort()).toEqual([1, 2]);
    const three = new Set<number>();
    for (let i = 0; i < 400; i++) three.add(chooseToken([1, 5, 5, 5, -3], 1, 2, () => (u = (u + 0.618) % 1)));
    expect([...three].sort()).toEqual([1, 2, 3]);
  });

  it("follows the softmax of the scaled scores", () => {
    let u = 0;
    const counts = [0, 0];
    for (let i = 0; i < 10_000; i++) counts[chooseToken([0, Math.log(3)], 1, 0, () => (u = (u + 0.6180339887) % 1))]! += 1;
    expect(counts[1]! / 10_000).toBeCloseTo(0.75, 2);
  });

  it("refuses scores that are not finite", () => {
    expect(() => chooseToken([0, Number.NaN], 0, 0, Math.random)).toThrow("not finite");
  });

  it("gives the same text for the same seed", async () => {
    const flat: LogitsFn = async () => new Float32Array(tokenizer.vocabSize);
    const once = (seed: number) => collect(generate(flat, tokenizer, "", { context: 8, maxTokens: 12, temperature: 1, topK: 0, seed }));
    expect(await once(3)).toEqual(await once(3));
    expect((await once(3)).join("")).not.toBe((await once(4)).join(""));
  });
});

describe("held-back text", () => {
  it("waits for the start of a stop string and for a half character", () => {
    expect(heldBack("to be, or not", ["nothing"])).toBe(3);
    expect(heldBack("to be", ["\n\n"])).toBe(0);
    expect(heldBack("to be\n", ["\n\n"])).toBe(1);
    expect(heldBack("ab\ufffd\ufffd", [])).toBe(2);
    expect(heldBack("xx😀", ["😀!"])).toBe(2); // one code point: two UTF-16 units
  });
});
