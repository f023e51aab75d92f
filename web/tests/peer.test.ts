/**
 * `PeerClient`: browser peers of a decentralized session over in-memory channels, paced by a port
 * of the Python server (`FakeSession`) or by a script — full rounds agreeing bit for bit, a late
 * joiner fetching the round's model, invalid updates refused, a peer dropping during the
 * exchange, the refusal of rules other than "mean", and sparse mixing.
 */

import { describe, expect, it } from "vitest";
import { combineMean } from "../src/core/aggregation/mean";
import { MemoryConnector, MemoryHub } from "../src/core/decentralized/connector";
import { digestOf } from "../src/core/decentralized/exchange";
import {
  PeerClient,
  combineRound,
  peerRefusal,
  type PeerClientEvent,
  type PeerClientOptions,
  type PeerTrainFn,
  type PeersEvent,
  type PeerStatusEvent,
} from "../src/core/decentralized/peer";
import { StoppedError } from "../src/core/errors";
import { decode, encode, type Message, type PeerUpdate, type RoundPlan, type Welcome } from "../src/core/protocol";
import type { Channel } from "../src/core/transport/channel";
import { Weights } from "../src/core/weights";
import { FakeSession, scriptedServer, shifted, type Graph } from "./peer-helpers";

const base = new Weights(
  ["dense.kernel", "dense.bias"],
  [[2, 2], [2]],
  [new Float32Array([0.1, -0.2, 0.3, 0.4]), new Float32Array([0.05, -0.05])],
);

/** Training that adds `delta` to every weight, on `numSamples` samples. */
const trainBy =
  (delta: number, numSamples: number): PeerTrainFn =>
  async (_round, weights) => ({ weights: shifted(weights, delta), numSamples, metrics: { train_loss: 0.5, train_accuracy: 0.75 } });

/** The trained update as `combineMean` takes it. */
const trained = (participant: string, from: Weights, delta: number, numSamples: number) => ({
  participant,
  weights: shifted(from, delta),
  numSamples,
});

interface TestPeer {
  client: PeerClient;
  events: PeerClientEvent[];
  logs: () => string[];
}

function makePeer(id: string, open: () => Promise<Channel>, hub: MemoryHub, options: Partial<PeerClientOptions> = {}): TestPeer {
  const events: PeerClientEvent[] = [];
  const client = new PeerClient({
    serverUrl: "http://disco.test",
    taskId: "peers",
    name: id,
    aggregation: { rule: "mean", max_share: 0.5 },
    train: trainBy(0.25, 10),
    reference: base,
    initialModel: async () => ({ weights: base, digest: await base.digest() }),
    openServer: open,
    connector: (me, onChannel) => new MemoryConnector(me, onChannel, hub),
    onEvent: (e) => events.push(e),
    waitForOthersMs: 10_000,
    slackMs: 2_000,
    ...options,
  });
  const logs = (): string[] => events.filter((e) => e.kind === "log").map((e) => (e as { message: string }).message);
  return { client, events, logs };
}

