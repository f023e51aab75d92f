/**
 * `FederatedClient` against an in-process fake WebSocket scripted like a disco server
 * (./server-helpers.ts): the happy path over two rounds, stale updates, reconnects, refusals,
 * timeouts and stop().
 */

import { describe, expect, it } from "vitest";
import {
  FederatedClient,
  ServerUnreachable,
  WaitExpired,
  wsUrl,
  type ClientEvent,
  type StatusEvent,
  type TrainFn,
} from "../src/core/client/federated";
import { l2Norm, subtract } from "../src/core/privacy";
import { ServerError, SessionError, StoppedError, UpdateRejected } from "../src/core/errors";
import type { ModelUpdate, ServerMessage, Welcome } from "../src/core/protocol";
import { Weights } from "../src/core/weights";
import { fakeServer, type FakeSocket, type Script } from "./server-helpers";

// -- helpers -----------------------------------------------------------------------------------

const model = (offset: number): Weights =>
  new Weights(["dense.kernel", "dense.bias"], [[2, 2], [2]], [new Float32Array([1, 2, 3, 4].map((x) => x + offset)), new Float32Array([0.5 + offset, -0.5])]);
const plusOne = (w: Weights): Weights => w.map((v) => v.map((x) => x + 1));

const welcome = (round: number, weights: Weights, participants = 1): ServerMessage => ({
  type: "welcome", client_id: `c-${round}`, task_id: "titanic", round, weights, participants, min_participants: 1,
  state: "enough_participants", capabilities: [],
});
const result = (round: number, weights: Weights): ServerMessage => ({
  type: "result", round, weights, contributors: 2, num_samples: 30, metrics: { train_loss: 0.25 },
});

/** A script answering hello with Welcome(round 0) and each update with ack, status and result. */
function normalServer(onUpdate?: (socket: FakeSocket, update: ModelUpdate, n: number) => boolean): Script {
  return (socket, m, n) => {
    if (m.type === "hello") socket.deliver(welcome(0, model(0)));
    if (m.type === "leave") socket.drop(1000);
    if (m.type !== "update" || onUpdate?.(socket, m, n)) return;
    socket.deliver(
      { type: "ack", round: m.round, reported: 1, participants: 2 },
      { type: "status", round: m.round, participants: 2, min_participants: 1, reported: 1, state: "enough_participants" },
      result(m.round + 1, model(10 * (m.round + 1))),
    );
  };
}

const trainer = (calls: [number, Weights][] = []): TrainFn => async (round, weights) => {
  calls.push([round, weights]);
  return { weights: plusOne(weights), numSamples: 10, metrics: { train_loss: 0.5, val_loss: NaN } };
};

function client(impl: typeof WebSocket, train: TrainFn, events: ClientEvent[] = [], extra = {}): FederatedClient {
  return new FederatedClient({
    serverUrl: "http://example.test/", taskId: "titanic", name: "Zoë", train, WebSocketImpl: impl,
    onEvent: (e) => events.push(e), reconnectTimeoutMs: 2_000, ...extra,
  });
}

const updates = (s: FakeSocket | undefined): ModelUpdate[] => (s?.received ?? []).filter((m): m is ModelUpdate => m.type === "update");

// -- tests -------------------------------------------------------------------------------------

