/**
 * `FederatedClient` in a task with secure aggregation (src/core/client/secure.ts, docs/protocol.md
 * §19) against a fake server (./server-helpers.ts) that runs the real aggregator (`SecureSum`) for
 * three participants: this client and two in-test `SecureParticipant`s. The server computes the
 * new model from the unmasked sum only, and it must be the weighted mean of the three changes
 * within 2^-bits. Then: the update through the pipeline (privacy), an aborted round, keys too late
 * for the roster, refusals that make the client sit a round out, a reconnect before the roster, a
 * round that ends while it trains, stop(), the bounded wait after the masked input, and a Welcome
 * that does not agree on the capability. The client never sends `update`.
 */

import { describe, expect, it } from "vitest";
import { FederatedClient, WaitExpired, type ClientEvent, type TrainFn } from "../src/core/client/federated";
import { ServerError, StoppedError } from "../src/core/errors";
import { privatizeUpdate, subtract } from "../src/core/privacy";
import type { Message, SecureSetup, ServerMessage } from "../src/core/protocol";
import { SecureParticipant, SecureSum, decode, quantize, type RoundSetup } from "../src/core/secure";
import type { PrivacyConfig, SecureAggregationConfig } from "../src/core/task";
import { Weights } from "../src/core/weights";
import { fakeServer, type FakeSocket } from "./server-helpers";

// -- the task and its participants --------------------------------------------------------------

const TASK = "xrays";
const ME = "browser-1"; // between the others in id order: position 2 of 3
const SETTINGS: SecureAggregationConfig = { clip: 1, weight_cap: 1024, threshold: null };

const model = (offset = 0): Weights =>
  new Weights(
    ["dense.kernel", "dense.bias"],
    [[2, 2], [2]],
    [new Float32Array([0.5, -1, 2, 3.25].map((x) => x + offset)), new Float32Array([0.125 + offset, -0.5])],
  );

/** What this client's training adds to each value, and its sample count. */
const DELTA = [0.1, 0.2, -0.3, 0.4, -0.05, 0.6];
const MY_SAMPLES = 20;

/** The two other members: their changes (float32) and sample counts (alice's is capped to 1024). */
const OTHERS = [
  { id: "alice", numSamples: 5000, change: new Float32Array([0.25, -0.5, 0.75, 0.1, -0.9, 0.3]) },
  { id: "zoe", numSamples: 7, change: new Float32Array([-0.3, 0.2, 0.05, -0.6, 0.4, 0.9]) },
];

const addDelta = (w: Weights): Weights => {
  let i = 0;
  return w.map((v) => v.map((x) => x + (DELTA[i++] as number)));
};

// -- the fake server ------------------------------------------------------------------------------

interface Decoded {
  round: number;
  bits: number;
  weightSum: number;
  /** Σ w·x / Σ w, decoded from the sum (float64). */
  mean: Float64Array;
}

/** What the fake server does differently in a round (each returns true when it handled the message). */
interface Twists {
  /** On this client's keys for `round`. */
  keys?: (socket: FakeSocket, round: number, n: number) => boolean;
  /** On this client's shares for `round`. */
  shares?: (socket: FakeSocket, round: number) => boolean;
  /** On this client's masked input for `round`. */
  input?: (socket: FakeSocket, round: number) => boolean;
  /** The roster as sent (e.g. another clip range). */
  setup?: (message: SecureSetup) => SecureSetup;
}

/**
 * A server of a task with secure aggregation: each round, SecureSum over this client's messages
 * and those of the two in-test participants; the new model is G_r + Σ w·x / Σ w.
 */
class SecureServer {
  global = model();
  round = 0;
  readonly decoded: Decoded[] = [];
  readonly errors: unknown[] = [];
  private sum: SecureSum | null = null;
  private setup: RoundSetup | null = null;
  private readonly others = new Map<string, SecureParticipant>();
  private readonly sharesIn = new Map<number, () => void>();
  private readonly sharesPromises = new Map<number, Promise<void>>();