async function waitFor(condition: () => boolean, what = "condition", ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The next frame on a raw peer channel, decoded. */
const frame = async (channel: Channel): Promise<Message> => decode(await channel.receive(3_000));

describe("PeerClient with other browser peers", () => {
  it("trains a full round with two peers, ending every round with bit-identical models", async () => {
    const session = new FakeSession(await base.digest(), { minParticipants: 2 });
    const hub = new MemoryHub();
    const a = makePeer("a", session.open, hub, { train: trainBy(0.25, 30) });
    const b = makePeer("b", session.open, hub, { train: trainBy(-0.125, 10) });
    const [ra, rb] = await Promise.all([a.client.run(2), b.client.run(2)]);

    const r1 = combineMean(base, [trained("a", base, 0.25, 30), trained("b", base, -0.125, 10)], 0.5);
    const r2 = combineMean(r1, [trained("a", r1, 0.25, 30), trained("b", r1, -0.125, 10)], 0.5);
    expect(ra.weights.equals(rb.weights)).toBe(true);
    expect(ra.weights.equals(r2)).toBe(true);
    expect(ra.rounds).toBe(2);
    // the server saw digests only, the same from both, round after round
    expect(session.closed.map((c) => c.round)).toEqual([0, 1]);
    expect([...session.closed[0]!.digests.values()]).toEqual([await r1.digest(), await r1.digest()]);
    expect(session.closed[1]!.agreed).toBe(await r2.digest());
    expect(session.closed[1]!.contributors).toEqual(["a", "b"]);
    // the protocol as the Python peer speaks it
    expect(session.messages("a", "hello")[0]!.capabilities).toEqual(["decentralized"]);
    expect(session.messages("a", "hello")[0]!.kind).toBe("browser");
    expect(session.messages("b", "ready").map((m) => m.connected)).toEqual([["a"], ["a"]]);
    expect(session.messages("a", "received").map((m) => [m.round, m.peers])).toEqual([
      [0, ["b"]],
      [1, ["b"]],
    ]);
    expect(session.messages("a", "digest").map((m) => m.round)).toEqual([0, 1]);
    expect(session.messages("a", "leave")).toHaveLength(1);
    expect((session.sent.get("a") ?? []).some((m) => (m.type as string) === "update")).toBe(false);
    // traffic and timings
    expect(ra.bytesToPeers).toBeGreaterThan(2 * 24 * 4);
    expect(ra.bytesFromPeers).toBeGreaterThan(2 * 24 * 4);
    expect(ra.timings.map((t) => [t.round, t.neighbours, t.contributors])).toEqual([
      [0, 1, 2],
      [1, 1, 2],
    ]);
    expect(ra.timings[1]!.digest).toBe(await r2.digest());
    // what a display sees: the round's peers and their channels, the phases
    const peers = a.events.filter((e): e is PeersEvent => e.kind === "peers");
    expect(peers.at(-1)?.peers).toEqual([{ id: "b", name: "b", kind: "browser", state: "connected" }]);
    expect(peers.at(-1)?.members).toBe(2);
    const states = a.events.filter((e): e is PeerStatusEvent => e.kind === "status").map((e) => e.state);
    for (const s of ["connecting", "connecting_peers", "training", "exchanging", "combining", "done"]) expect(states).toContain(s);
    expect(a.events.filter((e) => e.kind === "sent")).toHaveLength(2);
    session.stop();
  });

  it("lets a late joiner fetch the round's model from a peer and agree with the others after its first round", async () => {
    const session = new FakeSession(await base.digest(), { minParticipants: 2 });
    const hub = new MemoryHub();
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: PeerTrainFn = async (round, weights, signal, k) => {
      if (round === 0) await gate; // round 0 goes on until the late joiner is in
      return trainBy(0.25, 20)(round, weights, signal, k);
    };
    const a = makePeer("a", session.open, hub, { train: slow });
    const b = makePeer("b", session.open, hub, { train: trainBy(0.5, 20) });
    const runs = [a.client.run(2), b.client.run(2)];
    await waitFor(() => a.events.some((e) => e.kind === "model"), "round 0 under way");
    const c = makePeer("c", session.open, hub, { train: trainBy(-0.25, 20) });
    const late = c.client.run(1);
    await waitFor(() => session.peers.has("c"), "the late joiner is in");
    release();
    const [ra, rb, rc] = await Promise.all([...runs, late]);

    const r1 = combineMean(base, [trained("a", base, 0.25, 20), trained("b", base, 0.5, 20)], 0.5);
    const r2 = combineMean(r1, [trained("a", r1, 0.25, 20), trained("b", r1, 0.5, 20), trained("c", r1, -0.25, 20)], 0.5);
    expect(ra!.weights.equals(r2)).toBe(true);
    expect(rb!.weights.equals(r2)).toBe(true);
    expect(rc!.weights.equals(r2)).toBe(true);
    expect(rc!.rounds).toBe(1);
    expect(c.logs().some((l) => /got the round's model from peer [ab]/.test(l))).toBe(true);
    expect(rc!.timings[0]!.round).toBe(1);
    expect(session.closed[1]!.contributors).toEqual(["a", "b", "c"]);
    expect(new Set(session.closed[1]!.digests.values()).size).toBe(1);
    session.stop();
  });

  it("sits a round out when the model a peer sends is not the round's (digest checked)", async () => {
    const server = scriptedServer();
    const hub = new MemoryHub();
    // peer "a" answers every model request with another model (whose own digest is right)
    const other = shifted(base, 1);
    const liar = new MemoryConnector("a", (_, channel) => void answer(channel), hub);
    const answer = async (channel: Channel): Promise<void> => {
      const request = await frame(channel);
      if (request.type !== "model_request") return;
      await channel.send(encode({ type: "model", round: request.round, weights: other, digest: await other.digest() }), 1000);
    };
    const c = makePeer("c", server.open, hub);
    const run = c.client.run(1);
    await server.next("hello");
    server.deliver({ type: "welcome", client_id: "c", task_id: "peers", round: 1, participants: 2, min_participants: 2, state: "enough_participants", capabilities: ["decentralized"] });
    const agreed = await shifted(base, 0.5).digest();
    server.deliver({
      type: "plan",
      round: 1,
      peers: [{ id: "a", name: "A", kind: "python", weight: 0.5 }],
      members: 2,
      topology: "all_to_all",
      self_weight: 0.5,
      digest: agreed,
      model_from: "a",
      connect_s: 2,
      exchange_s: 2,
    });
    await liar.connect("c", 2_000); // "a" < "c": a opens
    await waitFor(() => c.logs().some((l) => l.includes("cannot get the round's model")), "sat out");
    expect(c.logs().find((l) => l.includes("cannot get the round's model"))).toMatch(/the model from a is not the round's model/);
    expect(server.received.some((m) => m.type === "digest")).toBe(false);
    expect(c.client.weights?.equals(base)).toBe(true); // nothing taken
    expect(c.client.roundsDone).toBe(0);
    c.client.stop();
    await expect(run).rejects.toBeInstanceOf(StoppedError);
    liar.close();
  });

  it("refuses invalid updates (digest, NaN, shapes, round) without changing anything, then combines the valid one", async () => {
    const server = scriptedServer();
    const hub = new MemoryHub();
    let raw: Channel | null = null;
    const a = new MemoryConnector("a", (_, channel) => (raw = channel), hub);
    const b = makePeer("b", server.open, hub, { train: trainBy(-0.5, 10) });
    const run = b.client.run(1);
    const hello = await server.next("hello");
    expect(hello.capabilities).toEqual(["decentralized"]);
    server.deliver({ type: "welcome", client_id: "b", task_id: "peers", round: 0, participants: 2, min_participants: 2, state: "enough_participants", capabilities: ["decentralized"] });
    const plan: RoundPlan = {
      type: "plan",
      round: 0,
      peers: [{ id: "a", name: "A", kind: "python", weight: 0.5 }],
      members: 2,
      topology: "all_to_all",
      self_weight: 0.5,
      digest: await base.digest(),
      connect_s: 3,
      exchange_s: 3,
    };
    server.deliver(plan);
    const channel = await a.connect("b", 2_000);
    expect(raw).toBe(channel); // the opener's end goes to onChannel too (its reader starts there)
    expect((await server.next("ready")).connected).toEqual(["a"]);
    server.deliver({ type: "exchange", round: 0, peers: ["a", "b"] });
    const theirs = await frame(channel);
    expect(theirs.type).toBe("peer_update");
    const update = theirs as PeerUpdate;
    expect(update.digest).toBe(await update.weights.digest());
    expect(update.num_samples).toBe(10);
    expect(update.metrics).toEqual({ train_loss: 0.5, train_accuracy: 0.75 });
    await channel.send(encode({ type: "peer_ack", round: 0, digest: update.digest }), 1000);

    const good = shifted(base, 0.25);
    const digest = await good.digest();
    const nan = good.map((v, name) => (name === "dense.bias" ? new Float32Array([Number.NaN, 0]) : v));
    const wrongShape = new Weights(["dense.kernel"], [[4]], [new Float32Array(4)]);
    const far = shifted(base, 256); // the mean takes changes below 256 only
    const bad: [PeerUpdate, RegExp][] = [
      [{ type: "peer_update", round: 0, num_samples: 5, weights: good, digest: "0".repeat(64), metrics: {} }, /digest does not match/],
      [{ type: "peer_update", round: 0, num_samples: 5, weights: nan, digest: await nan.digest(), metrics: {} }, /NaN or infinite/],
      [{ type: "peer_update", round: 0, num_samples: 5, weights: wrongShape, digest: await wrongShape.digest(), metrics: {} }, /update/],
      [{ type: "peer_update", round: 3, num_samples: 5, weights: good, digest, metrics: {} }, /round 3 is not open here/],
      [
        { type: "peer_update", round: 0, num_samples: 5, weights: far, digest: await far.digest(), metrics: {} },
        /^a value changed by 256 in one round; the mean takes less than 256$/,
      ],
    ];
    for (const [message, why] of bad) {
      await channel.send(encode(message), 1000);
      const refusal = await frame(channel);
      expect(refusal.type).toBe("error");
      expect((refusal as { message: string }).message).toMatch(why);
    }
    expect(server.received.some((m) => m.type === "received")).toBe(false); // nothing held yet
    await channel.send(encode({ type: "peer_update", round: 0, num_samples: 5, weights: good, digest, metrics: {} }), 1000);
    expect(await frame(channel)).toEqual({ type: "peer_ack", round: 0, digest });
    expect((await server.next("received")).peers).toEqual(["a"]);
    server.deliver({ type: "combine", round: 0, peers: ["a", "b"] });
    const expected = combineMean(base, [{ participant: "a", weights: good, numSamples: 5 }, trained("b", base, -0.5, 10)], 0.5);
    expect((await server.next("digest")).digest).toBe(await expected.digest());
    const result = await run;
    expect(result.weights.equals(expected)).toBe(true);
    a.close();
  });

  it("completes the round on Combine when a peer drops during the exchange", async () => {
    const session = new FakeSession(await base.digest(), { minParticipants: 3 });
    const hub = new MemoryHub();
    const a = makePeer("a", session.open, hub, { train: trainBy(0.25, 10) });
    const b = makePeer("b", session.open, hub, { train: trainBy(0.75, 10) });
    let c: TestPeer | null = null;
    c = makePeer("c", session.open, hub, {
      train: trainBy(-1, 10),
      onEvent: (e) => {
        if (e.kind === "status" && e.state === "exchanging") c?.client.stop(); // gone before its update leaves
      },
    });
    const dropped = c.client.run(1).then(
      () => null,
      (exc: unknown) => exc,
    );
    const [ra, rb] = await Promise.all([a.client.run(1), b.client.run(1)]);
    expect(await dropped).toBeInstanceOf(StoppedError);
    const expected = combineMean(base, [trained("a", base, 0.25, 10), trained("b", base, 0.75, 10)], 0.5);
    expect(ra.weights.equals(expected)).toBe(true);
    expect(rb.weights.equals(expected)).toBe(true);
    expect(session.closed[0]!.contributors).toEqual(["a", "b"]);
    session.stop();
  });

  it("combines what every peer holds when a silent peer misses the exchange deadline", async () => {
    const session = new FakeSession(await base.digest(), { minParticipants: 3, exchangeMs: 300, combineMs: 300 });
    const hub = new MemoryHub();
    const a = makePeer("a", session.open, hub, { train: trainBy(0.25, 10) });
    const b = makePeer("b", session.open, hub, { train: trainBy(0.75, 10) });
    const hang: PeerTrainFn = (_r, _w, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error)));
    const c = makePeer("c", session.open, hub, { train: hang });
    const silent = c.client.run(1);
    const [ra, rb] = await Promise.all([a.client.run(1), b.client.run(1)]);
    const expected = combineMean(base, [trained("a", base, 0.25, 10), trained("b", base, 0.75, 10)], 0.5);
    expect(ra.weights.equals(expected) && rb.weights.equals(expected)).toBe(true);
    expect(session.closed).toHaveLength(0); // (the round closes at combine_s without c's digest)
    await waitFor(() => session.closed.length === 1, "round closed");
    expect(session.closed[0]!.contributors).toEqual(["a", "b"]);
    c.client.stop();
    await expect(silent).rejects.toBeInstanceOf(StoppedError);
    session.stop();
  });
});

describe("PeerClient and its server", () => {
  const welcome = (id: string, round = 0): Welcome => ({
    type: "welcome", client_id: id, task_id: "peers", round, participants: 2, min_participants: 2, state: "enough_participants", capabilities: ["decentralized"],
  });

  it("resyncs: fetches the agreed model from the named peer and reports its digest", async () => {
    const server = scriptedServer();
    const hub = new MemoryHub();
    const agreed = shifted(base, 0.5);
    const holder = new MemoryConnector("a", (_, channel) => void serve(channel), hub);
    const serve = async (channel: Channel): Promise<void> => {
      const request = await frame(channel);
      if (request.type === "model_request") {
        await channel.send(encode({ type: "model", round: request.round, weights: agreed, digest: await agreed.digest() }), 1000);
      }
    };
    const c = makePeer("c", server.open, hub);
    const run = c.client.run(1);
    await server.next("hello");
    server.deliver(welcome("c", 3));
    server.deliver({ type: "resync", round: 3, digest: await agreed.digest(), peer: "a" });
    const report = await server.next("digest");
    expect(report).toEqual({ type: "digest", round: 2, digest: await agreed.digest() });
    expect(c.client.weights?.equals(agreed)).toBe(true);
    c.client.stop();
    await expect(run).rejects.toBeInstanceOf(StoppedError);
    holder.close();
  });

  it("stops at once, saying so, when the connection to the server ends mid-round", async () => {
    const server = scriptedServer();
    const c = makePeer("c", server.open, new MemoryHub(), { slackMs: 60_000 });
    const run = c.client.run(1);
    await server.next("hello");
    server.deliver(welcome("c"));
    server.deliver({
      type: "plan", round: 0, peers: [{ id: "a", name: "", kind: "python", weight: 0.5 }], members: 2,
      topology: "all_to_all", self_weight: 0.5, digest: await base.digest(), connect_s: 60, exchange_s: 60,
    });
    await waitFor(() => c.events.some((e) => e.kind === "model"), "training started");
    const started = Date.now();
    server.close(1011, "server restart");
    await expect(run).rejects.toThrow(/connection to the server closed while waiting for the server's go-ahead for round 0/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("is refused plainly by a server that will not take it", async () => {
    const server = scriptedServer();
    const c = makePeer("c", server.open, new MemoryHub());
    const run = c.client.run(1);
    await server.next("hello");
    server.deliver({ type: "error", code: "unknown_task", message: "there is no task 'peers' on this server" });
    server.close(4404, "unknown task");
    await expect(run).rejects.toThrow("server refused to join: [unknown_task] there is no task 'peers' on this server");
  });
});

describe("rules and mixing", () => {
  it("keeps the round's model when the updates cannot be combined, as every peer does", async () => {
    const server = scriptedServer();
    const hub = new MemoryHub();
    const b = makePeer("b", server.open, hub, { aggregation: { rule: "mean", max_share: 0.001 } }); // no rule takes this cap
    const run = b.client.run(1);
    await server.next("hello");
    server.deliver({ type: "welcome", client_id: "b", task_id: "peers", round: 0, participants: 1, min_participants: 1, state: "enough_participants", capabilities: ["decentralized"] });
    server.deliver({
      type: "plan", round: 0, peers: [], members: 1, topology: "all_to_all", self_weight: 1, digest: await base.digest(), connect_s: 2, exchange_s: 2,
    });
    expect((await server.next("ready")).connected).toEqual([]);
    server.deliver({ type: "exchange", round: 0, peers: ["b"] });
    server.deliver({ type: "combine", round: 0, peers: ["b"] });
    expect((await server.next("digest")).digest).toBe(await base.digest());
    expect((await run).weights).toBe(base);
    expect(b.logs().some((l) => /the updates could not be combined \(max_share must be from 0.01 to 1/.test(l))).toBe(true);
  });

  it("refuses a task combined with another rule than mean before joining", async () => {
    const server = scriptedServer();
    const c = makePeer("c", server.open, new MemoryHub(), { aggregation: { rule: "median", bucket_size: 1 } });
    await expect(c.client.run(1)).rejects.toThrow(
      "this task combines with median, which the browser cannot do yet; join it with disco train",
    );
    expect(server.connections).toBe(0);
    expect(peerRefusal({ rule: "mean" })).toBe(null);
    expect(peerRefusal({ rule: "krum" })).toMatch(/combines with krum/);
  });

  it("mixes a sparse round in float64, own weight first, then the chosen neighbours in plan order", () => {
    const w = (...values: number[]): Weights => new Weights(["w"], [[values.length]], [new Float32Array(values)]);
    const plan = {
      topology: "sparse" as const,
      peers: [
        { id: "y", name: "", kind: "python" as const, weight: 0.25 },
        { id: "x", name: "", kind: "python" as const, weight: 0.25 },
        { id: "z", name: "", kind: "python" as const, weight: 0.25 },
      ],
    };
    const received = new Map([
      ["x", { weights: w(3, 6, 8), num_samples: 1 }],
      ["y", { weights: w(5, -2, 0), num_samples: 1 }],
      ["z", { weights: w(100, 100, 100), num_samples: 1 }],
    ]);
    // z is not among the updates to combine: the own weight is 1 − 0.25 − 0.25
    const mixed = combineRound(plan, w(0, 0, 0), "me", { weights: w(1, 2, 4), num_samples: 1 }, { peers: ["x", "y", "me"] }, received, null);
    expect([...mixed.get("w")]).toEqual([2.5, 2, 4]); // 0.5·own + 0.25·y + 0.25·x
    // a third: rounding happens once, after the float64 sum
    const third = 1 / 3;
    const plan3 = { topology: "sparse" as const, peers: [{ id: "x", name: "", kind: "python" as const, weight: third }] };
    const r = combineRound(plan3, w(0), "me", { weights: w(0.1) , num_samples: 1 }, { peers: ["x"] }, new Map([["x", { weights: w(0.7), num_samples: 1 }]]), null);
    const own = Math.fround(0.1);
    const theirs = Math.fround(0.7);
    expect(r.get("w")[0]).toBe(Math.fround((1.0 - third) * own + third * theirs));
    // a neighbour whose update did not arrive is left out even if listed
    const gone = combineRound(plan3, w(0), "me", { weights: w(2), num_samples: 1 }, { peers: ["x"] }, new Map(), null);
    expect([...gone.get("w")]).toEqual([2]);
  });

  it("keeps the round's model in an all-to-all round with nothing to combine", () => {
    const plan = { topology: "all_to_all" as const, peers: [] };
    const kept = combineRound(plan, base, "me", { weights: shifted(base, 1), num_samples: 3 }, { peers: [] }, new Map(), 0.5);
    expect(kept).toBe(base);
  });

  it("runs a sparse round: every peer mixes with its neighbours only, and the digests differ", async () => {
    // a path a — b — c: degrees 1, 2, 1; every Metropolis–Hastings weight to a neighbour is 1/3
    const path = (): Graph => ({
      neighbours: new Map([
        ["a", ["b"]],
        ["b", ["a", "c"]],
        ["c", ["b"]],
      ]),
      allToAll: false,
    });
    const session = new FakeSession(await base.digest(), { minParticipants: 3, graph: path });
    const hub = new MemoryHub();
    const deltas = { a: 0.25, b: -0.5, c: 1 } as const;
    const peers = (["a", "b", "c"] as const).map((id) => makePeer(id, session.open, hub, { train: trainBy(deltas[id], 10) }));
    const results = await Promise.all(peers.map((p) => p.client.run(1)));
    const up = (id: "a" | "b" | "c"): Weights => shifted(base, deltas[id]);
    const third = 1.0 / (1 + 2);
    const mix = (own: Weights, ownWeight: number, others: Weights[]): Weights =>
      own.map((values, name) =>
        values.map((x, i) => {
          let m = ownWeight * x;
          for (const o of others) m += third * (o.get(name)[i] as number);
          return m;
        }),
      );
    expect(results[0]!.weights.equals(mix(up("a"), 1.0 - third, [up("b")]))).toBe(true);
    expect(results[1]!.weights.equals(mix(up("b"), 1.0 - (third + third), [up("a"), up("c")]))).toBe(true);
    expect(results[2]!.weights.equals(mix(up("c"), 1.0 - third, [up("b")]))).toBe(true);
    expect(new Set(session.closed[0]!.digests.values()).size).toBe(3);
    expect(session.agreed).toBe(null); // after a sparse round the server names no model
    expect(await digestOf(results[1]!.weights)).toBe(session.closed[0]!.digests.get("b"));
    session.stop();
  });
});
