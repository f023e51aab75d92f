/**
 * Secure aggregation in the browser (src/core/secure/, docs/secure_aggregation.md) against
 * tests/vectors/secure_aggregation.json (written from the Python side by tests/vectors/secure.py):
 * Python and browser participants of one round must produce the same bytes. Then properties the
 * vectors cannot show: masks cancel, dropped participants are unmasked, the quantisation bound,
 * Shamir subsets, and refusals.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  CHUNK_WORDS,
  FIELD_PRIME,
  MIN_SCALE_BITS,
  SecureAggregationError,
  addWords,
  bytesToBigint,
  clampWeight,
  decode,
  decodeShare,
  ecdh,
  encodeShare,
  fromHex,
  generateKeyPair,
  hkdf,
  importPrivateKey,
  importPublicKey,
  maskStream,
  maskedInput,
  openShares,
  packShares,
  pairwiseMaskOfDropped,
  publicKeyOf,
  quantize,
  randomFieldElement,
  reconstruct,
  roundSalt,
  scaleBits,
  sealShares,
  selfMask,
  split,
  subtractWords,
  toHex,
  unmaskSum,
  unpackShares,
  type KeyPair,
  type RosterEntry,
  type Share,
} from "../src/core/secure";

// ---- the shared vectors ----

interface Vectors {
  about: string;
  salt: { task: string; round: number; salt: string }[];
  hkdf: { ikm: string; task: string; round: number; info: string; okm: string }[];
  ecdh: { a_private: string; a_public: string; b_private: string; b_public: string; shared: string }[];
  stream: { key: string; words: number; head: number[]; sha256: string }[];
  shamir: {
    secret: string;
    threshold: number;
    n: number;
    coefficients: string[];
    shares: { x: number; y: string }[];
    subsets: number[][];
    too_few: number[];
  }[];
  scale: { n: number; weight_cap: number; clip: number; scale_bits: number | null }[];
  quantize: { clip: number; scale_bits: number; weight: number; values: string[]; draws: number[]; words: number[] }[];
  decode: { scale_bits: number; words: number[]; weight: number; values: number[] }[];
  share_encryption: {
    c_private: string;
    peer_public: string;
    task: string;
    round: number;
    from_position: number;
    from: string;
    to: string;
    plaintext: string;
    ciphertext: string;
  }[];
  masking: {
    task: string;
    round: number;
    participants: { id: string; position: number; s_private: string; s_public: string; self_seed: string; input: number[] }[];
    masked: number[][];
    sum: number[];
  }[];
}

const VECTORS = new URL("../../tests/vectors/secure_aggregation.json", import.meta.url);
const vectors = JSON.parse(readFileSync(VECTORS, "utf8")) as Vectors;

/** The SHA-256 of words' little-endian bytes, in hex. */
async function wordsDigest(words: Uint32Array): Promise<string> {
  const bytes = new Uint8Array(4 * words.length);
  const view = new DataView(bytes.buffer);
  words.forEach((word, i) => view.setUint32(4 * i, word, true));
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** float32 values from their bit patterns (8 hex digits each). */
function float32s(bits: readonly string[]): Float32Array {
  const view = new DataView(new ArrayBuffer(4 * bits.length));
  bits.forEach((b, i) => view.setUint32(4 * i, parseInt(b, 16), false));
  return new Float32Array(bits.map((_, i) => view.getFloat32(4 * i, false)));
}

function sumWords(vectors: readonly Uint32Array[], length: number): Uint32Array {
  const sum = new Uint32Array(length);
  for (const v of vectors) addWords(sum, v);
  return sum;
}

function refusal(kind: string): SecureAggregationError {
  return expect.objectContaining({ name: "SecureAggregationError", kind }) as unknown as SecureAggregationError;
}

describe("the shared vectors", () => {
  it("say where they are documented", () => {
    expect(vectors.about).toContain("docs/secure_aggregation.md");
    for (const section of [
      vectors.salt,
      vectors.hkdf,
      vectors.ecdh,
      vectors.stream,
      vectors.shamir,
      vectors.scale,
      vectors.quantize,
      vectors.decode,
      vectors.share_encryption,
      vectors.masking,
    ]) {
      expect(section.length).toBeGreaterThan(0);
    }
  });

  it("salt: SHA-256 of the label, task id and u64be(round)", async () => {
    for (const v of vectors.salt) expect(toHex(await roundSalt(v.task, v.round))).toBe(v.salt);
  });

  it("hkdf: HKDF-SHA256 with the round salt and the info text", async () => {
    for (const v of vectors.hkdf) {
      expect(toHex(await hkdf(fromHex(v.ikm), await roundSalt(v.task, v.round), v.info))).toBe(v.okm);
    }
  });

  it("ecdh: public keys of the scalars, and the shared x-coordinate both ways", async () => {
    for (const v of vectors.ecdh) {
      expect(toHex(publicKeyOf(fromHex(v.a_private)))).toBe(v.a_public);
      expect(toHex(publicKeyOf(fromHex(v.b_private)))).toBe(v.b_public);
      const a = await importPrivateKey(fromHex(v.a_private));
      const b = await importPrivateKey(fromHex(v.b_private));
      expect(toHex(await ecdh(a.privateKey, fromHex(v.b_public)))).toBe(v.shared);
      expect(toHex(await ecdh(b.privateKey, fromHex(v.a_public)))).toBe(v.shared);
    }
  });

  it("stream: AES-256-CTR keystream as little-endian words", async () => {
    const lengths = vectors.stream.map((v) => v.words);
    expect(lengths).toEqual(expect.arrayContaining([1, 3, 1000]));
    for (const v of vectors.stream) {
      const words = await maskStream(fromHex(v.key), v.words);
      expect(Array.from(words.subarray(0, 8))).toEqual(v.head);
      expect(await wordsDigest(words)).toBe(v.sha256);
    }
  });

  it("shamir: shares of fixed coefficients, every subset rebuilds, too few is refused", () => {
    for (const v of vectors.shamir) {
      const coefficients = v.coefficients.map((c) => bytesToBigint(fromHex(c)));
      const shares = split(fromHex(v.secret), v.threshold, v.n, coefficients);
      expect(shares.map((s) => ({ x: s.x, y: toHex(encodeShare(s.y)) }))).toEqual(v.shares);
      const given: Share[] = v.shares.map((s) => ({ x: s.x, y: decodeShare(fromHex(s.y)) }));
      const at = (xs: number[]): Share[] => xs.map((x) => given.find((s) => s.x === x) as Share);
      for (const subset of v.subsets) expect(toHex(reconstruct(at(subset), v.threshold))).toBe(v.secret);
      expect(() => reconstruct(at(v.too_few), v.threshold)).toThrow(refusal("shares"));
    }
  });

  it("scale: the largest b with n·W·c·2^b + n ≤ 2^31 − 1, refused below 8", () => {
    for (const v of vectors.scale) {
      if (v.scale_bits === null) expect(() => scaleBits(v.n, v.weight_cap, v.clip)).toThrow(refusal("scale"));
      else expect(scaleBits(v.n, v.weight_cap, v.clip)).toBe(v.scale_bits);
    }
  });

  it("quantize: clamped, weighted, scaled, stochastically rounded on the given draws", () => {
    for (const v of vectors.quantize) {
      const words = quantize(float32s(v.values), v.weight, v.clip, v.scale_bits, Float64Array.from(v.draws));
      expect(Array.from(words)).toEqual(v.words);
    }
  });

  it("decode: Σw and signed words over 2^b", () => {
    for (const v of vectors.decode) {
      const decoded = decode(Uint32Array.from(v.words), v.scale_bits);
      expect(decoded.weightSum).toBe(v.weight);
      expect(Array.from(decoded.values)).toEqual(v.values);
    }
  });

  it("share_encryption: AES-256-GCM with the pair's key, position nonce and ids", async () => {
    for (const v of vectors.share_encryption) {
      const { privateKey } = await importPrivateKey(fromHex(v.c_private));
      const context = { salt: await roundSalt(v.task, v.round), fromPosition: v.from_position, from: v.from, to: v.to };
      const peer = fromHex(v.peer_public);
      expect(toHex(await sealShares(privateKey, peer, context, fromHex(v.plaintext)))).toBe(v.ciphertext);
      // The same key (ECDH is symmetric) opens it; the recipient's side is the same computation.
      expect(toHex(await openShares(privateKey, peer, context, fromHex(v.ciphertext)))).toBe(v.plaintext);
    }
  });

  it("masking: every participant's masked input, and their sum", async () => {
    for (const v of vectors.masking) {
      const salt = await roundSalt(v.task, v.round);
      const roster: RosterEntry[] = v.participants.map((p) => ({ position: p.position, publicKey: fromHex(p.s_public) }));
      const length = v.sum.length;
      const masked: Uint32Array[] = [];
      for (const p of v.participants) {
        const key = await importPrivateKey(fromHex(p.s_private));
        expect(toHex(key.publicKey)).toBe(p.s_public);
        masked.push(await maskedInput(Uint32Array.from(p.input), p.position, key.privateKey, roster, fromHex(p.self_seed), salt));
      }
      expect(masked.map((m) => Array.from(m))).toEqual(v.masked);
      expect(Array.from(sumWords(masked, length))).toEqual(v.sum);
      // Σ masked = Σ input + Σ self-masks; unmasking gives Σ input back.
      const inputs = v.participants.map((p) => Uint32Array.from(p.input));
      const selfSeeds = new Map(v.participants.map((p) => [p.position, fromHex(p.self_seed)]));
      const unmasked = await unmaskSum({ sum: sumWords(masked, length), salt, roster, selfSeeds, droppedKeys: new Map() });
      expect(Array.from(unmasked)).toEqual(Array.from(sumWords(inputs, length)));
      // The first participant drops: the others' sum is unmasked with its s key.
      const [dropped, ...rest] = v.participants.map((p, i) => ({ p, i }));
      const survivorsSum = sumWords(rest.map(({ i }) => masked[i] as Uint32Array), length);
      const withDrop = await unmaskSum({
        sum: survivorsSum,
        salt,
        roster,
        selfSeeds: new Map(rest.map(({ p }) => [p.position, fromHex(p.self_seed)])),
        droppedKeys: new Map([[dropped!.p.position, fromHex(dropped!.p.s_private)]]),
      });
      expect(Array.from(withDrop)).toEqual(Array.from(sumWords(rest.map(({ i }) => inputs[i] as Uint32Array), length)));
    }
  });
});

// ---- properties ----

function randomWords(length: number): Uint32Array {
  const out = new Uint32Array(length);
  for (let start = 0; start < length; start += 16384) crypto.getRandomValues(out.subarray(start, start + 16384));
  return out;
}

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length));
}