  constructor(
    private readonly twists: Twists = {},
    private readonly capabilities: string[] = ["secure_aggregation"],
  ) {}

  /** Resolves once this client's shares for `round` arrived. */
  sharesArrived(round: number): Promise<void> {
    let promise = this.sharesPromises.get(round);
    if (promise === undefined) {
      promise = new Promise<void>((resolve) => this.sharesIn.set(round, resolve));
      this.sharesPromises.set(round, promise);
    }
    return promise;
  }

  readonly script = (socket: FakeSocket, m: Message, n: number): void => {
    this.handle(socket, m, n).catch((error: unknown) => this.errors.push(error));
  };

  /** The round closes with `weights` (the server's own result, as after the others' round). */
  result(round: number, weights: Weights): ServerMessage {
    return { type: "result", round, weights, contributors: 3, num_samples: 1031, metrics: {} };
  }

  private async handle(socket: FakeSocket, m: Message, n: number): Promise<void> {
    if (m.type === "hello") {
      socket.deliver({
        type: "welcome", client_id: ME, task_id: TASK, round: this.round, weights: this.global, participants: 3,
        min_participants: 3, state: "enough_participants", capabilities: this.capabilities,
      });
    } else if (m.type === "leave") {
      socket.drop(1000);
    } else if (m.type === "secure_keys") {
      if (this.twists.keys?.(socket, m.round, n)) return;
      const sum = new SecureSum(TASK, m.round, { values: 6, clip: SETTINGS.clip, weightCap: SETTINGS.weight_cap });
      this.sum = sum;
      this.others.clear();
      for (const other of OTHERS) {
        const p = await SecureParticipant.create(TASK, m.round, other.id);
        const { cPublic, sPublic } = p.keys();
        sum.addKeys(other.id, cPublic, sPublic);
        this.others.set(other.id, p);
      }
      sum.addKeys(ME, m.c_public, m.s_public);
      const setup = sum.setup();
      this.setup = setup;
      for (const other of OTHERS) {
        const out = await (this.others.get(other.id) as SecureParticipant).share(setup);
        sum.addShares(other.id, out.commitment, out.envelopes);
      }
      const message: SecureSetup = {
        type: "secure_setup", round: setup.round, threshold: setup.threshold, clip: setup.clip, weight_cap: setup.weightCap,
        bits: setup.bits, length: setup.length,
        members: setup.members.map((x) => ({ id: x.id, position: x.position, c_public: x.cPublic, s_public: x.sPublic })),
      };
      socket.deliver(this.twists.setup?.(message) ?? message);
    } else if (m.type === "secure_shares") {
      this.sharesArrived(m.round);
      this.sharesIn.get(m.round)?.();
      if (this.twists.shares?.(socket, m.round)) return;
      const sum = this.sum as SecureSum;
      const setup = this.setup as RoundSetup;
      sum.addShares(ME, m.commitment, new Map(m.envelopes.map((e) => [e.peer, e.data])));
      const senders = [...sum.closeShares()];
      for (const other of OTHERS) {
        const p = this.others.get(other.id) as SecureParticipant;
        await p.receive(sum.inbox(other.id));
        const words = quantize(other.change, Math.min(other.numSamples, setup.weightCap), setup.clip, setup.bits);
        sum.addMasked(other.id, await p.mask(words, senders));
      }
      const envelopes = [...sum.inbox(ME)].map(([peer, data]) => ({ peer, data }));
      socket.deliver({ type: "secure_inbox", round: m.round, senders, envelopes });
    } else if (m.type === "secure_input") {
      if (this.twists.input?.(socket, m.round)) return;
      const sum = this.sum as SecureSum;
      const view = new DataView(m.words.buffer, m.words.byteOffset, m.words.byteLength);
      const words = Uint32Array.from({ length: m.words.byteLength / 4 }, (_, i) => view.getUint32(4 * i, true));
      sum.addMasked(ME, words);
      const { survivors, dropped } = sum.closeMasked();
      for (const other of OTHERS) sum.addReveal(other.id, (this.others.get(other.id) as SecureParticipant).reveal(survivors, dropped));
      socket.deliver({ type: "secure_unmask", round: m.round, survivors: [...survivors], dropped: [...dropped] });
    } else if (m.type === "secure_reveal") {
      const sum = this.sum as SecureSum;
      sum.addReveal(ME, m.shares);
      const { weightSum, values } = decode(await sum.result(), sum.bits);
      const mean = values.map((v) => v / weightSum);
      this.decoded.push({ round: m.round, bits: sum.bits, weightSum, mean });
      let offset = 0;
      this.global = this.global.map((v) => {
        const out = Float32Array.from(v, (x, i) => x + (mean[offset + i] as number));
        offset += v.length;
        return out;
      });
      this.round = m.round + 1;
      socket.deliver(this.result(this.round, this.global));
    } else if (m.type === "update") {
      socket.deliver({ type: "error", code: "unexpected", message: "this task uses secure aggregation", round: this.round });
    }
  }
}

