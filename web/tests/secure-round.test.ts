/**
 * One secure round in the browser (src/core/secure/{roster,participant,aggregator}.ts,
 * docs/secure_aggregation.md §6, §10) against tests/vectors/secure_round.json, written from the
 * Python side by tests/vectors/secure_round.py: the TypeScript aggregator fed Python's messages
 * answers the same roster, inboxes, split and sum, and a TypeScript participant given the same
 * keys, seed and coefficients sends the same bytes — so either language can aggregate for
 * participants of the other. Then the round engine's behaviour as tests/secure/test_secure_round.py
 * checks it in Python: exact sums, dropouts at every phase, aborts, wrong shares, refusals.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  RoundAborted,
  SecureAggregationError,
  SecureParticipant,
  SecureSum,
  addChange,
  addWords,
  compareIds,
  decode,
  fromHex,
  meanChange,
  quantize,
  secureMean,
  sortedIds,
  thresholdFor,
  toHex,
  type RevealedShare,
  type RoundSetup,
} from "../src/core/secure";
import { participantWithFixedRandomness } from "../src/core/secure/participant";
import { Weights } from "../src/core/weights";

// ---- the shared round ----

interface RoundVectors {
  about: string;
  task: string;
  round: number;
  task_threshold: number;
  values: number;
  clip: number;
  weight_cap: number;
  salt: string;
  members: {
    id: string;
    c_private: string;
    s_private: string;
    self_seed: string;
    self_coefficients: string[];
    key_coefficients: string[];
    input: number[];
  }[];
  keys: { id: string; c_public: string; s_public: string }[];
  setup: {
    task_id: string;
    round: number;
    members: { id: string; position: number; c_public: string; s_public: string }[];
    threshold: number;
    clip: number;
    weight_cap: number;
    bits: number;
    length: number;
  };
  shares: { from: string; commitment: string; envelopes: Record<string, string> }[];
  senders: string[];
  inboxes: { to: string; envelopes: Record<string, string> }[];
  masked: { from: string; words: number[] }[];
  survivors: string[];
  dropped: string[];
  reveals: { from: string; shares: { of: string; kind: "self" | "key"; share: string }[] }[];
  sum: number[];
  /** The round's model, one float32 tensor by bits (8 lowercase hex digits each, C order). */
  model: { shape: number[]; bits: string[] };
  total_weight: number;
  /** The model every aggregator ends the round with. */
  mean: { shape: number[]; bits: string[] };
}

const FILE = new URL("../../tests/vectors/secure_round.json", import.meta.url);
const V = JSON.parse(readFileSync(FILE, "utf8")) as RoundVectors;

function hexMap(record: Record<string, string>): Map<string, Uint8Array> {
  return new Map(Object.entries(record).map(([k, v]) => [k, fromHex(v)]));
}

function hexRecord(map: ReadonlyMap<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...map].map(([k, v]) => [k, toHex(v)]));
}

function revealedOf(entry: RoundVectors["reveals"][number]): RevealedShare[] {
  return entry.shares.map((s) => ({ of: s.of, kind: s.kind, share: fromHex(s.share) }));
}

function revealedJson(shares: readonly RevealedShare[]): { of: string; kind: string; share: string }[] {
  return shares.map((s) => ({ of: s.of, kind: s.kind, share: toHex(s.share) }));
}

function setupOf(doc: RoundVectors["setup"]): RoundSetup {
  return {
    taskId: doc.task_id,
    round: doc.round,
    members: doc.members.map((m) => ({
      id: m.id,
      position: m.position,
      cPublic: fromHex(m.c_public),
      sPublic: fromHex(m.s_public),
    })),
    threshold: doc.threshold,
    clip: doc.clip,
    weightCap: doc.weight_cap,
    bits: doc.bits,
    length: doc.length,
  };
}

function setupJson(setup: RoundSetup): RoundVectors["setup"] {
  return {
    task_id: setup.taskId,
    round: setup.round,
    members: setup.members.map((m) => ({
      id: m.id,
      position: m.position,
      c_public: toHex(m.cPublic),
      s_public: toHex(m.sPublic),
    })),
    threshold: setup.threshold,
    clip: setup.clip,
    weight_cap: setup.weightCap,
    bits: setup.bits,
    length: setup.length,
  };
}

function vectorAggregator(): SecureSum {
  return new SecureSum(V.task, V.round, {
    values: V.values,
    clip: V.clip,
    weightCap: V.weight_cap,
    threshold: V.task_threshold,
  });
}

function bigints(hexes: readonly string[]): bigint[] {
  return hexes.map((h) => BigInt(`0x${h}`));
}

function refusal(kind: string, message?: RegExp): SecureAggregationError {
  return expect.objectContaining({
    kind,
    ...(message === undefined ? {} : { message: expect.stringMatching(message) }),
  }) as unknown as SecureAggregationError;
}

