/**
 * `FederatedClient` in a task with secure aggregation (src/core/client/secure.ts, docs/protocol.md
 * §19) against a fake server (./server-helpers.ts) that runs the real aggregator (`SecureSum`) for
 * three participants: this client and two in-test `SecureParticipant`s. The server computes the
 * new model from the unmasked sum only, and it must be the weighted mean of the three changes
 * within 2^-bits. Then: the update through the pipeline (privacy), an aborted round, keys too late
 * for the roster, refusals that make the client sit a round out, a reconnect before the roster, a
 * round that ends while it trains, stop(), the bounded wait after the masked input, and a Welcome
 * that does not agree on the capability. The client never sends `update`. Then, as the Python
 * client (src/disco/client/secure.py): nothing trained, sent or counted after stop(), a fatal error
 * that ends the round's training, "unsupported" sat out, the wait counted from the end of training
 * and again from the masked input, an aborted round that is no training of the shared model (also
 * in the app's hooks, app/composables/together.ts), and a member that reconnects after the roster is
 * fixed answering what the server sends again with what it sent before; a server restart (told by
 * `restarting` or close code 1012) after which the round starts afresh with fresh keys, nothing of
 * the abandoned roster answered and the same update masked anew — unless it was asked to unmask a
 * sum with the update in it, which is then never sent into a second sum; and the masked input's memory
 * (one vector for the change, the words sent as a view).
 */

import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Board } from "../src/app/composables/board";
import { federatedHooks } from "../src/app/composables/together";
import { FederatedClient, WaitExpired, type ClientEvent, type TrainFn } from "../src/core/client/federated";
import { changeOf, wordBytes } from "../src/core/client/secure";
import { ServerError, StoppedError } from "../src/core/errors";
import { privatizeUpdate, subtract } from "../src/core/privacy";
import type { Message, SecureSetup, ServerMessage } from "../src/core/protocol";
import { SecureParticipant, SecureSum, decode, quantize, type RoundSetup } from "../src/core/secure";
import type { PrivacyConfig, SecureAggregationConfig, Task } from "../src/core/task";
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
  /** Lose this client's message on connection `n` (true): the connection drops before the server reads it. */
  lose?: (m: Message, n: number) => boolean;
  /** How long the server takes to send this client's inbox after its shares (ms; default at once). */
  inboxDelayMs?: number;
  /**
   * Restart on this client's message on connection `n` instead of reading it: "notice" says so
   * (`ErrorMessage` "restarting") then closes with 1012, "close" only closes with 1012. The round
   * and its model stay; its secure state (keys, roster, shares, inputs) is lost, as a real restart loses it.
   */
  restart?: (m: Message, n: number) => "notice" | "close" | null;
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
  /** Every roster sent to this client, in order. */
  readonly rosters: SecureSetup[] = [];
  private sum: SecureSum | null = null;
  private setup: RoundSetup | null = null;
  private readonly others = new Map<string, SecureParticipant>();
  private readonly sharesIn = new Map<number, () => void>();
  private readonly sharesPromises = new Map<number, Promise<void>>();
  /** The last phase message sent to this client in the open round, sent again when it reconnects (docs/protocol.md §19). */
  private pending: ServerMessage | null = null;

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

  /** Send this client a phase message of the round (kept, to send again after a reconnect). */
  private phase(socket: FakeSocket, m: ServerMessage): void {
    this.pending = m;
    socket.deliver(m);
  }

  private async handle(socket: FakeSocket, m: Message, n: number): Promise<void> {
    const restart = m.type !== "hello" && m.type !== "leave" ? this.twists.restart?.(m, n) : null;
    if (restart) {
      if (restart === "notice") socket.deliver({ type: "error", code: "restarting", message: "the server is restarting" });
      socket.drop(1012, "server restarting");
      [this.sum, this.setup, this.pending] = [null, null, null]; // all the restarted server keeps is the round and its model
      this.others.clear();
      return;
    }
    if (m.type !== "hello" && m.type !== "leave" && this.twists.lose?.(m, n)) {
      socket.drop(); // the message is lost with the connection
      return;
    }
    if (m.type === "hello") {
      socket.deliver({
        type: "welcome", client_id: ME, task_id: TASK, round: this.round, weights: this.global, participants: 3,
        min_participants: 3, state: "enough_participants", capabilities: this.capabilities,
      });
      // a member that reconnects is sent again the phase's message it has not answered
      const pending = this.pending;
      if (pending !== null && "round" in pending && pending.round === this.round) socket.deliver(pending);
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
      this.rosters.push(message);
      this.phase(socket, this.twists.setup?.(message) ?? message);
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
      if (this.twists.inboxDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, this.twists.inboxDelayMs));
      this.phase(socket, { type: "secure_inbox", round: m.round, senders, envelopes });
    } else if (m.type === "secure_input") {
      if (this.twists.input?.(socket, m.round)) return;
      const sum = this.sum as SecureSum;
      const view = new DataView(m.words.buffer, m.words.byteOffset, m.words.byteLength);
      const words = Uint32Array.from({ length: m.words.byteLength / 4 }, (_, i) => view.getUint32(4 * i, true));
      sum.addMasked(ME, words);
      const { survivors, dropped } = sum.closeMasked();
      for (const other of OTHERS) sum.addReveal(other.id, (this.others.get(other.id) as SecureParticipant).reveal(survivors, dropped));
      this.phase(socket, { type: "secure_unmask", round: m.round, survivors: [...survivors], dropped: [...dropped] });
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
      this.pending = null;
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

// -- stopping, waiting and reconnecting as the Python client does ---------------------------------

/** The events after the client said it stopped. */
const afterStop = (events: ClientEvent[]): ClientEvent[] =>
  events.slice(events.findIndex((e) => e.kind === "log" && /^stopped; left the session/.test(e.message)) + 1);

/** A promise that rejects after `ms` (a wait that must end sooner). */
const within = <T>(promise: Promise<T>, ms: number): Promise<T> =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms))]);