// -- helpers --------------------------------------------------------------------------------------

/** Training that adds `DELTA`; with `gate`, it ends only once the gate opens (e.g. the shares went out). */
function trainer(calls: [number, Weights][], gate?: (round: number) => Promise<void>): TrainFn {
  return async (round, weights) => {
    calls.push([round, weights]);
    await gate?.(round);
    return { weights: addDelta(weights), numSamples: MY_SAMPLES, metrics: { train_loss: 0.5 } };
  };
}

function client(impl: typeof WebSocket, train: TrainFn, events: ClientEvent[], extra = {}): FederatedClient {
  return new FederatedClient({
    serverUrl: "http://example.test/", taskId: TASK, name: "Zoë", train, WebSocketImpl: impl, onEvent: (e) => events.push(e),
    reconnectTimeoutMs: 2_000, secureAggregation: SETTINGS, ...extra,
  });
}

const types = (s: FakeSocket | undefined): string[] => (s?.received ?? []).map((m) => m.type);
const logs = (events: ClientEvent[]): string => events.flatMap((e) => (e.kind === "log" ? [`${e.level}: ${e.message}`] : [])).join("\n");

/** Σ w·x / Σ w of the members' changes (float64), and Σ w. */
function weightedMean(members: { weight: number; change: Float32Array }[]): { mean: Float64Array; weightSum: number } {
  const weightSum = members.reduce((a, m) => a + m.weight, 0);
  const mean = new Float64Array(6);
  for (const m of members) m.change.forEach((x, i) => (mean[i] = (mean[i] as number) + m.weight * x));
  return { mean: mean.map((x) => x / weightSum), weightSum };
}

/** The others' weights and changes, with this client's `change` and `weight`. */
const everyone = (change: Float32Array, weight: number): { weight: number; change: Float32Array }[] => [
  ...OTHERS.map((o) => ({ weight: Math.min(o.numSamples, SETTINGS.weight_cap), change: o.change })),
  { weight, change },
];

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tolerance: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs((got[i] as number) - (want[i] as number))).toBeLessThanOrEqual(tolerance);
}

// -- tests ----------------------------------------------------------------------------------------