interface Participant {
  position: number;
  s: KeyPair;
  seed: Uint8Array;
  input: Uint32Array;
}

async function makeRound(n: number, length: number): Promise<{ participants: Participant[]; roster: RosterEntry[] }> {
  const participants: Participant[] = [];
  for (let position = 1; position <= n; position++) {
    participants.push({ position, s: await generateKeyPair(), seed: randomBytes(32), input: randomWords(length) });
  }
  return { participants, roster: participants.map((p) => ({ position: p.position, publicKey: p.s.publicKey })) };
}

describe("masks", () => {
  it("the stream does not depend on how it is chunked", async () => {
    const key = randomBytes(32);
    const length = CHUNK_WORDS + 7;
    const long = await maskStream(key, length);
    expect(Array.from((await maskStream(key, 1000)).subarray(0, 1000))).toEqual(Array.from(long.subarray(0, 1000)));
    // One WebCrypto call over the whole stream, no chunks.
    const aes = await crypto.subtle.importKey("raw", key, "AES-CTR", false, ["encrypt"]);
    const whole = await crypto.subtle.encrypt(
      { name: "AES-CTR", counter: new Uint8Array(16), length: 64 },
      aes,
      new Uint8Array(4 * length),
    );
    // (Compared as bytes: element-wise toEqual over 2^18 words is slow.)
    expect(Buffer.from(whole).equals(Buffer.from(long.buffer))).toBe(true);
    expect(Buffer.from(whole).equals(Buffer.from((await maskStream(randomBytes(32), length)).buffer))).toBe(false);
  });

  it("cancel in the sum of n = 5 random inputs, but hide each one", async () => {
    const length = 1000;
    const salt = await roundSalt("task", 7);
    const { participants, roster } = await makeRound(5, length);
    const masked = await Promise.all(
      participants.map((p) => maskedInput(p.input, p.position, p.s.privateKey, roster, p.seed, salt)),
    );
    for (let i = 0; i < 5; i++) {
      const p = participants[i] as Participant;
      expect(masked[i]).not.toEqual(p.input);
      // Removing its own self-mask still leaves the pairwise masks on it.
      expect(subtractWords(new Uint32Array(masked[i] as Uint32Array), await selfMask(p.seed, length, salt))).not.toEqual(p.input);
    }
    const sum = sumWords(masked, length);
    for (const p of participants) subtractWords(sum, await selfMask(p.seed, length, salt));
    expect(sum).toEqual(sumWords(participants.map((p) => p.input), length));
  });

  it("a dropped participant's pairwise masks are removed with its s key rebuilt from shares", async () => {
    const length = 257;
    const salt = await roundSalt("task", 1);
    const { participants, roster } = await makeRound(5, length);
    const dropped = participants[2] as Participant;
    const survivors = participants.filter((p) => p !== dropped);
    const masked = await Promise.all(
      survivors.map((p) => maskedInput(p.input, p.position, p.s.privateKey, roster, p.seed, salt)),
    );
    // Its s scalar was shared with threshold 3; three survivors hand in their shares.
    const shares = split(dropped.s.scalar, 3, 5);
    const rebuilt = reconstruct([shares[0], shares[3], shares[4]] as Share[], 3);
    expect(rebuilt).toEqual(dropped.s.scalar);
    const expected = sumWords(survivors.map((p) => p.input), length);

    const sum = sumWords(masked, length);
    for (const p of survivors) subtractWords(sum, await selfMask(p.seed, length, salt));
    expect(sum).not.toEqual(expected);
    const survivorRoster = roster.filter((entry) => entry.position !== dropped.position);
    subtractWords(sum, await pairwiseMaskOfDropped(dropped.position, rebuilt, survivorRoster, length, salt));
    expect(sum).toEqual(expected);

    const unmasked = await unmaskSum({
      sum: sumWords(masked, length),
      salt,
      roster,
      selfSeeds: new Map(survivors.map((p) => [p.position, p.seed])),
      droppedKeys: new Map([[dropped.position, rebuilt]]),
    });
    expect(unmasked).toEqual(expected);
  });

  it("unmasking refuses a participant given both ways, or neither", async () => {
    const salt = await roundSalt("task", 1);
    const { participants, roster } = await makeRound(3, 4);
    const seeds = new Map(participants.map((p) => [p.position, p.seed]));
    const sum = new Uint32Array(4);
    const both = { sum, salt, roster, selfSeeds: seeds, droppedKeys: new Map([[1, participants[0]!.s.scalar]]) };
    await expect(unmaskSum(both)).rejects.toThrow(refusal("roster"));
    const neither = { sum, salt, roster, selfSeeds: new Map([[1, participants[0]!.seed]]), droppedKeys: new Map() };
    await expect(unmaskSum(neither)).rejects.toThrow(refusal("roster"));
    const twice = [...roster, { position: 1, publicKey: participants[1]!.s.publicKey }];
    await expect(maskedInput(sum, 2, participants[1]!.s.privateKey, twice, participants[1]!.seed, salt)).rejects.toThrow(
      refusal("roster"),
    );
  });
});