describe("FederatedClient with secure aggregation: stop, errors, waiting and reconnecting as Python", () => {
  afterEach(() => vi.restoreAllMocks());

  it("trains nothing and sends no keys when stopped while its keys are made", async () => {
    const server = new SecureServer();
    const { impl, sockets } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const c = client(impl, trainer(calls), []);
    const create = SecureParticipant.create.bind(SecureParticipant);
    vi.spyOn(SecureParticipant, "create").mockImplementation(async (...args) => {
      const made = await create(...args);
      c.stop(); // the keys are made, the client stopped meanwhile
      return made;
    });
    await expect(c.run(1)).rejects.toThrow(StoppedError);
    expect(calls).toEqual([]);
    expect(types(sockets[0])).toEqual(["hello", "leave"]);
  });

  it("trains nothing when stopped as a round begins", async () => {
    const server = new SecureServer();
    const { impl } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    let c: FederatedClient | null = null;
    const events: ClientEvent[] = [];
    c = client(impl, trainer(calls), events, {
      onEvent: (e: ClientEvent) => {
        events.push(e);
        if (e.kind === "status" && e.state === "training") c?.stop();
      },
    });
    await expect(c.run(1)).rejects.toThrow(StoppedError);
    expect(calls).toEqual([]);
  });

  it("goes no further once stopped: no masked input, no sent event, no reconnect", async () => {
    const server = new SecureServer();
    const { impl, sockets } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    let c: FederatedClient | null = null;
    // the privacy noise is drawn in the middle of the masked-input phase: the client stops there
    const random = (words: Uint32Array<ArrayBuffer>): void => {
      c?.stop();
      crypto.getRandomValues(words);
    };
    const privacy: PrivacyConfig = { clipping_radius: 10, noise_multiplier: 0.001 };
    c = client(impl, trainer([]), events, { privacy, random });
    await expect(c.run(1)).rejects.toThrow(StoppedError);
    await new Promise((resolve) => setTimeout(resolve, 50)); // anything still under way would show now

    const after = afterStop(events);
    expect(events.length).toBeGreaterThan(after.length); // it did stop
    expect(after.filter((e) => e.kind === "sent")).toEqual([]);
    expect(after.filter((e) => e.kind === "status" && (e.state === "sending_update" || e.state === "connecting"))).toEqual([]);
    expect(logs(after)).not.toMatch(/masked update sent|connection lost|reconnect/);
    expect(events.some((e) => e.kind === "sent")).toBe(false); // no privacy spend counted
    expect(sockets).toHaveLength(1);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "leave"]);
  });

  it("ends the round's training when the round ends with a fatal error", async () => {
    const server = new SecureServer({
      keys: (socket, round) => {
        socket.deliver({ type: "error", code: "version", message: "this server speaks protocol 9", round });
        return true;
      },
    });
    const { impl } = fakeServer(server.script);
    const signals: AbortSignal[] = [];
    // training that goes on until its signal aborts
    const endless: TrainFn = (_round, _weights, signal) => {
      signals.push(signal);
      return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error)));
    };
    await expect(client(impl, endless, []).run(1)).rejects.toThrow(ServerError);
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
  });

  it("sits the round out on 'unsupported' during the round, as Python does", async () => {
    const next = model(4);
    const server = new SecureServer({
      keys: (socket, round) => {
        socket.deliver({ type: "error", code: "unsupported", message: "'secure_keys' belongs to tasks with secure aggregation", round });
        setTimeout(() => socket.deliver(server.result(round + 1, next)), 20);
        return true;
      },
    });
    const { impl } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer([]), events).run(1);
    expect(out.weights.equals(next)).toBe(true);
    expect(logs(events)).toMatch(/warn: your round 1 of 1: \[unsupported\] 'secure_keys' belongs to .*; this round goes on without you/);
  });

  it("never cuts training short: the wait for the others counts from the end of its training", async () => {
    const server = new SecureServer({ keys: () => true }); // no roster ever comes
    const { impl, sockets } = fakeServer(server.script);
    let trainedAt = 0;
    const slow: TrainFn = async (_round, weights) => {
      await new Promise((resolve) => setTimeout(resolve, 300)); // longer than the wait
      trainedAt = Date.now();
      return { weights: addDelta(weights), numSamples: MY_SAMPLES, metrics: {} };
    };
    const run = client(impl, slow, [], { waitForOthersMs: 200 }).run(1);
    const error = await within(run.catch((e: unknown) => e), 3_000);
    expect(error).toBeInstanceOf(WaitExpired);
    expect(trainedAt).toBeGreaterThan(0); // it trained to the end
    expect(Date.now() - trainedAt).toBeGreaterThanOrEqual(190); // and waited the full wait after
    expect((error as WaitExpired).weights.equals(addDelta(model()))).toBe(true);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys"]);
  }, 10_000);

  it("waits waitForOthersMs again from its masked input", async () => {
    // the inbox comes late but well within the wait (a margin for a loaded machine); no unmask
    const server = new SecureServer({ input: () => true, inboxDelayMs: 300 });
    const { impl, sockets } = fakeServer(server.script);
    let trainedAt = 0;
    const train: TrainFn = async (_round, weights) => {
      trainedAt = Date.now();
      return { weights: addDelta(weights), numSamples: MY_SAMPLES, metrics: {} };
    };
    const events: ClientEvent[] = [];
    const run = client(impl, train, events, { waitForOthersMs: 600 }).run(1);
    await expect(within(run, 5_000)).rejects.toThrow(WaitExpired);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input"]);
    // counted again from the masked input: more than one wait after training ended
    expect(Date.now() - trainedAt).toBeGreaterThanOrEqual(300 + 590);
  }, 10_000);

  it("does not count an aborted round as training of the shared model: WaitExpired keeps the model trained here", async () => {
    const server = new SecureServer({
      shares: (socket, round) => {
        if (round !== 0) return false;
        server.round = 1;
        socket.deliver({ type: "secure_abort", round: 0, reason: "only 2 members sent their shares; unmasking needs 3" });
        return true;
      },
      keys: (_socket, round) => round === 1, // round 1 never gets a roster
    });
    const { impl } = fakeServer(server.script);
    const calls: [number, Weights][] = [];
    const run = client(impl, trainer(calls), [], { waitForOthersMs: 150 }).run(2);
    const error = await within(run.catch((e: unknown) => e), 3_000);
    expect(error).toBeInstanceOf(WaitExpired);
    expect(error).toMatchObject({ kept: "local", roundsDone: 1, sharedRounds: 0 });
    expect(calls.map(([r]) => r)).toEqual([0, 1]);
    // the model trained here in round 1 (from G_0), not the round's untrained model
    expect((error as WaitExpired).weights.equals(addDelta(model()))).toBe(true);
    expect((error as WaitExpired).message).toMatch(/keep the model trained on your data \(nothing was combined yet\)/);
  }, 10_000);

  it("the app records no global model for the round an abort opened, and trains nothing once its signal aborted", async () => {
    const catalog = JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[];
    const task = catalog.find((c) => c.task.training.scheme === "federated")?.task as Task;
    const board = { rounds: 2, sharedRound: null } as unknown as Board;
    const globals: [number, Weights][] = [];
    const trainOn = vi.fn(async (weights: Weights) => ({ weights: addDelta(weights), history: [] }));
    const hooks = federatedHooks({ task, board, trainOn, numSamples: MY_SAMPLES, log: () => undefined, onGlobal: (r, w) => void globals.push([r, w]) });

    // already stopped: nothing is trained, no model recorded
    await expect(hooks.train(0, model(), AbortSignal.abort(new StoppedError("stopped")))).rejects.toThrow(StoppedError);
    expect(trainOn).not.toHaveBeenCalled();
    expect(globals).toEqual([]);

    // round 0 aborted, round 1 combined
    const server = new SecureServer({
      shares: (socket, round) => {
        if (round !== 0) return false;
        server.round = 1;
        socket.deliver({ type: "secure_abort", round: 0, reason: "too few members" });
        return true;
      },
    });
    const { impl } = fakeServer(server.script);
    const c = new FederatedClient({
      serverUrl: "http://example.test/", taskId: TASK, WebSocketImpl: impl, secureAggregation: SETTINGS, reconnectTimeoutMs: 2_000,
      train: hooks.train, onEvent: hooks.onEvent,
    });
    const out = await c.run(2);
    expect(server.errors).toEqual([]);
    expect(trainOn).toHaveBeenCalledTimes(2);
    // the Welcome's model (round 0) and round 1's result (round 2): not the same model again as round 1's
    expect(globals.map(([r]) => r)).toEqual([0, 2]);
    expect(globals[1]?.[1].equals(out.weights)).toBe(true);
    expect(board.sharedRound).toBe(2);
  });

  describe("keeps its part when it reconnects after the roster is fixed, answering what the server sends again", () => {
    const reconnecting = async (lost: Message["type"]) => {
      const server = new SecureServer({ lose: (m, n) => n === 0 && m.type === lost });
      const { impl, sockets } = fakeServer(server.script);
      const events: ClientEvent[] = [];
      const out = await within(client(impl, trainer([]), events, { waitForOthersMs: 1_000 }).run(1), 5_000);
      expect(server.errors).toEqual([]);
      expect(sockets).toHaveLength(2);
      const first = sockets[0]?.received.find((m) => m.type === lost);
      const again = sockets[1]?.received.find((m) => m.type === lost);
      expect(again).toEqual(first); // the same message again
      expect(logs(events)).toMatch(/warn: connection lost/);
      expect(logs(events)).not.toMatch(/goes on without you/);
      // this client's update is in the round's sum
      const [decoded] = server.decoded as [Decoded];
      expect(decoded.weightSum).toBe(1024 + 7 + MY_SAMPLES);
      expect(out.weights.equals(server.global)).toBe(true);
      expect(events.filter((e) => e.kind === "sent")).toHaveLength(1); // a resend is no new privacy spend
      return { first: types(sockets[0]), second: types(sockets[1]) };
    };

    it("its shares, after the roster is sent again", async () => {
      const { first, second } = await reconnecting("secure_shares");
      expect(first).toEqual(["hello", "secure_keys", "secure_shares"]);
      expect(second).toEqual(["hello", "secure_shares", "secure_input", "secure_reveal", "leave"]);
    });

    it("its masked input, after its inbox is sent again", async () => {
      const { first, second } = await reconnecting("secure_input");
      expect(first).toEqual(["hello", "secure_keys", "secure_shares", "secure_input"]);
      expect(second).toEqual(["hello", "secure_input", "secure_reveal", "leave"]);
    });

    it("its reveal for the same split, after the unmask request is sent again", async () => {
      const { first, second } = await reconnecting("secure_reveal");
      expect(first).toEqual(["hello", "secure_keys", "secure_shares", "secure_input", "secure_reveal"]);
      expect(second).toEqual(["hello", "secure_reveal", "leave"]);
    });
  });
});