describe("FederatedClient with secure aggregation", () => {
  it("takes part in every phase and the server's model is the weighted mean of the changes within 2^-bits", async () => {
    const server = new SecureServer();
    const { impl, sockets } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const events: ClientEvent[] = [];
    // training ends only once the shares went out: the roster is answered at once, while training
    const out = await client(impl, trainer(calls, (r) => server.sharesArrived(r)), events).run(2);

    expect(server.errors).toEqual([]);
    const socket = sockets[0] as FakeSocket;
    expect(sockets).toHaveLength(1);
    expect(types(socket)).toEqual([
      "hello",
      ...["secure_keys", "secure_shares", "secure_input", "secure_reveal"],
      ...["secure_keys", "secure_shares", "secure_input", "secure_reveal"],
      "leave",
    ]);
    expect(socket.received[0]).toMatchObject({ type: "hello", capabilities: ["secure_aggregation"] });
    expect(calls.map(([r]) => r)).toEqual([0, 1]);

    // round 0: the server learnt only the sum, and its mean is the weighted mean of the changes
    const G0 = model();
    const mine = subtract(addDelta(G0), G0).flatten();
    const want = weightedMean(everyone(mine, MY_SAMPLES));
    const [first, second] = server.decoded as [Decoded, Decoded];
    expect(first.bits).toBe(19); // 3 members × weight cap 1024 × clip 1
    expect(first.weightSum).toBe(1024 + 7 + 20);
    expectClose(first.mean, want.mean, 2 ** -first.bits);
    // the model round 1 opened with, as the client received it: G_0 + the mean change
    const G1 = calls[1]?.[1] as Weights;
    expectClose(G1.flatten(), G0.flatten().map((x, i) => x + (want.mean[i] as number)), 2 ** -first.bits);
    // round 1 from G_1
    const mine1 = subtract(addDelta(G1), G1).flatten();
    expectClose(second.mean, weightedMean(everyone(mine1, MY_SAMPLES)).mean, 2 ** -second.bits);
    expect(out.weights.equals(server.global)).toBe(true);

    const sent = events.filter((e) => e.kind === "sent");
    expect(sent).toEqual([
      { kind: "sent", round: 0, numSamples: 20 },
      { kind: "sent", round: 1, numSamples: 20 },
    ]);
    const text = logs(events);
    expect(text).toMatch(/info: your round 1 of 2: secure round of 3 members; shares sent/);
    expect(text).toMatch(/info: your round 1 of 2: masked update sent; waiting for others/);
    expect(text).toMatch(/your round 2 of 2 done: the shared model has been trained for 2 rounds/);
    expect(text).not.toMatch(/warn|error/);
    const states = events.flatMap((e) => (e.kind === "status" ? [e.state] : []));
    expect(states).toContain("training");
    expect(states).toContain("sending_update");
    expect(states.at(-1)).toBe("done");
  });

  it("sends the update through the pipeline: privacy clips it (and sends weight 1) before it is masked", async () => {
    const server = new SecureServer();
    const { impl, sockets } = fakeServer(server.script);
    const privacy: PrivacyConfig = { clipping_radius: 0.05, noise_multiplier: 0 };
    const events: ClientEvent[] = [];
    await client(impl, trainer([]), events, { privacy }).run(1);

    expect(server.errors).toEqual([]);
    expect(types(sockets[0])).not.toContain("update");
    const G0 = model();
    const clipped = subtract(privatizeUpdate(G0, addDelta(G0), privacy), G0).flatten();
    const [decoded] = server.decoded as [Decoded];
    expect(decoded.weightSum).toBe(1024 + 7 + 1); // no sample count leaves with privacy on
    expectClose(decoded.mean, weightedMean(everyone(clipped, 1)).mean, 2 ** -decoded.bits);
    expect(logs(events)).toMatch(/privacy: update size [0-9.]+, clipped to L2 norm ≤ 0.05; no noise/);
  });

  it("starts the next round from the same shared model when the server aborts one", async () => {
    const server = new SecureServer({
      shares: (socket, round) => {
        if (round !== 0) return false;
        server.round = 1;
        socket.deliver({ type: "secure_abort", round: 0, reason: "only 2 members sent their shares; unmasking needs 3" });
        return true;
      },
    });
    const { impl, sockets } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(calls), events).run(2);

    expect(server.errors).toEqual([]);
    expect(types(sockets[0])).toEqual([
      "hello",
      "secure_keys", "secure_shares", // round 0, aborted
      "secure_keys", "secure_shares", "secure_input", "secure_reveal", // round 1
      "leave",
    ]);
    expect(sockets[0]?.received[3]).toMatchObject({ type: "secure_keys", round: 1 });
    expect(calls.map(([r]) => r)).toEqual([0, 1]);
    expect(calls[1]?.[1].equals(model())).toBe(true); // the same model, one round on
    expect(events).toContainEqual({ kind: "aborted", round: 0, reason: "only 2 members sent their shares; unmasking needs 3" });
    expect(logs(events)).toMatch(
      /warn: your round 1 of 2: the round was aborted \(only 2 members sent their shares; unmasking needs 3\); the next one starts from the same shared model/,
    );
    const [decoded] = server.decoded as [Decoded];
    expect(decoded.round).toBe(1);
    expect(out.weights.equals(server.global)).toBe(true);
  });

  it("sits the round out when its keys come too late for the roster, and takes the next result", async () => {
    const next = model(3);
    const server = new SecureServer({
      keys: (socket, round) => {
        const text = `the keys phase of round ${round} is over: this round goes on without you; take part from the next round`;
        socket.deliver({ type: "error", code: "stale", message: text, round });
        setTimeout(() => socket.deliver(server.result(round + 1, next)), 20);
        return true;
      },
    });
    const { impl, sockets } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(calls), events).run(1);

    expect(server.errors).toEqual([]);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "leave"]);
    expect(calls.map(([r]) => r)).toEqual([0]); // it trained all the same
    expect(out.weights.equals(next)).toBe(true);
    expect(logs(events)).toMatch(
      /warn: your round 1 of 1: \[stale\] the keys phase of round 0 is over: .*; this round goes on without you, you take part from the next one/,
    );
    expect(events.some((e) => e.kind === "sent")).toBe(false);
  });

  it("sits a round out, revealing nothing, when the roster is not the task's or the server refuses a message", async () => {
    const next = model(5);
    // a roster with another clip range: the client refuses to share in it
    const wrongClip = new SecureServer({ setup: (m) => ({ ...m, clip: 2, bits: 18 }) });
    const first = fakeServer(wrongClip.script);
    const events: ClientEvent[] = [];
    const running = client(first.impl, trainer([]), events).run(1);
    await until(() => /not the task's/.test(logs(events)));
    first.sockets[0]?.deliver(wrongClip.result(1, next));
    expect((await running).weights.equals(next)).toBe(true);
    expect(types(first.sockets[0])).toEqual(["hello", "secure_keys", "leave"]);
    expect(logs(events)).toMatch(
      /warn: your round 1 of 1: secure aggregation refused the round: the server's clip range and weight cap are not the task's; this round goes on without you/,
    );

    // its shares refused: it sends no masked input, and waits for the round's end
    const refusing = new SecureServer({
      shares: (socket, round) => {
        socket.deliver({ type: "error", code: "unexpected", message: "an envelope is missing", round });
        setTimeout(() => socket.deliver(refusing.result(round + 1, next)), 20);
        return true;
      },
    });
    const second = fakeServer(refusing.script);
    const more: ClientEvent[] = [];
    expect((await client(second.impl, trainer([]), more).run(1)).weights.equals(next)).toBe(true);
    expect(types(second.sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "leave"]);
    expect(logs(more)).toMatch(/warn: your round 1 of 1: \[unexpected\] an envelope is missing; this round goes on without you/);
  });

  it("sends fresh keys when it reconnects before the roster is fixed", async () => {
    const server = new SecureServer({
      keys: (socket, _round, n) => {
        if (n === 0) socket.drop(); // the first connection drops as its keys arrive
        return n === 0;
      },
    });
    const { impl, sockets } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer([]), events).run(1);

    expect(server.errors).toEqual([]);
    expect(sockets).toHaveLength(2);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys"]);
    expect(types(sockets[1])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input", "secure_reveal", "leave"]);
    const keys = (s: FakeSocket | undefined) => s?.received.find((m) => m.type === "secure_keys") as { c_public: Uint8Array };
    expect(keys(sockets[1]).c_public).not.toEqual(keys(sockets[0]).c_public);
    expect(out.weights.equals(server.global)).toBe(true);
    expect(logs(events)).toMatch(/warn: connection lost/);
  });

  it("takes a round that ends while it trains once its training is done, never training two rounds at once", async () => {
    const next = model(2);
    const server = new SecureServer({
      keys: (socket, round) => {
        if (round !== 0) return false;
        server.round = 1;
        server.global = next;
        socket.deliver(server.result(1, next)); // the others' round closed without this client
        return true;
      },
    });
    const { impl, sockets } = fakeServer(server.script);
    let active = 0;
    let most = 0;
    const calls: [number, Weights][] = [];
    const slow: TrainFn = async (round, weights) => {
      calls.push([round, weights]);
      most = Math.max(most, ++active);
      await new Promise((resolve) => setTimeout(resolve, 50));
      active -= 1;
      return { weights: addDelta(weights), numSamples: MY_SAMPLES, metrics: {} };
    };
    const events: ClientEvent[] = [];
    const out = await client(impl, slow, events).run(2);

    expect(server.errors).toEqual([]);
    expect(most).toBe(1);
    expect(calls.map(([r]) => r)).toEqual([0, 1]);
    expect(calls[1]?.[1].equals(next)).toBe(true);
    expect(types(sockets[0])).toEqual([
      "hello", "secure_keys", // round 0 closed while it trained
      "secure_keys", "secure_shares", "secure_input", "secure_reveal", // round 1
      "leave",
    ]);
    expect(out.weights.equals(server.global)).toBe(true);
  });

  it("stops at once when stopped during a secure round", async () => {
    const server = new SecureServer({ input: () => true });
    const { impl } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const c = client(impl, trainer([]), events);
    const run = c.run(1);
    await until(() => /masked update sent/.test(logs(events)));
    c.stop();
    await expect(run).rejects.toThrow(StoppedError);
  });

  it("stops with WaitExpired when the round does not end within waitForOthersMs of its masked input", async () => {
    const server = new SecureServer({ input: () => true }); // the server never asks to unmask
    const { impl, sockets } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const run = client(impl, trainer([]), events, { waitForOthersMs: 150 }).run(1);
    await expect(run).rejects.toThrow(WaitExpired);
    await expect(run).rejects.toMatchObject({ kept: "local", roundsDone: 0, sharedRounds: 0 });
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input"]);
  });

  it("refuses a Welcome that does not agree on secure aggregation, sending nothing", async () => {
    const server = new SecureServer({}, []);
    const { impl, sockets } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const run = client(impl, trainer(calls), []).run(1);
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/runs task xrays without secure aggregation, though its settings here ask for it; nothing was sent/);
    expect(types(sockets[0])).toEqual(["hello"]);
    expect(calls).toEqual([]);
  });

  it("announces no capability in a plain task, and stops if the server sends it a message of secure aggregation", async () => {
    const server = new SecureServer({}, []);
    const { impl, sockets } = fakeServer((socket, m, n) => {
      server.script(socket, m, n);
      if (m.type === "hello") socket.deliver({ type: "secure_abort", round: 0, reason: "nothing agreed" });
    });
    const run = client(impl, trainer([]), [], { secureAggregation: null }).run(1);
    await expect(run).rejects.toThrow(/sent a 'secure_abort' message of secure aggregation, which it did not agree on/);
    expect(sockets[0]?.received[0]).toMatchObject({ type: "hello", capabilities: [] });
  });
});

/** Wait until `condition()` holds (at most 2 s). */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 2 s");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