describe("quantisation", () => {
  it("b is the largest exponent that fits, and below 8 the round is refused", () => {
    for (const [n, cap, clip] of [
      [1, 1, 1],
      [10, 1024, 1],
      [3, 1024, 0.1],
      [1000, 1024, 1],
      [7, 100, 1e-4],
    ] as const) {
      const b = scaleBits(n, cap, clip);
      expect(b).toBeGreaterThanOrEqual(MIN_SCALE_BITS);
      expect(n * cap * clip * 2 ** b + n).toBeLessThanOrEqual(2 ** 31 - 1);
      expect(n * cap * clip * 2 ** (b + 1) + n).toBeGreaterThan(2 ** 31 - 1);
    }
    expect(scaleBits(10, 1024, 1)).toBe(17);
    expect(() => scaleBits(100_000, 1024, 1)).toThrow(refusal("scale"));
    expect(() => scaleBits(8193, 1024, 1)).toThrow(/lower the clip range or the weight cap/);
    // A tiny clip leaves room for b, but n·W + n must fit too: the weights' word is summed as well.
    expect(() => scaleBits(2 ** 20, 4096, 2 ** -20)).toThrow(/weights of a round would not fit/);
    expect(scaleBits(2 ** 18, 4095, 2 ** -20)).toBe(21);
    expect(() => scaleBits(0, 1024, 1)).toThrow(refusal("value"));
    expect(() => scaleBits(1, 1024, 0)).toThrow(refusal("value"));
  });

  it("the decoded sum is within n / 2^b of Σ w·clamp(x), over random data", () => {
    const n = 20;
    const cap = 1024;
    const clip = 0.5;
    const length = 5000;
    const b = scaleBits(n, cap, clip);
    const exact = new Float64Array(length);
    const sum = new Uint32Array(1 + length);
    let weights = 0;
    for (let k = 0; k < n; k++) {
      const weight = clampWeight(1 + Math.floor(Math.random() * 2 * cap), cap);
      weights += weight;
      // Values up to twice the clip range, some clamped; the draws come from the CSPRNG.
      const values = Float32Array.from({ length }, () => (Math.random() * 2 - 1) * 2 * clip);
      // The worst case for the bound: every value at ±clip with the full weight.
      if (k === 0) values.fill(clip, 0, 100);
      addWords(sum, quantize(values, weight, clip, b));
      values.forEach((x, i) => (exact[i] = (exact[i] as number) + weight * Math.min(Math.max(x, -clip), clip)));
    }
    const decoded = decode(sum, b);
    expect(decoded.weightSum).toBe(weights);
    let worst = 0;
    let bias = 0;
    for (let i = 0; i < length; i++) {
      const error = (decoded.values[i] as number) - (exact[i] as number);
      worst = Math.max(worst, Math.abs(error));
      bias += error;
    }
    expect(worst).toBeLessThanOrEqual(n / 2 ** b);
    // Unbiased: the mean error is far below one step (n steps of variance ≤ 1/4 each).
    expect(Math.abs(bias / length)).toBeLessThan((5 * Math.sqrt(n / 4 / length)) / 2 ** b);
  });

  it("rounds down or up on the draw, and refuses NaN, bad weights and bad draws", () => {
    // v = 0.75 rounds up when r < 0.75; v = −0.75 (f = −1, v − f = 0.25) rounds up to 0 when r < 0.25.
    const values = Float32Array.of(0.75 / 2 ** 10, -0.75 / 2 ** 10);
    expect(Array.from(quantize(values, 1, 1, 10, Float64Array.of(0.74, 0.24)))).toEqual([1, 1, 0]);
    expect(Array.from(quantize(values, 1, 1, 10, Float64Array.of(0.75, 0.25)))).toEqual([1, 0, 2 ** 32 - 1]);
    expect(Array.from(quantize(Float32Array.of(-0, 5, -5), 2, 1, 8, Float64Array.of(0, 0.999, 0.999)))).toEqual([
      2,
      0,
      512,
      2 ** 32 - 512,
    ]);
    for (const bad of [NaN, Infinity, -Infinity]) {
      expect(() => quantize(Float32Array.of(0, bad), 1, 1, 8)).toThrow(/value 1 is .*must be finite/);
    }
    expect(() => quantize(Float32Array.of(0), 1024, 1, 21)).toThrow(/overflows a 32-bit word/);
    expect(() => quantize(Float32Array.of(0), 1, 1, -1)).toThrow(refusal("value"));
    expect(() => quantize(Float32Array.of(0), 0, 1, 8)).toThrow(refusal("value"));
    expect(() => quantize(Float32Array.of(0), 1.5, 1, 8)).toThrow(refusal("value"));
    expect(() => quantize(Float32Array.of(0), 1, 1, 8, Float64Array.of(1))).toThrow(refusal("value"));
    expect(() => quantize(Float32Array.of(0, 0), 1, 1, 8, Float64Array.of(0))).toThrow(refusal("value"));
    expect(clampWeight(5000)).toBe(1024);
    expect(clampWeight(3, 1024)).toBe(3);
    expect(() => clampWeight(0)).toThrow(refusal("value"));
  });
});