describe("FederatedClient", () => {
  it("runs rounds: hello, train, update, ack/status/result, ..., leave", async () => {
    const { impl, sockets } = fakeServer(normalServer());
    const calls: [number, Weights][] = [];
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(calls), events).run(2);

    const socket = sockets[0] as FakeSocket;
    expect(sockets).toHaveLength(1);
    expect(socket.url).toBe("ws://example.test/ws");
    expect(socket.binaryType).toBe("arraybuffer");
    expect(socket.received.map((m) => m.type)).toEqual(["hello", "update", "update", "leave"]);
    expect(socket.received[0]).toEqual({
      type: "hello", task_id: "titanic", name: "Zoë", kind: "browser", participant_key: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/),
      capabilities: [], // none for a plain federated task (secure_aggregation only where the task uses it)
    });
    expect(calls.map(([r]) => r)).toEqual([0, 1]);
    expect(calls[0]?.[1].equals(model(0))).toBe(true);
    expect(calls[1]?.[1].equals(model(10))).toBe(true);
    const [first, second] = updates(socket);
    expect(first).toMatchObject({ round: 0, num_samples: 10, metrics: { train_loss: 0.5 } });
    expect(first?.metrics).not.toHaveProperty("val_loss"); // NaN metrics are left out
    expect(first?.weights.equals(plusOne(model(0)))).toBe(true);
    expect(second?.round).toBe(1);
    expect(second?.weights.equals(plusOne(model(10)))).toBe(true);
    expect(out.rounds).toBe(2);
    expect(out.weights.equals(model(20))).toBe(true);
    expect(out.bytesUp).toBe(socket.bytesIn);
    expect(out.bytesDown).toBe(socket.bytesOut);

    const states = events.flatMap((e) => (e.kind === "status" ? [e.state] : []));
    expect(states[0]).toBe("connecting");
    expect(states).toContain("training");
    expect(states).toContain("sending_update");
    expect(states).toContain("aggregating");
    expect(states.at(-1)).toBe("done");
    const rounds = events.flatMap((e) => (e.kind === "round" ? [e] : []));
    expect(rounds.map(({ weights: _, ...rest }) => rest)).toEqual([
      { kind: "round", round: 1, contributors: 2, numSamples: 30, metrics: { train_loss: 0.25 } },
      { kind: "round", round: 2, contributors: 2, numSamples: 30, metrics: { train_loss: 0.25 } },
    ]);
    expect(rounds[0]?.weights.equals(model(10))).toBe(true); // each new global model is reported
    expect(rounds[1]?.weights.equals(model(20))).toBe(true);
    // "your round k of N" counts this client's rounds; the server's round is the shared model's training
    const logs = events.flatMap((e) => (e.kind === "log" ? [e.message] : [])).join("\n");
    expect(logs).toMatch(/joined task titanic as c-0: the shared model has been trained for 0 rounds/);
    expect(logs).toMatch(/your round 1 of 2: training on the shared model \(0 rounds so far\)/);
    expect(logs).toMatch(/your round 1 of 2: update accepted/);
    expect(logs).toMatch(/your round 1 of 2 done: the shared model has been trained for 1 round\n/);
    expect(logs).toMatch(/your round 2 of 2: training on the shared model \(1 round so far\)/);
    expect(logs).toMatch(/your round 2 of 2 done: the shared model has been trained for 2 rounds/);
    expect(logs).toMatch(/metrics val_loss are not finite; they are not reported/);
    expect(logs).not.toMatch(/(?<!your )\bround [0-9]/); // no bare server round numbers
    const last = events.filter((e) => e.kind === "status").at(-1);
    expect(last).toMatchObject({ round: 2, participants: 2, minParticipants: 1 });
  });

  it("waits for the result after a stale error", async () => {
    const { impl, sockets } = fakeServer(
      normalServer((socket) => {
        socket.deliver({ type: "error", code: "stale", message: "round 0 is closing", round: 0 }, result(1, model(7)));
        return true;
      }),
    );
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(), events).run(1);
    expect(out.weights.equals(model(7))).toBe(true);
    expect(sockets[0]?.received.map((m) => m.type)).toEqual(["hello", "update", "leave"]);
    expect(events.some((e) => e.kind === "log" && /your round 1 of 1: round 0 is closing/.test(e.message))).toBe(true);
  });

  it("reconnects after an abrupt close and resends the pending update", async () => {
    const { impl, sockets } = fakeServer(
      normalServer((socket, _update, n) => {
        if (n === 1) socket.drop(); // first connection (after a refused one): drop, no answer
        return n === 1;
      }),
      1, // the very first connection attempt is refused
    );
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(), events).run(1);
    expect(sockets).toHaveLength(3);
    const [lost] = updates(sockets[1]);
    const [again] = updates(sockets[2]);
    expect(sockets[2]?.received.map((m) => m.type)).toEqual(["hello", "update", "leave"]);
    expect(again?.round).toBe(0);
    expect(again?.weights.equals(lost?.weights as Weights)).toBe(true);
    expect(out.weights.equals(model(10))).toBe(true);
    expect(events.some((e) => e.kind === "log" && e.level === "warn" && /connection lost/.test(e.message))).toBe(true);
  });

  it("goes on in the same round when the server says it is restarting, then closes with 1012", async () => {
    const restarting: ServerMessage = { type: "error", code: "restarting", message: "the server is restarting" };
    const { impl, sockets } = fakeServer((socket, m, n) => {
      // connection 0: the update is in when the server stops; 1: it is still stopping at the hello
      if (n === 0 && m.type === "update") return void (socket.deliver(restarting), socket.drop(1012));
      if (n === 1 && m.type === "hello") return void (socket.deliver(restarting), socket.drop(1012));
      normalServer()(socket, m, n);
    });
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(), events).run(1);
    expect(sockets).toHaveLength(3);
    const [before] = updates(sockets[0]);
    const [again] = updates(sockets[2]);
    expect(sockets[2]?.received.map((m) => m.type)).toEqual(["hello", "update", "leave"]);
    expect(again?.round).toBe(0); // the same round, the same update
    expect(again?.weights.equals(before?.weights as Weights)).toBe(true);
    expect(out.weights.equals(model(10))).toBe(true);
    const logs = events.flatMap((e) => (e.kind === "log" ? [e.message] : [])).join("\n");
    expect(logs).toMatch(/your round 1 of 1: the server is restarting/);
  });

  it("says hello with the same participant key on every reconnect, another client with another", async () => {
    const { impl, sockets } = fakeServer(
      normalServer((socket, _update, n) => {
        if (n < 2) socket.drop(); // the first two connections drop on the update
        return n < 2;
      }),
    );
    const first = client(impl, trainer());
    await first.run(1);
    const keys = (from: FakeSocket[]): (string | undefined)[] =>
      from.flatMap((s) => s.received.flatMap((m) => (m.type === "hello" ? [m.participant_key] : [])));
    expect(sockets).toHaveLength(3);
    const mine = keys(sockets);
    expect(mine).toHaveLength(3);
    expect(mine[0]).toMatch(/^[A-Za-z0-9_-]{32}$/); // 24 random bytes, base64url
    expect(new Set(mine).size).toBe(1);

    const other = fakeServer(normalServer());
    await client(other.impl, trainer()).run(1);
    const [theirs] = keys(other.sockets);
    expect(theirs).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(theirs).not.toBe(mine[0]);
  });

  it("adopts a newer model after reconnecting instead of resending", async () => {
    const script: Script = (socket, m, n) => {
      if (m.type === "hello") socket.deliver(n === 0 ? welcome(0, model(0)) : welcome(1, model(5)));
      if (m.type === "update") socket.drop();
    };
    const { impl, sockets } = fakeServer(script);
    const out = await client(impl, trainer()).run(1);
    expect(out.weights.equals(model(5))).toBe(true);
    expect(sockets[1]?.received.map((m) => m.type)).toEqual(["hello", "leave"]);
  });

  it("drops an update whose round closed during training", async () => {
    const script: Script = (socket, m) => {
      if (m.type === "hello") {
        socket.deliver(welcome(0, model(0)));
        setTimeout(() => socket.deliver(result(1, model(3))), 5);
      }
    };
    const { impl, sockets } = fakeServer(script);
    const slow: TrainFn = async (_, weights) => {
      await new Promise((r) => setTimeout(r, 30));
      return { weights, numSamples: 1, metrics: {} };
    };
    const out = await client(impl, slow).run(1);
    expect(out.weights.equals(model(3))).toBe(true);
    expect(sockets[0]?.received.map((m) => m.type)).toEqual(["hello", "leave"]);
  });

  it("rejects with ServerError for an unknown task, without retrying", async () => {
    const script: Script = (socket) => {
      socket.deliver({ type: "error", code: "unknown_task", message: "no task 'titanic' here" });
      socket.drop(4404);
    };
    const { impl, sockets } = fakeServer(script);
    const events: ClientEvent[] = [];
    const run = client(impl, trainer(), events).run(1);
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/no task 'titanic' here/);
    expect(sockets).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ kind: "log", level: "error" });
    expect(events.some((e) => e.kind === "status" && e.state === "error")).toBe(true);
  });

  it("rejects with ServerError when the task needs a capability this page lacks (4426), without retrying", async () => {
    const script: Script = (socket) => {
      socket.deliver({ type: "error", code: "unsupported", message: "task 'titanic' needs capability 'decentralized'" });
      socket.drop(4426, "unsupported");
    };
    const { impl, sockets } = fakeServer(script);
    const run = client(impl, trainer()).run(1);
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/needs capability 'decentralized'.*this task needs a newer client: update the page\/app/);
    expect(sockets).toHaveLength(1);
  });

  it("takes close code 4426 alone as fatal too", async () => {
    const { impl, sockets } = fakeServer((socket) => socket.drop(4426, "unsupported"));
    const run = client(impl, trainer()).run(1);
    await expect(run).rejects.toThrow(new ServerError("this task needs a newer client: update the page/app (closed with code 4426: unsupported)"));
    expect(sockets).toHaveLength(1);
  });

  it("refuses a Welcome without a model (a decentralized session), without retrying", async () => {
    const script: Script = (socket, m) => {
      if (m.type !== "hello") return;
      const { weights: _, ...bare } = welcome(0, model(0)) as Welcome;
      socket.deliver({ ...bare, capabilities: ["decentralized"] });
    };
    const { impl, sockets } = fakeServer(script);
    const calls: [number, Weights][] = [];
    const run = client(impl, trainer(calls)).run(1);
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/Welcome to task titanic carries no model.*federated sessions only \(this task needs a newer client/);
    expect(sockets).toHaveLength(1);
    expect(calls).toEqual([]);
  });

  it("stops with ServerError when the server sends a decentralized message it did not ask for", async () => {
    const plan: ServerMessage = {
      type: "plan", round: 0, peers: [], members: 1, topology: "all_to_all", self_weight: 1, connect_s: 30, exchange_s: 60,
    };
    const { impl, sockets } = fakeServer(
      normalServer((socket) => {
        socket.deliver(plan);
        return true;
      }),
    );
    const run = client(impl, trainer(), [], { waitForOthersMs: 5_000 }).run(1);
    await expect(run).rejects.toThrow(ServerError);
    await expect(run).rejects.toThrow(/sent a 'plan' message of a decentralized session/);
    expect(sockets).toHaveLength(1);
  });

  it("rejects with UpdateRejected when the server refuses the update", async () => {
    const { impl } = fakeServer(
      normalServer((socket) => {
        socket.deliver({ type: "error", code: "shape", message: "tensor 'dense.bias' has shape (3,)", round: 0 });
        return true;
      }),
    );
    await expect(client(impl, trainer()).run(1)).rejects.toThrow(new UpdateRejected("[shape] tensor 'dense.bias' has shape (3,)"));
  });

  it("bounds the wait for others and keeps the trained model when nothing was combined", async () => {
    const { impl } = fakeServer(
      normalServer((socket, m) => {
        socket.deliver({ type: "status", round: m.round, participants: 1, min_participants: 2, reported: 1, state: "waiting_for_participants" });
        return true; // never closes the round
      }),
    );
    const events: ClientEvent[] = [];
    const run = client(impl, trainer(), events, { waitForOthersMs: 60 }).run(3);
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitExpired);
    const expired = error as WaitExpired;
    expect(expired).toBeInstanceOf(SessionError);
    expect(expired.kept).toBe("local");
    expect(expired.weights.equals(plusOne(model(0)))).toBe(true); // the model trained here
    expect([expired.roundsDone, expired.sharedRounds]).toEqual([0, 0]);
    expect(expired.message).toMatch(/stopped waiting for the others after 0 s: no round closed; 1 more participant needed \(1 of 2 connected\)\./);
    expect(expired.message).toMatch(/You completed 0 of 3 rounds with the others and keep the model trained on your data/);
    const waiting = events.filter((e): e is StatusEvent => e.kind === "status" && e.waitUntil !== null);
    expect(waiting.length).toBeGreaterThan(0); // the UI can show a countdown
    expect(events.filter((e) => e.kind === "status").at(-1)).toMatchObject({ state: "error", waitUntil: null });
  });

  it("keeps the last shared model when the wait expires after a round was combined", async () => {
    const { impl } = fakeServer(normalServer((_socket, m) => m.round >= 1)); // round 1 never closes
    const run = client(impl, trainer(), [], { waitForOthersMs: 40 }).run(3);
    const error = (await run.catch((e: unknown) => e)) as WaitExpired;
    expect(error).toBeInstanceOf(WaitExpired);
    expect([error.kept, error.roundsDone, error.sharedRounds]).toEqual(["global", 1, 1]);
    expect(error.weights.equals(model(10))).toBe(true);
    expect(error.message).toMatch(/keep the last shared model \(1 round of training\)/);
  });

  it("applies the task's privacy in the client: clipped weights, no metrics, count 1", async () => {
    const updates: ModelUpdate[] = [];
    const { impl } = fakeServer(
      normalServer((_socket, m) => {
        updates.push(m);
        return false;
      }),
    );
    const events: ClientEvent[] = [];
    const privacy = { clipping_radius: 0.5, noise_multiplier: 0 };
    await client(impl, trainer(), events, { privacy }).run(1);
    const sent = updates[0] as ModelUpdate;
    expect(sent.num_samples).toBe(1);
    expect(sent.metrics).toEqual({});
    expect(l2Norm(subtract(sent.weights, model(0)))).toBeCloseTo(0.5, 5);
    const logs = events.flatMap((e) => (e.kind === "log" ? [e.message] : [])).join("\n");
    expect(logs).toMatch(/privacy: update size [0-9.]+, clipped to L2 norm ≤ 0.5; no noise; no metrics or sample count sent/);
  });

  it("gives up sooner when the first connection never succeeds, counting attempts", async () => {
    const { impl, sockets } = fakeServer(normalServer(), 1000);
    const events: ClientEvent[] = [];
    const started = Date.now();
    const run = client(impl, trainer(), events, { firstConnectTimeoutMs: 400, reconnectTimeoutMs: 60_000 }).run(1);
    await expect(run).rejects.toThrow(ServerUnreachable);
    await expect(run).rejects.toThrow(/cannot reach the server at ws:\/\/example.test\/ws: \d+ attempt\(s\)/);
    expect(Date.now() - started).toBeLessThan(2_000); // the long reconnect budget is not used
    const error = await run.catch((e: unknown) => e);
    expect(error).toMatchObject({ joined: false, attempts: sockets.length });
    const connecting = events.flatMap((e) => (e.kind === "status" && e.state === "connecting" ? [e] : []));
    expect(connecting.map((e) => e.attempt)).toEqual(sockets.map((_, i) => i + 1));
    expect(connecting.every((e) => !e.joined)).toBe(true);
    expect(sockets.length).toBeGreaterThanOrEqual(3);
  });

  it("gives up on a server that accepts the connection but never welcomes, within the first budget", async () => {
    const { impl } = fakeServer(() => undefined); // opens, then never answers the hello
    const started = Date.now();
    const run = client(impl, trainer(), [], { firstConnectTimeoutMs: 300, joinTimeoutMs: 30_000 }).run(1);
    await expect(run).rejects.toThrow(ServerUnreachable);
    expect(Date.now() - started).toBeLessThan(1_500); // not the 30 s join timeout
  });

  it("keeps the longer budget for reconnecting after the session was joined", async () => {
    // joins on connection 0, loses it on the update, then 5 attempts fail before one succeeds
    const { impl, sockets } = fakeServer(
      normalServer((socket, _update, n) => {
        if (n === 0) socket.drop();
        return n === 0;
      }),
      (n) => n >= 1 && n <= 5,
    );
    const events: ClientEvent[] = [];
    const out = await client(impl, trainer(), events, { firstConnectTimeoutMs: 50, reconnectTimeoutMs: 10_000 }).run(1);
    expect(sockets).toHaveLength(7);
    expect(out.weights.equals(model(10))).toBe(true);
    const reconnecting = events.flatMap((e) => (e.kind === "status" && e.state === "connecting" && e.joined && e.attempt > 0 ? [e.attempt] : []));
    expect(reconnecting).toEqual([1, 2, 3, 4, 5, 6]);
    const last = events.filter((e) => e.kind === "status").at(-1);
    expect(last).toMatchObject({ state: "done", attempt: 0 });
  });

  it("gives up reconnecting after reconnectTimeoutMs", async () => {
    const { impl, sockets } = fakeServer(
      normalServer((socket) => {
        socket.drop();
        return true;
      }),
      (n) => n >= 1,
    );
    const run = client(impl, trainer(), [], { reconnectTimeoutMs: 250 }).run(1);
    await expect(run).rejects.toThrow(ServerUnreachable);
    expect(await run.catch((e: unknown) => e)).toMatchObject({ joined: true });
    expect(sockets.length).toBeGreaterThanOrEqual(2);
  });

  it("checks the global model against a reference", async () => {
    const { impl } = fakeServer(normalServer());
    const reference = new Weights(["other"], [[1]], [new Float32Array(1)]);
    await expect(client(impl, trainer(), [], { reference }).run(1)).rejects.toThrow(/global model do not match/);
  });

  it("stops promptly during training, sending leave", async () => {
    const { impl, sockets } = fakeServer(normalServer());
    let signal: AbortSignal | undefined;
    const stuck: TrainFn = (_round, _weights, s) => {
      signal = s;
      return new Promise(() => undefined); // never finishes
    };
    const events: ClientEvent[] = [];
    const c = client(impl, stuck, events);
    const run = c.run(3);
    while (signal === undefined) await new Promise((r) => setTimeout(r, 1));
    const started = Date.now();
    c.stop();
    await expect(run).rejects.toThrow(StoppedError);
    expect(Date.now() - started).toBeLessThan(100);
    expect(signal.aborted).toBe(true);
    expect(sockets[0]?.received.map((m) => m.type)).toEqual(["hello", "leave"]);
    expect(events.some((e) => e.kind === "status" && e.state === "stopped")).toBe(true);
    expect(events.some((e) => e.kind === "status" && e.state === "error")).toBe(false);
  });

  it("runs once", async () => {
    const { impl } = fakeServer(normalServer());
    const c = client(impl, trainer());
    await c.run(0);
    await expect(c.run(1)).rejects.toThrow(/already ran/);
  });
});

describe("wsUrl", () => {
  it("maps http(s) base URLs to the /ws endpoint", () => {
    expect(wsUrl("http://localhost:8000")).toBe("ws://localhost:8000/ws");
    expect(wsUrl("https://disco.example/")).toBe("wss://disco.example/ws");
    expect(wsUrl("ws://h/ws")).toBe("ws://h/ws");
  });
});