describe("the shared round (tests/vectors/secure_round.json)", () => {
  it("has the sections its generator writes", () => {
    expect(Object.keys(V)).toEqual([
      "about", "task", "round", "task_threshold", "values", "clip", "weight_cap", "salt", "members", "keys", "setup",
      "shares", "senders", "inboxes", "masked", "survivors", "dropped", "reveals", "sum", "model", "total_weight", "mean",
    ]);
  });

  it("is the round its generator describes", () => {
    expect(V.about).toContain("docs/secure_aggregation.md");
    expect(V.members.map((m) => m.id)).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect(V.setup.threshold).toBe(3);
    expect(V.dropped).toEqual(["p2"]);
    expect(V.reveals.map((r) => r.from)).toEqual(["p0", "p1", "p3"]);
    const inputs = V.members.filter((m) => V.survivors.includes(m.id)).map((m) => Uint32Array.from(m.input));
    const sum = new Uint32Array(V.setup.length);
    for (const input of inputs) addWords(sum, input);
    expect([...sum]).toEqual(V.sum);
  });

  it("a TypeScript aggregator fed Python's messages answers the same roster, inboxes, split and sum", async () => {
    const agg = vectorAggregator();
    expect(agg.phase).toBe("keys");
    for (const k of V.keys) agg.addKeys(k.id, fromHex(k.c_public), fromHex(k.s_public));
    expect(setupJson(agg.setup())).toEqual(V.setup);
    for (const s of V.shares) agg.addShares(s.from, fromHex(s.commitment), hexMap(s.envelopes));
    expect(agg.closeShares()).toEqual(V.senders);
    for (const box of V.inboxes) expect(hexRecord(agg.inbox(box.to))).toEqual(box.envelopes);
    for (const m of V.masked) agg.addMasked(m.from, Uint32Array.from(m.words));
    expect(agg.closeMasked()).toEqual({ survivors: V.survivors, dropped: V.dropped });
    for (const r of V.reveals) agg.addReveal(r.from, revealedOf(r));
    expect(agg.revealed).toBe(3);
    expect([...(await agg.result())]).toEqual(V.sum);
  });

  it("two reveals are too few; a changed key share is caught against the public key", async () => {
    const agg = vectorAggregator();
    for (const k of V.keys) agg.addKeys(k.id, fromHex(k.c_public), fromHex(k.s_public));
    agg.setup();
    for (const s of V.shares) agg.addShares(s.from, fromHex(s.commitment), hexMap(s.envelopes));
    agg.closeShares();
    for (const m of V.masked) agg.addMasked(m.from, Uint32Array.from(m.words));
    agg.closeMasked();
    for (const r of V.reveals.slice(0, 2)) agg.addReveal(r.from, revealedOf(r));
    await expect(agg.result()).rejects.toThrow(RoundAborted);
    await expect(agg.result()).rejects.toThrow(/only 2 survivors revealed/);
    const last = V.reveals[2] as RoundVectors["reveals"][number];
    const changed = revealedOf(last).map((s) => {
      if (s.kind !== "key") return s;
      const share = new Uint8Array(s.share);
      share[32] = (share[32] as number) ^ 1;
      return { ...s, share };
    });
    agg.addReveal(last.from, changed);
    await expect(agg.result()).rejects.toThrow(/key of "p2" .*does not match its public key/);
  });

  for (const fixed of V.members) {
    it(`a TypeScript participant given ${fixed.id}'s randomness sends Python's bytes`, async () => {
      const me = await participantWithFixedRandomness(
        V.task,
        V.round,
        fixed.id,
        {
          cPrivate: fromHex(fixed.c_private),
          sPrivate: fromHex(fixed.s_private),
          selfSeed: fromHex(fixed.self_seed),
          selfCoefficients: bigints(fixed.self_coefficients),
          keyCoefficients: bigints(fixed.key_coefficients),
        },
        { threshold: V.task_threshold },
      );
      const keys = V.keys.find((k) => k.id === fixed.id)!;
      expect([toHex(me.keys().cPublic), toHex(me.keys().sPublic)]).toEqual([keys.c_public, keys.s_public]);
      const out = await me.share(setupOf(V.setup));
      const sent = V.shares.find((s) => s.from === fixed.id)!;
      expect(toHex(out.commitment)).toBe(sent.commitment);
      expect(hexRecord(out.envelopes)).toEqual(sent.envelopes);
      expect([...out.envelopes.keys()]).toEqual(Object.keys(sent.envelopes));
      await me.receive(hexMap(V.inboxes.find((b) => b.to === fixed.id)!.envelopes));
      if (V.dropped.includes(fixed.id)) return;
      const masked = await me.mask(Uint32Array.from(fixed.input), V.senders);
      expect([...masked]).toEqual(V.masked.find((m) => m.from === fixed.id)!.words);
      const shares = me.reveal(V.survivors, V.dropped);
      const answer = V.reveals.find((r) => r.from === fixed.id);
      if (answer !== undefined) {
        expect(revealedJson(shares)).toEqual(answer.shares);
      } else {
        // p4 stays silent in the file, but would have answered for the same secrets
        expect(shares.map((s) => [s.of, s.kind])).toEqual((V.reveals[0] as RoundVectors["reveals"][number]).shares.map((s) => [s.of, s.kind]));
      }
    });
  }
});

