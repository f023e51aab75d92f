/**
 * `PeerClient` in secure decentralized rounds (docs/protocol.md §19.1): browser peers over
 * in-memory channels, paced by `FakeSecureSession` (the coordinator: roster, envelopes, split,
 * relayed reveals) — a whole round where every peer unmasks the same model, masked inputs that
 * hide the updates, a peer dropped for never sending its masked input, shares that rebuild no
 * secret, an aborted round, a peer left off the roster or out by the barrier (it keeps the round's
 * model for the next round), 2 survivors (nothing revealed); joining; and the exchange's checks of
 * masked inputs (a second one from the same peer refused).
 */

import { describe, expect, it } from "vitest";
import { changeOf } from "../src/core/client/secure";
import { MemoryConnector, MemoryHub } from "../src/core/decentralized/connector";
import { digestOf, PeerExchange } from "../src/core/decentralized/exchange";
import {
  PeerClient,
  peerCapabilities,
  roundBoundMs,
  type PeerClientEvent,
  type PeerClientOptions,
  type PeerRoundEvent,
  type PeerTrainFn,
} from "../src/core/decentralized/peer";
import { ServerError, StoppedError } from "../src/core/errors";
import { decode, encode, type Message, type PeerMasked } from "../src/core/protocol";
import { addWords, quantize, secureMean, type RoundSetup } from "../src/core/secure";
import type { SecureAggregationConfig } from "../src/core/task";
import type { Channel } from "../src/core/transport/channel";
import { memoryPair } from "../src/core/transport/memory";
import { sha256Hex, Weights } from "../src/core/weights";
import { scriptedServer, shifted } from "./peer-helpers";
import { FakeSecureSession } from "./secure-peer-helpers";

/** A model whose values are exact binary fractions: a change by 2^−k is exact, and so is its quantisation. */
const base = new Weights(
  ["dense.kernel", "dense.bias"],
  [[2, 2], [2]],
  [new Float32Array([0.5, -0.25, 0.75, 0.125]), new Float32Array([0.0625, -0.5])],
);
const SETTINGS: SecureAggregationConfig = { clip: 1, weight_cap: 1024, threshold: null };
const TASK = "peers";

/** Training that adds `delta` to every weight, on `numSamples` samples. */
const trainBy =
  (delta: number, numSamples: number): PeerTrainFn =>
  async (_round, weights) => ({ weights: shifted(weights, delta), numSamples, metrics: { train_loss: 0.5 } });

interface TestPeer {
  client: PeerClient;
  events: PeerClientEvent[];
  logs: () => string[];
  /** The masked inputs this peer received in `round`, by sender. */
  masked: (round: number) => Map<string, PeerMasked>;
}

function makePeer(id: string, session: FakeSecureSession, hub: MemoryHub, options: Partial<PeerClientOptions> = {}): TestPeer {
  const events: PeerClientEvent[] = [];
  const client = new PeerClient({
    serverUrl: "http://disco.test",
    taskId: TASK,
    name: id,
    aggregation: { rule: "mean", max_share: 1 },
    secureAggregation: SETTINGS,
    train: trainBy(0.25, 10),
    reference: base,
    initialModel: async () => ({ weights: base, digest: await base.digest() }),
    openServer: session.open,
    connector: (me, onChannel) => new MemoryConnector(me, onChannel, hub),
    onEvent: (e) => events.push(e),
    waitForOthersMs: 10_000,
    slackMs: 2_000,
    ...options,
  });
  const logs = (): string[] => events.filter((e) => e.kind === "log").map((e) => (e as { message: string }).message);
  // (the test reads what the peer's exchange kept)
  const exchange = (client as unknown as { exchange: PeerExchange }).exchange;
  const masked = (round: number): Map<string, PeerMasked> => new Map(exchange.masked.get(round) ?? []);
  return { client, events, logs, masked };
}

function session(options: Partial<ConstructorParameters<typeof FakeSecureSession>[1]> = {}): Promise<FakeSecureSession> {
  return base.digest().then(
    (digest) => new FakeSecureSession(digest, { minParticipants: 3, taskId: TASK, values: base.size, settings: SETTINGS, ...options }),
  );
}