describe("FederatedClient with secure aggregation: a server restart", () => {
  const keysOf = (setup: SecureSetup | undefined): Uint8Array[] => (setup?.members ?? []).flatMap((m) => [m.c_public, m.s_public]);

  /** The server restarts on this client's `at` message of round 0 (connection 0), saying so or only closing with 1012. */
  const restarted = async (at: Message["type"], how: "notice" | "close") => {
    const server = new SecureServer({ restart: (m, n) => (n === 0 && m.type === at ? how : null) });
    const { impl, sockets } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const privacy: PrivacyConfig = { clipping_radius: 0.05, noise_multiplier: 0 };
    const out = await within(client(impl, trainer([]), events, { privacy, waitForOthersMs: 1_000 }).run(1), 5_000);
    expect(server.errors).toEqual([]);
    expect(sockets).toHaveLength(2);
    // the second connection starts the round afresh: new keys, and every phase again
    expect(types(sockets[1])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input", "secure_reveal", "leave"]);
    const keys = (s: FakeSocket | undefined) => s?.received.find((m) => m.type === "secure_keys") as { c_public: Uint8Array; s_public: Uint8Array };
    const [before, after] = [keys(sockets[0]), keys(sockets[1])];
    expect(after.c_public).not.toEqual(before.c_public);
    expect(after.s_public).not.toEqual(before.s_public);
    // this client's update is in the sum of the new roster: the same update, through the pipeline once
    const G0 = model();
    const clipped = subtract(privatizeUpdate(G0, addDelta(G0), privacy), G0).flatten();
    const [decoded] = server.decoded as [Decoded];
    expect(server.decoded).toHaveLength(1);
    expect(decoded.weightSum).toBe(1024 + 7 + 1);
    expectClose(decoded.mean, weightedMean(everyone(clipped, 1)).mean, 2 ** -decoded.bits);
    expect(out.weights.equals(server.global)).toBe(true);
    expect(events.filter((e) => e.kind === "sent")).toHaveLength(1); // one update, one privacy spend
    expect(logs(events).match(/privacy: update size/g)).toHaveLength(1);
    expect(logs(events)).not.toMatch(/goes on without you/);
    return { server, sockets, events };
  };

  it("after the roster: it drops it and shares again under a new roster with fresh keys", async () => {
    const { server, sockets, events } = await restarted("secure_shares", "notice");
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares"]);
    // two rosters of round 0, of the same members; not one key of the abandoned one again
    expect(server.rosters.map((r) => r.round)).toEqual([0, 0]);
    const [old, fresh] = server.rosters;
    expect(fresh?.members.map((m) => m.id)).toEqual(old?.members.map((m) => m.id));
    for (const key of keysOf(fresh)) expect(keysOf(old)).not.toContainEqual(key);
    const text = logs(events);
    expect(text).toMatch(/info: your round 1 of 1: the server is restarting/);
    expect(text).toMatch(/warn: your round 1 of 1: the server restarted and lost the secure round; it starts again with fresh keys/);
  });

  it("after its masked input: the same update masked anew, the old input never unmasked", async () => {
    const { sockets } = await restarted("secure_input", "notice");
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input"]);
    const input = (s: FakeSocket | undefined) => s?.received.find((m) => m.type === "secure_input") as { words: Uint8Array };
    expect(input(sockets[1]).words).not.toEqual(input(sockets[0]).words); // new masks
    // its only reveal answers the new roster's split
    expect([...types(sockets[0]), ...types(sockets[1])].filter((t) => t === "secure_reveal")).toHaveLength(1);
  });

  it("told only by close code 1012, as by the notice", async () => {
    const { sockets } = await restarted("secure_shares", "close");
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares"]);
  });

  it("after it was asked to unmask: it helps the new roster along, but never sends its update into a second sum", async () => {
    const server = new SecureServer({ restart: (m, n) => (n === 0 && m.type === "secure_reveal" ? "notice" : null) });
    const { impl, sockets } = fakeServer(server.script);
    const events: ClientEvent[] = [];
    const running = within(client(impl, trainer([]), events, { waitForOthersMs: 2_000 }).run(1), 5_000);
    await until(() => /your update is not sent again in this round/.test(logs(events)));
    server.round = 1; // the others' inputs are too few: the round aborts, round 1 opens with the same model
    sockets[1]?.deliver({ type: "secure_abort", round: 0, reason: "only 2 masked inputs arrived; unmasking needs 3 survivors" });
    const out = await running;

    expect(server.errors).toEqual([]);
    expect(types(sockets[0])).toEqual(["hello", "secure_keys", "secure_shares", "secure_input", "secure_reveal"]);
    expect(types(sockets[1])).toEqual(["hello", "secure_keys", "secure_shares", "leave"]); // no second masked input
    const keys = (s: FakeSocket | undefined) => s?.received.find((m) => m.type === "secure_keys") as { c_public: Uint8Array };
    expect(keys(sockets[1]).c_public).not.toEqual(keys(sockets[0]).c_public);
    expect(server.decoded).toEqual([]);
    expect(out.weights.equals(model())).toBe(true);
    expect(events.filter((e) => e.kind === "sent")).toHaveLength(1);
    expect(logs(events)).toMatch(
      /warn: your round 1 of 1: before it restarted, the server asked to unmask a sum with your update in it; your update is not sent again in this round; this round goes on without you/,
    );
  });
});

describe("the masked input's memory", () => {
  afterEach(() => vi.restoreAllMocks());

  it("writes the change straight into one vector, equal to the per-tensor difference", () => {
    const received = model();
    const trained = addDelta(received);
    const want = subtract(trained, received).flatten();
    const map = vi.spyOn(Weights.prototype, "map");
    const flatten = vi.spyOn(Weights.prototype, "flatten");
    const got = changeOf(received, trained);
    expect(map).not.toHaveBeenCalled();
    expect(flatten).not.toHaveBeenCalled();
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    expect(() => changeOf(received, new Weights(["dense.kernel"], [[4]], [new Float32Array(4)]))).toThrow(/do not match|another order|shape/);
  });

  it("sends the words as a view of their memory on a little-endian machine, little-endian", () => {
    const words = Uint32Array.from([1, 0x01020304, 0xffffffff]);
    const bytes = wordBytes(words);
    expect([...bytes]).toEqual([1, 0, 0, 0, 4, 3, 2, 1, 255, 255, 255, 255]);
    expect(bytes.buffer).toBe(words.buffer); // no copy
    const part = wordBytes(words.subarray(1, 2));
    expect([...part]).toEqual([4, 3, 2, 1]);
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