// ---- a peer of a decentralized round: the same sum from the masked inputs and the relayed reveals ----

function f32(section: RoundVectors["model"]): Weights {
  const bits = Uint32Array.from(section.bits, (b) => parseInt(b, 16));
  return new Weights(["w"], [section.shape], [new Float32Array(bits.buffer)]);
}

function bitsOf(weights: Weights): string[] {
  return [...new Uint32Array(weights.get("w").slice().buffer)].map((b) => b.toString(16).padStart(8, "0"));
}

function follower(survivors: readonly string[] = V.survivors): SecureSum {
  const commitments = new Map(V.shares.map((s) => [s.from, fromHex(s.commitment)]));
  return SecureSum.following(setupOf(V.setup), V.senders, new Map(survivors.map((v) => [v, commitments.get(v)!])));
}

describe("a peer of a decentralized round (docs/protocol.md §19.1)", () => {
  it("unmasks the file's sum and ends with the file's model", async () => {
    const peer = follower();
    expect(peer.phase).toBe("masked");
    for (const m of V.masked) peer.addMasked(m.from, Uint32Array.from(m.words));
    expect(peer.closeMasked()).toEqual({ survivors: V.survivors, dropped: V.dropped });
    for (const r of V.reveals) peer.addReveal(r.from, revealedOf(r));
    const total = await peer.result();
    expect([...total]).toEqual(V.sum);
    const setup = setupOf(V.setup);
    const { weights, weightSum } = secureMean(f32(V.model), total, setup.bits, V.survivors.length, V.weight_cap);
    expect(weightSum).toBe(V.total_weight);
    expect(bitsOf(weights)).toEqual(V.mean.bits);
    expect(weights.shapes).toEqual([V.mean.shape]);
  });

  it("unmasks nothing without a survivor's commitment or with too few reveals", async () => {
    let peer = follower(V.survivors.slice(1)); // p0's commitment was not relayed
    for (const m of V.masked) peer.addMasked(m.from, Uint32Array.from(m.words));
    peer.closeMasked();
    for (const r of V.reveals) peer.addReveal(r.from, revealedOf(r));
    await expect(peer.result()).rejects.toThrow(refusal("aborted", /does not match its commitment/));
    peer = follower();
    for (const m of V.masked) peer.addMasked(m.from, Uint32Array.from(m.words));
    peer.closeMasked();
    for (const r of V.reveals.slice(0, 2)) peer.addReveal(r.from, revealedOf(r));
    await expect(peer.result()).rejects.toThrow(refusal("aborted", /only 2 survivors revealed/));
  });

  it("takes only members that shared as senders, and their commitments", () => {
    const setup = setupOf(V.setup);
    expect(() => SecureSum.following(setup, ["p0", "p0", "p1"], new Map())).toThrow(refusal("round", /distinct members of the roster/));
    expect(() => SecureSum.following(setup, ["p0", "stranger"], new Map())).toThrow(/distinct members of the roster/);
    expect(() => SecureSum.following(setup, ["p0", "p1", "p3"], new Map([["p4", new Uint8Array(32)]]))).toThrow(
      refusal("round", /only from members that shared/),
    );
    expect(() => SecureSum.following(setup, ["p0", "p1", "p3"], new Map([["p0", new Uint8Array(31)]]))).toThrow(
      refusal("value", /a commitment is 32 bytes/),
    );
  });

  it("follows a coordinator that names the survivors and relays commitments and reveals, never holding an input", async () => {
    const coordinator = vectorAggregator();
    for (const k of V.keys) coordinator.addKeys(k.id, fromHex(k.c_public), fromHex(k.s_public));
    coordinator.setup();
    for (const sh of V.shares) coordinator.addShares(sh.from, fromHex(sh.commitment), hexMap(sh.envelopes));
    const senders = coordinator.closeShares();
    expect(() => coordinator.closeMasked(["p0", "p0", "p1"])).toThrow(refusal("round", /survivors must be distinct members that shared/));
    expect(() => coordinator.closeMasked(["p0", "stranger", "p1"])).toThrow(/survivors must be distinct members that shared/);
    expect(coordinator.closeMasked([...V.survivors].reverse())).toEqual({ survivors: V.survivors, dropped: V.dropped });
    for (const r of V.reveals) coordinator.addReveal(r.from, revealedOf(r));
    const commitments = coordinator.commitments(V.survivors);
    expect(hexRecord(commitments)).toEqual(Object.fromEntries(V.survivors.map((v) => [v, V.shares.find((sh) => sh.from === v)!.commitment])));
    expect(coordinator.reveals.map(([m, shares]) => ({ from: m, shares: revealedJson(shares) }))).toEqual(V.reveals);
    // a peer given what the coordinator relays unmasks the sum
    const peer = SecureSum.following(setupOf(V.setup), senders, commitments);
    for (const m of V.masked) peer.addMasked(m.from, Uint32Array.from(m.words));
    peer.closeMasked();
    for (const [m, shares] of coordinator.reveals) peer.addReveal(m, shares);
    expect([...(await peer.result())]).toEqual(V.sum);
    // an aggregator that holds masked inputs names no survivors
    const holder = follower();
    holder.addMasked("p0", Uint32Array.from(V.masked[0]!.words));
    expect(() => holder.closeMasked(V.survivors)).toThrow(/holds masked inputs: it names none/);
  });

  it("refuses a weight sum out of bounds, a change of another size and a model that is not finite", () => {
    const model = f32(V.model);
    const words = Uint32Array.from(V.sum);
    const bits = V.setup.bits;
    expect(meanChange(words, bits, 3, V.weight_cap).weightSum).toBe(V.total_weight);
    expect(() => meanChange(words, bits, 3, 50)).toThrow(refusal("value", /the weights add up to 156, outside \[3, 150\]/));
    expect(() => meanChange(words, bits, 157, V.weight_cap)).toThrow(/outside \[157, /);
    expect(() => addChange(model, new Float64Array(5))).toThrow(refusal("value", /the change has 5 values, the model 6/));
    expect(() => addChange(model, new Float64Array(6).fill(1e39))).toThrow(/the combined model is not finite/);
    const same = addChange(model, new Float64Array(6));
    expect(same.equals(model)).toBe(true);
    expect(same.values[0]).not.toBe(model.values[0]); // a new model, never the round's arrays
  });
});

// ---- the round engine (as tests/secure/test_secure_round.py) ----

const TASK = "mnist";
const ROUND = 3;
const VALUES = 257;
const CLIP = 1;
const CAP = 1024;

interface Outcome {
  words: Uint32Array | undefined; // the survivors' sum, or undefined if the round aborted
  aborted: string;
  survivors: readonly string[];
  inputs: Map<string, Uint32Array>;
  revealed: [string, string, string][]; // (by, of, kind)
  setup: RoundSetup | undefined;
}

interface Dropouts {
  silentAfterKeys?: readonly number[];
  silentAfterShares?: readonly number[];
  silentAfterMasked?: readonly number[];
}

/** A seeded generator of uniform numbers in [0, 1) (mulberry32), for reproducible updates. */
function uniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** n participants p0..p{n-1}; those listed stop answering after the named phase. */
async function runRound(n: number, threshold: number | null, drop: Dropouts = {}, seed = 0): Promise<Outcome> {
  const rng = uniform(seed + 1);
  const afterKeys = drop.silentAfterKeys ?? [];
  const afterShares = [...afterKeys, ...(drop.silentAfterShares ?? [])];
  const afterMasked = drop.silentAfterMasked ?? [];
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const people = new Map<string, SecureParticipant>();
  for (const id of ids) people.set(id, await SecureParticipant.create(TASK, ROUND, id, { threshold }));
  const agg = new SecureSum(TASK, ROUND, { values: VALUES, clip: CLIP, weightCap: CAP, threshold });
  const out: Outcome = { words: undefined, aborted: "", survivors: [], inputs: new Map(), revealed: [], setup: undefined };
  try {
    for (const id of ids) {
      const { cPublic, sPublic } = people.get(id)!.keys();
      agg.addKeys(id, cPublic, sPublic);
    }
    const setup = (out.setup = agg.setup());
    for (const [k, id] of ids.entries()) {
      if (afterKeys.includes(k)) continue;
      const shares = await people.get(id)!.share(setup);
      agg.addShares(id, shares.commitment, shares.envelopes);
    }
    const senders = agg.closeShares();
    for (const [k, id] of ids.entries()) {
      if (!senders.includes(id) || afterShares.includes(k)) continue;
      const me = people.get(id)!;
      await me.receive(agg.inbox(id));
      const update = Float32Array.from({ length: VALUES }, () => (rng() + rng() + rng() - 1.5) * 0.6);
      const words = quantize(update, 1 + Math.floor(rng() * 49), CLIP, setup.bits);
      out.inputs.set(id, words);
      const masked = await me.mask(words, senders);
      expect([...masked]).not.toEqual([...words]);
      agg.addMasked(id, masked);
    }
    const { survivors, dropped } = agg.closeMasked();
    out.survivors = survivors;
    for (const [k, id] of ids.entries()) {
      if (!survivors.includes(id) || afterMasked.includes(k)) continue;
      const shares = people.get(id)!.reveal(survivors, dropped);
      out.revealed.push(...shares.map((s): [string, string, string] => [id, s.of, s.kind]));
      agg.addReveal(id, shares);
    }
    out.words = await agg.result();
  } catch (error) {
    if (!(error instanceof RoundAborted)) throw error;
    out.aborted = error.message;
  }
  return out;
}

function sumOf(vectors: readonly Uint32Array[]): number[] {
  const total = new Uint32Array((vectors[0] as Uint32Array).length);
  for (const v of vectors) addWords(total, v);
  return [...total];
}

/** Five participants that shared, and an aggregator in its masked phase (for the refusal tests). */
async function sharedRound(n: number, values: number) {
  const people = new Map<string, SecureParticipant>();
  for (let i = 0; i < n; i++) people.set(`p${i}`, await SecureParticipant.create(TASK, ROUND, `p${i}`));
  const agg = new SecureSum(TASK, ROUND, { values, clip: CLIP, weightCap: CAP });
  for (const [id, p] of people) agg.addKeys(id, p.keys().cPublic, p.keys().sPublic);
  const setup = agg.setup();
  return { people, agg, setup };
}

describe("a secure round in the browser", () => {
  it("every participant takes part: the sum is exact", async () => {
    const out = await runRound(5, null);
    expect(out.aborted).toBe("");
    expect(out.survivors).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect([...out.words!]).toEqual(sumOf([...out.inputs.values()]));
    expect(out.setup!.threshold).toBe(3);
    expect(thresholdFor(5)).toBe(3);
    const { weightSum, values } = decode(out.words!, out.setup!.bits);
    expect(weightSum).toBe([...out.inputs.values()].reduce((a, w) => a + (w[0] as number), 0));
    const exact = new Float64Array(VALUES);
    for (const w of out.inputs.values()) decode(w, out.setup!.bits).values.forEach((x, i) => (exact[i] = (exact[i] as number) + x));
    values.forEach((x, i) => expect(x).toBeCloseTo(exact[i] as number, 9));
  });

  for (const phase of ["silentAfterKeys", "silentAfterShares", "silentAfterMasked"] as const) {
    it(`one dropout (${phase}) with n = 6, t = 4 leaves the survivors' exact sum`, async () => {
      const out = await runRound(6, 4, { [phase]: [2] });
      expect(out.aborted).toBe("");
      const counted = [...out.inputs].filter(([id]) => out.survivors.includes(id)).map(([, w]) => w);
      expect([...out.words!]).toEqual(sumOf(counted));
      if (phase === "silentAfterMasked") expect(out.survivors).toContain("p2"); // its input counts
      else expect(out.survivors).not.toContain("p2");
    });
  }

  it("two dropouts in different phases with n = 6, t = 4", async () => {
    const out = await runRound(6, 4, { silentAfterKeys: [0], silentAfterShares: [3] });
    expect(out.aborted).toBe("");
    expect(out.survivors).toEqual(["p1", "p2", "p4", "p5"]);
    expect([...out.words!]).toEqual(sumOf(out.survivors.map((id) => out.inputs.get(id)!)));
    // p3 shared then dropped: its key was rebuilt, its self-mask seed never asked for
    const ofP3 = new Set(out.revealed.filter(([, of]) => of === "p3").map(([, of, kind]) => `${of} ${kind}`));
    expect([...ofP3]).toEqual(["p3 key"]);
  });

  for (const phase of ["silentAfterKeys", "silentAfterShares", "silentAfterMasked"] as const) {
    it(`three dropouts of six (${phase}) abort and reveal nothing usable`, async () => {
      const out = await runRound(6, 4, { [phase]: [0, 2, 4] });
      expect(out.words).toBeUndefined();
      expect(out.aborted).not.toBe("");
      if (phase === "silentAfterMasked") {
        // three survivors answered: fewer than t, so no secret can be rebuilt from them
        expect(new Set(out.revealed.map(([by]) => by)).size).toBe(3);
      } else {
        expect(out.revealed).toEqual([]); // unmasking was never asked for
      }
    });
  }

  it("a wrong share is caught by the commitment check, not used", async () => {
    const { people, agg, setup } = await sharedRound(5, 4);
    expect(setup.threshold).toBe(3);
    for (const [id, p] of people) {
      const shares = await p.share(setup);
      agg.addShares(id, shares.commitment, shares.envelopes);
    }
    const senders = agg.closeShares();
    for (const [id, p] of people) {
      await p.receive(agg.inbox(id));
      agg.addMasked(id, await p.mask(quantize(new Float32Array(4), 1, CLIP, setup.bits), senders));
    }
    const { survivors, dropped } = agg.closeMasked();
    for (const [id, p] of people) {
      let shares = p.reveal(survivors, dropped);
      if (id === "p0") {
        // the first revealer's share of p3's seed is one bit off
        shares = shares.map((s) => {
          if (s.of !== "p3") return s;
          const share = new Uint8Array(s.share);
          share[32] = (share[32] as number) ^ 1;
          return { ...s, share };
        });
      }
      agg.addReveal(id, shares);
    }
    await expect(agg.result()).rejects.toThrow(refusal("aborted", /p3.*commitment/));
  });

  it("a participant refuses to reveal more than the protocol allows", async () => {
    const { people, agg, setup } = await sharedRound(4, 2);
    for (const [id, p] of people) {
      const shares = await p.share(setup);
      agg.addShares(id, shares.commitment, shares.envelopes);
    }
    const senders = agg.closeShares();
    const p0 = people.get("p0")!;
    const p1 = people.get("p1")!;
    expect(() => p0.reveal(["p0", "p1", "p2"], ["p3"])).toThrow(/no masked input was sent/);
    await expect(p0.mask(new Uint32Array(3), senders)).rejects.toThrow(/no shares were received/);
    await p0.receive(agg.inbox("p0"));
    await expect(p0.receive(agg.inbox("p0"))).rejects.toThrow(/arrived twice/);
    const zeros = quantize(new Float32Array(2), 1, CLIP, setup.bits);
    await expect(p1.mask(zeros, senders)).rejects.toThrow(/no shares were received/); // inbox not opened
    await expect(p0.mask(zeros, [...senders, "p1"])).rejects.toThrow(/listed twice/);
    await expect(p0.mask(zeros, ["p1", "p2", "p3"])).rejects.toThrow(/own shares are missing/);
    await expect(p0.mask(zeros, ["p0", "p1"])).rejects.toThrow(/fewer than the threshold 3/);
    await expect(p0.mask(zeros.subarray(0, 2), senders)).rejects.toThrow(refusal("value", /3 uint32 words/));
    await p0.mask(zeros, senders);
    await expect(p0.mask(zeros, senders)).rejects.toThrow(/already sent its masked input/);
    expect(() => p0.reveal(["p0", "p1", "p2"], ["p2", "p3"])).toThrow(/survivors and as dropped/);
    expect(() => p0.reveal(["p0", "p1", "p2"], [])).toThrow(/exactly the members that shared/);
    expect(() => p0.reveal(["p0", "p1", "p1", "p2"], ["p3"])).toThrow(/listed twice/);
    expect(() => p0.reveal(["p1", "p2", "p3"], ["p0"])).toThrow(/listed as dropped/);
    expect(() => p0.reveal(["p0", "p1"], ["p2", "p3"])).toThrow(/cannot unmask/); // threshold 3
    expect(p0.reveal(["p2", "p0", "p1"], ["p3"]).map((s) => `${s.of} ${s.kind}`)).toEqual([
      "p0 self",
      "p1 self",
      "p2 self",
      "p3 key",
    ]);
    expect(p0.reveal(["p0", "p1", "p2"], ["p3"])).toHaveLength(4); // the same split again is fine
    // p2's key after its seed could unmask p2
    expect(() => p0.reveal(["p0", "p1", "p3"], ["p2"])).toThrow(refusal("round", /another split/));
    await expect(p0.share(setup)).rejects.toThrow(/already shared/);
  });

  it("a participant refuses a roster that fails §6", async () => {
    const { people, setup } = await sharedRound(5, 2);
    const p0 = people.get("p0")!;
    const weak: RoundSetup = { ...setup, threshold: 2 };
    await expect(p0.share(weak)).rejects.toThrow(refusal("roster", /threshold from 3 to 5/));
    await expect(p0.share({ ...setup, threshold: 6 })).rejects.toThrow(/threshold from 3 to 5/);
    await expect(p0.share({ ...setup, round: 4 })).rejects.toThrow(/reached the secure round/);
    await expect(p0.share({ ...setup, members: setup.members.slice(0, 2) })).rejects.toThrow(/at least 3 members/);
    const swapped = [setup.members[1]!, setup.members[0]!, ...setup.members.slice(2)];
    await expect(p0.share({ ...setup, members: swapped })).rejects.toThrow(/in order of id/);
    const shifted = setup.members.map((m) => ({ ...m, position: m.position + 1 }));
    await expect(p0.share({ ...setup, members: shifted })).rejects.toThrow(/positions must be 1..n/);
    await expect(p0.share({ ...setup, bits: setup.bits + 1 })).rejects.toThrow(/scale 2\^/);
    const reused = setup.members.map((m, i) => (i === 1 ? { ...m, sPublic: setup.members[0]!.cPublic } : m));
    await expect(p0.share({ ...setup, members: reused })).rejects.toThrow(/malformed or reused public key/);
    const offCurve = new Uint8Array(setup.members[2]!.sPublic);
    offCurve[64] = (offCurve[64] as number) ^ 1;
    const bent = setup.members.map((m, i) => (i === 2 ? { ...m, sPublic: offCurve } : m));
    await expect(p0.share({ ...setup, members: bent })).rejects.toThrow(refusal("key"));
    const others = setup.members.map((m, i) => (i === 0 ? { ...m, id: "p" } : m));
    await expect(p0.share({ ...setup, members: others })).rejects.toThrow(/not a member/);
    const strange = setup.members.map((m, i) => (i === 0 ? { ...m, cPublic: people.get("p1")!.keys().sPublic } : m));
    await expect(p0.share({ ...setup, members: strange })).rejects.toThrow(/malformed or reused/);
    const mine = await SecureParticipant.create(TASK, ROUND, "p0");
    await expect(mine.share(setup)).rejects.toThrow(/does not carry this participant's keys/);
    expect(thresholdFor(6, 4)).toBe(4);
    expect(thresholdFor(6, 2)).toBe(4);
    expect(thresholdFor(7)).toBe(4);
    await p0.share(setup); // nothing above changed it
  });

  it("the aggregator refuses bad input and changes nothing", async () => {
    const people = new Map<string, SecureParticipant>();
    for (let i = 0; i < 3; i++) people.set(`p${i}`, await SecureParticipant.create(TASK, ROUND, `p${i}`));
    const agg = new SecureSum(TASK, ROUND, { values: 2, clip: CLIP, weightCap: CAP });
    expect(() => agg.closeShares()).toThrow(/keys phase, not shares/);
    expect(() => agg.inbox("p0")).toThrow(/shares phase is not over/);
    for (const [id, p] of people) agg.addKeys(id, p.keys().cPublic, p.keys().sPublic);
    expect(() => agg.addKeys("p0", people.get("p0")!.keys().cPublic, people.get("p0")!.keys().sPublic)).toThrow(
      /already sent its keys/,
    );
    expect(() => agg.addKeys("p7", new Uint8Array(64), new Uint8Array(65))).toThrow(/65 bytes each/);
    const setup = agg.setup();
    expect(agg.phase).toBe("shares");
    const p9 = await SecureParticipant.create(TASK, ROUND, "p9");
    expect(() => agg.addKeys("p9", p9.keys().cPublic, p9.keys().sPublic)).toThrow(refusal("round", /shares phase, not keys/));
    const shares = await people.get("p0")!.share(setup);
    expect(() => agg.addShares("p0", shares.commitment, new Map([["p1", shares.envelopes.get("p1")!]]))).toThrow(
      /one envelope to each/,
    );
    expect(() => agg.addShares("p9", shares.commitment, shares.envelopes)).toThrow(/not a member/);
    expect(() => agg.addShares("p0", shares.commitment.subarray(1), shares.envelopes)).toThrow(/a commitment is 32 bytes/);
    const short = new Map([...shares.envelopes].map(([to, e]) => [to, e.subarray(1)]));
    expect(() => agg.addShares("p0", shares.commitment, short)).toThrow(/82 bytes/);
    expect(() => agg.addMasked("p0", new Uint32Array(3))).toThrow(/shares phase, not masked/);
    for (const [id, p] of people) {
      const s = id === "p0" ? shares : await p.share(setup);
      agg.addShares(id, s.commitment, s.envelopes);
    }
    expect(() => agg.addShares("p0", shares.commitment, shares.envelopes)).toThrow(/already sent its shares/);
    const senders = agg.closeShares();
    expect(() => agg.inbox("p9")).toThrow(/not a member/);
    await people.get("p0")!.receive(agg.inbox("p0"));
    const masked = await people.get("p0")!.mask(quantize(new Float32Array([1, 1]), 2, CLIP, setup.bits), senders);
    expect(() => agg.addMasked("p0", masked.subarray(0, 2))).toThrow(/3 words/);
    expect(() => agg.addMasked("p9", masked)).toThrow(/did not share/);
    agg.addMasked("p0", masked);
    expect(() => agg.addMasked("p0", masked)).toThrow(/already sent its masked input/);
    expect(() => agg.closeMasked()).toThrow(RoundAborted);
    expect(() => agg.closeMasked()).toThrow(/only 1 masked inputs/);
    expect(agg.phase).toBe("masked");
  });

  it("the aggregator refuses reveals that are not one share per expected member and kind", async () => {
    const { people, agg, setup } = await sharedRound(4, 1);
    for (const [id, p] of people) {
      const s = await p.share(setup);
      agg.addShares(id, s.commitment, s.envelopes);
    }
    const senders = agg.closeShares();
    for (const [id, p] of people) {
      await p.receive(agg.inbox(id));
      if (id !== "p3") agg.addMasked(id, await p.mask(quantize(new Float32Array([0.5]), 3, CLIP, setup.bits), senders));
    }
    const { survivors, dropped } = agg.closeMasked();
    expect(dropped).toEqual(["p3"]);
    const shares = people.get("p0")!.reveal(survivors, dropped);
    expect(() => agg.addReveal("p3", shares)).toThrow(/not a survivor/);
    expect(() => agg.addReveal("p0", shares.slice(1))).toThrow(/exactly a self share for each survivor/);
    expect(() => agg.addReveal("p0", [...shares, shares[0]!])).toThrow(/exactly a self share/);
    const swapped = shares.map((s) => (s.of === "p3" ? { ...s, kind: "self" as const } : s));
    expect(() => agg.addReveal("p0", swapped)).toThrow(/exactly a self share/);
    const short = shares.map((s, i) => (i === 0 ? { ...s, share: s.share.subarray(1) } : s));
    expect(() => agg.addReveal("p0", short)).toThrow(/a share is 33 bytes/);
    agg.addReveal("p0", shares);
    expect(() => agg.addReveal("p0", shares)).toThrow(/already revealed/);
    await expect(agg.result()).rejects.toThrow(refusal("aborted", /only 1 survivors revealed/));
    for (const id of ["p1", "p2"]) agg.addReveal(id, people.get(id)!.reveal(survivors, dropped));
    const total = await agg.result();
    const one = quantize(new Float32Array([0.5]), 3, CLIP, setup.bits);
    expect([...total]).toEqual(sumOf([one, one, one]));
  });

  it("keys the aggregator cannot use leave their sender out; too few usable keys abort", async () => {
    const people = [];
    for (let i = 0; i < 4; i++) people.push(await SecureParticipant.create(TASK, ROUND, `p${i}`));
    const agg = new SecureSum(TASK, ROUND, { values: 1, clip: CLIP, weightCap: CAP });
    const [a, b, c, d] = people.map((p) => p.keys());
    agg.addKeys("p0", a!.cPublic, a!.sPublic);
    agg.addKeys("p1", b!.cPublic, a!.sPublic); // reuses p0's s key
    agg.addKeys("p2", c!.cPublic, c!.cPublic); // c = s
    const bent = new Uint8Array(d!.sPublic);
    bent[64] = (bent[64] as number) ^ 1;
    agg.addKeys("p3", d!.cPublic, bent); // not on the curve
    expect(() => agg.setup()).toThrow(refusal("aborted", /only 0 participants sent usable keys/)); // p0 too: its key was copied
    const big = new SecureSum(TASK, ROUND, { values: 1, clip: CLIP, weightCap: CAP, threshold: 5 });
    for (const [i, p] of people.entries()) big.addKeys(`p${i}`, p.keys().cPublic, p.keys().sPublic);
    expect(() => big.setup()).toThrow(/needs at least 5/);
  });

  it("orders ids as Python does, by code point", () => {
    expect(compareIds("\u{10000}", "\uffff")).toBeGreaterThan(0); // JavaScript's < says the opposite
    expect("\u{10000}" < "\uffff").toBe(true);
    expect(sortedIds(["b", "a", "\u{1f600}", "\ufb01", "ab", "a"])).toEqual(["a", "ab", "b", "\ufb01", "\u{1f600}"]);
  });
});

describe("keys before the roster", () => {
  it("can be replaced, and only the participants present are taken", async () => {
    const people = [];
    for (let i = 0; i < 5; i++) people.push(await SecureParticipant.create(TASK, ROUND, `p${i}`));
    const agg = new SecureSum(TASK, ROUND, { values: 2, clip: CLIP, weightCap: CAP });
    for (const [i, p] of people.entries()) agg.addKeys(`p${i}`, p.keys().cPublic, p.keys().sPublic);
    const again = await SecureParticipant.create(TASK, ROUND, "p0");
    expect(() => agg.addKeys("p0", again.keys().cPublic, again.keys().sPublic)).toThrow(/already sent its keys/);
    agg.addKeys("p0", again.keys().cPublic, again.keys().sPublic, { replace: true });
    const setup = agg.setup(new Set(["p0", "p1", "p2", "p4"]));
    expect(setup.members.map((m) => m.id)).toEqual(["p0", "p1", "p2", "p4"]);
    expect([...setup.members[0]!.cPublic]).toEqual([...again.keys().cPublic]);
  });
});

describe("a round larger than the ring holds", () => {
  it("takes the first to send their keys, as Python does", async () => {
    const people = [];
    for (let i = 0; i < 5; i++) people.push(await SecureParticipant.create(TASK, ROUND, `p${i}`));
    const agg = new SecureSum(TASK, ROUND, { values: 2, clip: 2 ** 5, weightCap: 2 ** 16 });
    for (const i of [4, 0, 3, 1, 2]) agg.addKeys(`p${i}`, people[i]!.keys().cPublic, people[i]!.keys().sPublic);
    const setup = agg.setup();
    expect(setup.members.map((m) => m.id)).toEqual(["p0", "p3", "p4"]);
    expect(setup.bits).toBe(8);
  });
});