async function waitFor(condition: () => boolean, what = "condition", ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The words a peer that adds `delta` with `numSamples` samples masks (exact: no rounding to draw). */
function plainWords(setup: RoundSetup, delta: number, numSamples: number): Uint32Array {
  const change = changeOf(base, shifted(base, delta));
  return quantize(change, Math.min(numSamples, setup.weightCap), setup.clip, setup.bits);
}

/** G + Σ w·x / Σ w over the given peers' plain words: the model every peer must end the round with. */
function expectedMean(setup: RoundSetup, inputs: readonly Uint32Array[]): Weights {
  const sum = new Uint32Array(setup.length);
  for (const words of inputs) addWords(sum, words);
  return secureMean(base, sum, setup.bits, inputs.length, setup.weightCap).weights;
}

const wordsOf = (bytes: Uint8Array): number[] => [...new Uint32Array(bytes.slice().buffer)];

describe("PeerClient in secure rounds", () => {
  it("unmasks the sum with two other browser peers: every peer ends with secureMean of the plain sum", async () => {
    const fake = await session();
    const hub = new MemoryHub();
    const plan = { a: [0.25, 30], b: [-0.125, 10], c: [0.5, 20] } as const;
    const peers = Object.fromEntries(
      Object.entries(plan).map(([id, [delta, n]]) => [id, makePeer(id, fake, hub, { train: trainBy(delta, n) })]),
    ) as Record<keyof typeof plan, TestPeer>;
    const results = await Promise.all(Object.values(peers).map((p) => p.client.run(2)));

    const setup = fake.setups[0] as RoundSetup;
    expect(setup.members.map((m) => m.id)).toEqual(["a", "b", "c"]);
    expect(setup.length).toBe(1 + base.size);
    const plain = Object.fromEntries(Object.entries(plan).map(([id, [delta, n]]) => [id, plainWords(setup, delta, n)]));
    const first = expectedMean(setup, Object.values(plain));
    const digest = await first.digest();
    for (const [id, peer] of Object.entries(peers)) {
      // round 0 ended with the unmasked mean, bit for bit, and so did the next
      const rounds = peer.events.filter((e): e is PeerRoundEvent => e.kind === "round");
      expect(rounds.map((e) => [e.round, e.contributors]), id).toEqual([
        [1, 3],
        [2, 3],
      ]);
      expect(rounds[0]!.weights.equals(first), id).toBe(true);
      expect(rounds[0]!.digest, id).toBe(digest);
      expect(fake.messages(id, "digest").map((m) => m.round), id).toEqual([0, 1]);
      expect(fake.messages(id, "digest")[0]!.digest, id).toBe(digest);
      // what it told the server: keys, shares, reveals, whose masked inputs it holds, digests — never a model
      expect(fake.messages(id, "hello")[0]!.capabilities).toEqual(["decentralized", "secure_aggregation"]);
      expect(fake.messages(id, "secure_keys").map((m) => m.round), id).toEqual([0, 1]);
      expect(fake.messages(id, "secure_shares").map((m) => m.round), id).toEqual([0, 1]);
      expect(fake.messages(id, "secure_reveal").map((m) => m.round), id).toEqual([0, 1]);
      expect(fake.messages(id, "received").at(-1)?.peers, id).toEqual(Object.keys(plan).filter((p) => p !== id));
      expect((fake.sent.get(id) ?? []).some((m) => (m.type as string) === "update" || (m.type as string) === "secure_input")).toBe(false);
    }
    expect(fake.splits.map((s) => [s.survivors, s.dropped])).toEqual([
      [["a", "b", "c"], []],
      [["a", "b", "c"], []],
    ]);
    expect(fake.closed.map((c) => [c.round, [...new Set(c.digests.values())].length])).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(fake.closed[0]!.agreed).toBe(digest);
    expect(results.every((r) => r.weights.equals(results[0]!.weights) && r.rounds === 2)).toBe(true);
    // each masked input is the same frame to every receiver, its digest its words' (round 1's are still held)
    const round1 = fake.setups[1] as RoundSetup;
    for (const id of Object.keys(plan)) {
      const others = Object.entries(peers).filter(([other]) => other !== id);
      const got = others.map(([, p]) => p.masked(1).get(id) as PeerMasked);
      expect(got.every((m) => m !== undefined && m.digest === got[0]!.digest)).toBe(true);
      expect(got[0]!.words.length).toBe(4 * round1.length);
      expect(await sha256Hex(got[0]!.words)).toBe(got[0]!.digest);
    }
    fake.stop();
  });

  it("sends masked inputs that differ from the plain quantised updates", async () => {
    const fake = await session();
    const hub = new MemoryHub();
    const deltas = { a: 0.25, b: -0.125, c: 0.5 } as const;
    const peers = Object.entries(deltas).map(([id, delta]) => [id, makePeer(id, fake, hub, { train: trainBy(delta, 16) })] as const);
    await Promise.all(peers.map(([, p]) => p.client.run(1)));
    const setup = fake.setups[0] as RoundSetup;
    for (const [id, delta] of Object.entries(deltas)) {
      const plain = [...plainWords(setup, delta, 16)];
      for (const [other, peer] of peers) {
        if (other === id) continue;
        const masked = wordsOf((peer.masked(0).get(id) as PeerMasked).words);
        expect(masked).toHaveLength(plain.length);
        expect(masked.filter((w, i) => w === plain[i]).length, `${id} to ${other}`).toBeLessThan(2); // uniformly random words
      }
    }
    fake.stop();
  });

  it("drops a peer that never sent its masked input; that peer still unmasks the survivors' sum", async () => {
    const fake = await session({ minParticipants: 4, exchangeMs: 400 });
    const hub = new MemoryHub();
    const deltas = { a: 0.25, b: -0.125, c: 0.5, d: 0.0625 } as const;
    const slowD: PeerTrainFn = async (round, weights, signal, k) => {
      // trains until the others unmasked without it: its masked input would serve no one
      await waitFor(() => ["a", "b", "c"].every((p) => fake.messages(p, "digest").length > 0), "the others' digests");
      return trainBy(deltas.d, 10)(round, weights, signal, k);
    };
    const peers = Object.entries(deltas).map(
      ([id, delta]) => [id, makePeer(id, fake, hub, { train: id === "d" ? slowD : trainBy(delta, 10) })] as const,
    );
    const results = await Promise.all(peers.map(([, p]) => p.client.run(1)));

    const setup = fake.setups[0] as RoundSetup;
    expect(setup.threshold).toBe(3);
    expect(fake.splits[0]).toEqual({ round: 0, survivors: ["a", "b", "c"], dropped: ["d"] });
    const expected = expectedMean(setup, [plainWords(setup, 0.25, 10), plainWords(setup, -0.125, 10), plainWords(setup, 0.5, 10)]);
    for (const [id, peer] of peers) {
      expect(fake.messages(id, "digest")[0]!.digest, id).toBe(await expected.digest());
      expect(peer.masked(0).has("d"), id).toBe(false); // d never sent it
    }
    expect(results.every((r) => r.weights.equals(expected))).toBe(true);
    expect(fake.messages("d", "secure_reveal")).toHaveLength(0); // a dropped member is never asked
    expect([...peers[3]![1].masked(0).keys()].sort()).toEqual(["a", "b", "c"]);
    fake.stop();
  });

  it("keeps the round's model when the relayed shares do not rebuild a secret, as every peer does", async () => {
    const fake = await session({ damage: [0] });
    const hub = new MemoryHub();
    const peers = ["a", "b", "c"].map((id, i) => makePeer(id, fake, hub, { train: trainBy(0.25 * (i + 1), 10) }));
    const results = await Promise.all(peers.map((p) => p.client.run(1)));
    const digest = await base.digest();
    expect(fake.closed.map((c) => c.round)).toEqual([0, 1]);
    expect([...fake.closed[0]!.digests.values()]).toEqual([digest, digest, digest]); // round 1 opens with the same model
    for (const peer of peers) {
      expect(peer.logs().some((l) => /the sum could not be unmasked \(.*does not match its commitment/.test(l))).toBe(true);
      expect(peer.events.filter((e): e is PeerRoundEvent => e.kind === "round").map((e) => e.round)).toEqual([2]); // round 0 counts for nothing
    }
    expect(results.every((r) => r.rounds === 1 && r.weights.equals(results[0]!.weights))).toBe(true);
    fake.stop();
  });

  it("keeps the round's model after an abort, says it holds it, and waits for the next plan", async () => {
    const fake = await session({ minParticipants: 4 });
    const hub = new MemoryHub();
    const leavers = new Map<string, TestPeer>();
    const leaving: PeerTrainFn = async (round) => {
      // c and d leave once they have shared: 2 masked inputs of 4 cannot reach the threshold of 3
      await waitFor(() => fake.messages("c", "secure_shares").length + fake.messages("d", "secure_shares").length === 2, "the shares");
      for (const p of leavers.values()) p.client.stop();
      throw new StoppedError(`stopped in round ${round}`);
    };
    const a = makePeer("a", fake, hub, { train: trainBy(0.25, 10) });
    const b = makePeer("b", fake, hub, { train: trainBy(-0.125, 10) });
    for (const id of ["c", "d"]) leavers.set(id, makePeer(id, fake, hub, { train: leaving }));
    const runs = [a, b, ...leavers.values()].map((p) => p.client.run(1));
    // both handlers at once: c and d stop together, either may reject first
    await Promise.all([expect(runs[2]).rejects.toThrow(StoppedError), expect(runs[3]).rejects.toThrow(StoppedError)]);
    await waitFor(() => fake.messages("a", "digest").length > 0 && fake.messages("b", "digest").length > 0, "a's and b's digests");

    expect(fake.aborted).toEqual([{ round: 0, reason: "only 2 masked inputs arrived; unmasking needs 3 survivors" }]);
    const digest = await base.digest();
    for (const peer of [a, b]) {
      expect(fake.messages(peer.client.clientId as string, "digest")).toEqual([{ type: "digest", round: 0, digest }]);
      expect(peer.client.weights?.equals(base)).toBe(true);
      expect(peer.events.some((e) => e.kind === "round")).toBe(false);
      expect(peer.logs().some((l) => l.includes("the round was aborted (only 2 masked inputs arrived"))).toBe(true);
      expect(peer.masked(0).size).toBe(1); // the other's
    }
    a.client.stop();
    b.client.stop();
    await Promise.all([expect(runs[0]).rejects.toThrow(StoppedError), expect(runs[1]).rejects.toThrow(StoppedError)]);
    fake.stop();
  });

  it.each([
    ["not on the roster", { ignoreKeys: [{ round: 1, peer: "d" }] }, "the roster does not list this peer"],
    ["left out by the barrier", { leaveOut: [{ round: 1, peer: "d" }] }, "left out (channels to the peers did not open in time)"],
  ] as const)("a peer %s keeps the round's model as the next one's and takes part in it without fetching", async (_, how, said) => {
    // round 1 goes on without d, then is aborted: the server counts d among the holders of G_1
    // for round 2, whose plan names no peer for d to fetch from
    const fake = await session({ minParticipants: 4, abort: [1], ...how });
    const hub = new MemoryHub();
    const deltas = { a: 0.25, b: -0.125, c: 0.5, d: 0.0625 } as const;
    const peers = Object.fromEntries(
      Object.entries(deltas).map(([id, delta]) => [id, makePeer(id, fake, hub, { train: trainBy(delta, 10) })]),
    ) as Record<keyof typeof deltas, TestPeer>;
    const results = await Promise.all(Object.values(peers).map((p) => p.client.run(2)));

    expect(fake.setups.map((s) => s.members.map((m) => m.id))).toEqual([
      ["a", "b", "c", "d"],
      ["a", "b", "c"],
      ["a", "b", "c", "d"],
    ]);
    expect(fake.aborted.map((a) => a.round)).toEqual([1]);
    const first = (peers.a.events.find((e) => e.kind === "round") as PeerRoundEvent).weights; // G_1
    const g1 = await first.digest();
    const d = peers.d;
    expect(d.logs().some((l) => l.includes(said))).toBe(true);
    // d reported nothing of round 1, and round 2 opened for it with the model it held (no fetch)
    expect(fake.messages("d", "digest").map((m) => m.round)).toEqual([0, 2]);
    expect(fake.messages("d", "secure_shares").map((m) => m.round)).toEqual([0, 2]);
    expect(d.logs().some((l) => l.includes("fetching the round's model"))).toBe(false);
    const models = d.events.filter((e) => e.kind === "model") as { round: number; weights: Weights }[];
    expect(models.map((e) => e.round)).toEqual([0, 1, 2]);
    expect(models[2]!.weights.equals(first)).toBe(true);
    expect(await models[2]!.weights.digest()).toBe(g1);
    // everyone took part in round 2 and ended it with the same model
    expect(fake.splits.at(-1)).toEqual({ round: 2, survivors: ["a", "b", "c", "d"], dropped: [] });
    for (const [id, peer] of Object.entries(peers)) {
      expect(peer.events.filter((e): e is PeerRoundEvent => e.kind === "round").map((e) => e.round), id).toEqual([1, 3]);
    }
    expect(results.every((r) => r.rounds === 2 && r.weights.equals(results[0]!.weights))).toBe(true);
    expect(results.map((r) => r.timings.map((t) => t.round))).toEqual([[0, 2], [0, 2], [0, 2], [0, 2]]); // only rounds combined
    fake.stop();
  });

  it("refuses to unmask the sum of 2 survivors: reveals nothing and keeps the round's model", async () => {
    // a server that lets such a round go on: each survivor could read the other's update from the sum
    const fake = await session({ fewerThanThree: true, exchangeMs: 400, unmaskMs: 300 });
    const hub = new MemoryHub();
    const slowC: PeerTrainFn = async (round, weights, signal, k) => {
      // in round 0, trains until the split is made without it
      if (round === 0) await waitFor(() => fake.splits.length > 0, "the split");
      return trainBy(0.5, 10)(round, weights, signal, k);
    };
    const a = makePeer("a", fake, hub, { train: trainBy(0.25, 10) });
    const b = makePeer("b", fake, hub, { train: trainBy(-0.125, 10) });
    const c = makePeer("c", fake, hub, { train: slowC });
    const results = await Promise.all([a, b, c].map((p) => p.client.run(1)));

    expect(fake.splits[0]).toEqual({ round: 0, survivors: ["a", "b"], dropped: ["c"] });
    expect(fake.aborted.map((x) => x.round)).toEqual([0]); // no reveal came
    const digest = await base.digest();
    for (const [id, peer] of [["a", a], ["b", b]] as const) {
      expect(fake.messages(id, "secure_reveal").map((m) => m.round), id).toEqual([1]); // nothing of round 0
      expect(fake.messages(id, "digest").map((m) => m.round), id).toEqual([1]); // sat out: reported nothing
      expect(
        peer.logs().some((l) => l.includes("only 2 survivors: with fewer than 3, each could read another's update from the sum; nothing is revealed")),
        id,
      ).toBe(true);
      // round 1 opened with the model it kept
      const models = peer.events.filter((e) => e.kind === "model") as { round: number; weights: Weights }[];
      expect(models.map((e) => e.round), id).toEqual([0, 1]);
      expect(await models[1]!.weights.digest(), id).toBe(digest);
    }
    expect(fake.messages("c", "digest")[0]).toEqual({ type: "digest", round: 0, digest }); // the abort: c keeps it too
    expect(results.every((r) => r.rounds === 1 && r.weights.equals(results[0]!.weights))).toBe(true);
    fake.stop();
  });
});

describe("joining a secure task", () => {
  it("asks for secure aggregation, and refuses a server that does not run it", async () => {
    expect(peerCapabilities({ secureAggregation: SETTINGS })).toEqual(["decentralized", "secure_aggregation"]);
    expect(peerCapabilities({ secureAggregation: null })).toEqual(["decentralized"]);
    const server = scriptedServer();
    const client = new PeerClient({
      serverUrl: "http://disco.test",
      taskId: TASK,
      aggregation: { rule: "mean", max_share: 1 },
      secureAggregation: SETTINGS,
      train: trainBy(0.25, 10),
      reference: base,
      initialModel: async () => ({ weights: base, digest: await base.digest() }),
      openServer: server.open,
    });
    const run = client.run(1);
    expect((await server.next("hello")).capabilities).toEqual(["decentralized", "secure_aggregation"]);
    server.deliver({
      type: "welcome", client_id: "p-a", task_id: TASK, round: 0, participants: 1, min_participants: 3,
      state: "waiting_for_participants", capabilities: ["decentralized"],
    });
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/without secure aggregation.*nothing was sent/);
  });

  it("waits for the next plan at least a whole secure round of the others", () => {
    expect(roundBoundMs(120_000, false, 30_000)).toBe(30_000 + 120_000 + 60_000 + 60_000);
    expect(roundBoundMs(120_000, true, 30_000)).toBe(270_000 + 30_000 + 30_000 + 60_000);
  });
});

describe("masked inputs between peers", () => {
  const digestOfWords = (words: Uint8Array): Promise<string> => sha256Hex(words);

  async function exchangeWith(secure: boolean): Promise<{ exchange: PeerExchange; theirs: Channel; updates: number[] }> {
    const updates: number[] = [];
    const exchange = new PeerExchange(base, (round) => updates.push(round), { secure });
    exchange.accepting = new Set([3]);
    const [mine, theirs] = memoryPair();
    exchange.watch("p-b", mine);
    return { exchange, theirs, updates };
  }
  const answer = async (channel: Channel): Promise<Message> => decode(await channel.receive(3_000));

  it("keeps a whole, checked masked input of the open round, acknowledges it and reports its sender", async () => {
    const { exchange, theirs, updates } = await exchangeWith(true);
    const words = new Uint8Array(4 * (1 + base.size)).map((_, i) => i);
    const digest = await digestOfWords(words);
    await theirs.send(encode({ type: "peer_masked", round: 3, words, digest }), 1_000);
    expect(await answer(theirs)).toEqual({ type: "peer_ack", round: 3, digest });
    expect(updates).toEqual([3]);
    expect(exchange.holders(3)).toEqual(["p-b"]);
    expect([...(exchange.masked.get(3)?.get("p-b")?.words ?? [])]).toEqual([...words]);
    exchange.forgetBefore(4);
    expect(exchange.holders(3)).toEqual([]);
    exchange.close();
  });

  it("refuses a second masked input of the round from the same peer, keeping the first", async () => {
    const { exchange, theirs, updates } = await exchangeWith(true);
    const first = new Uint8Array(4 * (1 + base.size)).map((_, i) => i);
    const second = new Uint8Array(4 * (1 + base.size)).map((_, i) => 255 - i);
    const digest = await digestOfWords(first);
    await theirs.send(encode({ type: "peer_masked", round: 3, words: first, digest }), 1_000);
    expect(await answer(theirs)).toEqual({ type: "peer_ack", round: 3, digest });
    await theirs.send(encode({ type: "peer_masked", round: 3, words: second, digest: await digestOfWords(second) }), 1_000);
    expect(await answer(theirs)).toEqual({
      type: "error",
      code: "unexpected",
      message: "a masked input of round 3 from this peer arrived already",
      round: 3,
    });
    expect(updates).toEqual([3]);
    const kept = exchange.masked.get(3)?.get("p-b");
    expect(kept?.digest).toBe(digest);
    expect([...(kept?.words ?? [])]).toEqual([...first]);
    exchange.close();
  });

  it("refuses the wrong round, size or digest, and updates in the clear, with an error to the sender", async () => {
    const { exchange, theirs, updates } = await exchangeWith(true);
    const words = new Uint8Array(4 * (1 + base.size));
    const digest = await digestOfWords(words);
    const refused = async (message: Message): Promise<string> => {
      await theirs.send(encode(message), 1_000);
      const reply = await answer(theirs);
      expect(reply).toMatchObject({ type: "error", code: "unexpected" });
      return (reply as { message: string }).message;
    };
    expect(await refused({ type: "peer_masked", round: 2, words, digest })).toBe("round 2 is not open here");
    const short = words.subarray(4);
    expect(await refused({ type: "peer_masked", round: 3, words: short, digest: await digestOfWords(short) })).toBe(
      `a masked input of round 3 is ${1 + base.size} words`,
    );
    const odd = new Uint8Array(4 * (1 + base.size) + 2);
    expect(await refused({ type: "peer_masked", round: 3, words: odd, digest: await digestOfWords(odd) })).toMatch(/whole 32-bit words/);
    expect(await refused({ type: "peer_masked", round: 3, words, digest: "0".repeat(64) })).toMatch(/digest does not match/);
    const update = { type: "peer_update", round: 3, num_samples: 1, weights: base, digest: await digestOf(base), metrics: {} } as const;
    expect(await refused(update)).toMatch(/updates travel masked/);
    expect(updates).toEqual([]);
    expect(exchange.holders(3)).toEqual([]);
    exchange.close();
    // a task without secure aggregation takes no masked input
    const plain = await exchangeWith(false);
    await plain.theirs.send(encode({ type: "peer_masked", round: 3, words, digest }), 1_000);
    expect(await answer(plain.theirs)).toMatchObject({ type: "error", message: expect.stringMatching(/does not use secure aggregation/) });
    plain.exchange.close();
  });
});