describe("Shamir", () => {
  it("any t of n shares rebuild the secret, fewer or repeated are refused", () => {
    const secret = randomBytes(32);
    const shares = split(secret, 3, 5);
    for (let a = 0; a < 5; a++) {
      for (let b = a + 1; b < 5; b++) {
        expect(() => reconstruct([shares[a], shares[b]] as Share[], 3)).toThrow(refusal("shares"));
        for (let c = b + 1; c < 5; c++) {
          // Any order.
          expect(reconstruct([shares[c], shares[a], shares[b]] as Share[], 3)).toEqual(secret);
        }
      }
    }
    expect(reconstruct(shares, 3)).toEqual(secret);
    expect(() => reconstruct([shares[0], shares[1], shares[0]] as Share[], 3)).toThrow(/two shares have x = 1/);
    expect(() => reconstruct([{ x: 0, y: 1n }, shares[1], shares[2]] as Share[], 3)).toThrow(refusal("shares"));
  });

  it("a secret of all 0xff bytes, t = 1 and t = n", () => {
    const max = new Uint8Array(32).fill(0xff);
    for (const [t, n] of [
      [1, 1],
      [1, 4],
      [7, 10],
      [4, 4],
    ] as const) {
      const shares = split(max, t, n);
      expect(shares.map((s) => s.x)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(reconstruct(shares.slice(n - t), t)).toEqual(max);
      for (const s of shares) expect(decodeShare(encodeShare(s.y))).toBe(s.y);
    }
    // With t = 1 every share is the secret.
    expect(split(max, 1, 3).map((s) => s.y)).toEqual(Array(3).fill(bytesToBigint(max)));
  });

  it("refuses bad parameters and bytes", () => {
    const secret = randomBytes(32);
    expect(() => split(secret, 4, 3)).toThrow(refusal("shares"));
    expect(() => split(secret, 0, 3)).toThrow(refusal("shares"));
    expect(() => split(randomBytes(31), 2, 3)).toThrow(refusal("shares"));
    expect(() => split(secret, 3, 5, [1n])).toThrow(refusal("shares"));
    expect(() => split(secret, 2, 5, [FIELD_PRIME])).toThrow(refusal("shares"));
    expect(() => decodeShare(new Uint8Array(32))).toThrow(refusal("shares"));
    expect(() => decodeShare(new Uint8Array(33).fill(0xff))).toThrow(refusal("shares"));
    for (let i = 0; i < 50; i++) expect(randomFieldElement() < FIELD_PRIME).toBe(true);
  });
});

describe("keys and envelopes", () => {
  it("public keys computed here match WebCrypto's, and ECDH agrees both ways", async () => {
    for (let i = 0; i < 3; i++) {
      const a = await generateKeyPair();
      const b = await generateKeyPair();
      expect(publicKeyOf(a.scalar)).toEqual(a.publicKey);
      const imported = await importPrivateKey(a.scalar);
      expect(imported.publicKey).toEqual(a.publicKey);
      const ab = await ecdh(imported.privateKey, b.publicKey);
      expect(ab).toEqual(await ecdh(b.privateKey, await importPublicKey(a.publicKey)));
      expect(ab.length).toBe(32);
    }
  });

  it("refuses malformed public keys and scalars", async () => {
    const { publicKey, privateKey } = await generateKeyPair();
    const offCurve = new Uint8Array(publicKey);
    offCurve[64] = (offCurve[64] as number) ^ 1;
    const compressed = new Uint8Array(publicKey);
    compressed[0] = 0x02;
    for (const bad of [publicKey.subarray(0, 64), compressed, offCurve, new Uint8Array(65), new Uint8Array(0)]) {
      await expect(importPublicKey(bad)).rejects.toThrow(refusal("key"));
      await expect(ecdh(privateKey, bad)).rejects.toThrow(refusal("key"));
    }
    await expect(importPublicKey(offCurve)).rejects.toThrow(/not a point on P-256/);
    await expect(importPrivateKey(new Uint8Array(32))).rejects.toThrow(refusal("key"));
    await expect(importPrivateKey(new Uint8Array(32).fill(0xff))).rejects.toThrow(refusal("key"));
    await expect(importPrivateKey(new Uint8Array(31).fill(1))).rejects.toThrow(refusal("key"));
  });

  it("shares round-trip between two participants; tampering or another context is refused", async () => {
    const u = await generateKeyPair();
    const v = await generateKeyPair();
    const salt = await roundSalt("mnist", 3);
    const context = { salt, fromPosition: 2, from: "alice", to: "bob" };
    const pair = { selfSeed: randomFieldElement(), sKey: randomFieldElement() };
    const ciphertext = await sealShares(u.privateKey, v.publicKey, context, packShares(pair));
    expect(ciphertext.length).toBe(82);
    expect(unpackShares(await openShares(v.privateKey, u.publicKey, context, ciphertext))).toEqual(pair);

    const tampered = new Uint8Array(ciphertext);
    tampered[10] = (tampered[10] as number) ^ 0x80;
    await expect(openShares(v.privateKey, u.publicKey, context, tampered)).rejects.toThrow(/shares from "alice" do not decrypt/);
    await expect(openShares(v.privateKey, u.publicKey, context, ciphertext.subarray(0, 81))).rejects.toThrow(
      refusal("decrypt"),
    );
    for (const other of [
      { ...context, to: "carol" },
      { ...context, fromPosition: 3 },
      { ...context, salt: await roundSalt("mnist", 4) },
    ]) {
      await expect(openShares(v.privateKey, u.publicKey, other, ciphertext)).rejects.toThrow(refusal("decrypt"));
    }
    await expect(sealShares(u.privateKey, v.publicKey, context, new Uint8Array(65))).rejects.toThrow(refusal("value"));
  });
});
