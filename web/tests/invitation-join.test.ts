/**
 * Joining a private instance's task from the browser: the federated client and a decentralized
 * peer present their invitation in every `Hello` (and only then); a refusal ("forbidden", close
 * 4403) ends the run with `AccessRefused` without retrying; a server at its limit ("limited",
 * close 4429) is asked again after a back-off.
 */

import { describe, expect, it } from "vitest";
import { FATAL_CLOSE, FederatedClient, type ClientEvent, type TrainFn } from "../src/core/client/federated";
import { LinkClosed } from "../src/core/client/link";
import { fatalClose, FORBIDDEN_CLOSE, hello, LIMITED_CLOSE } from "../src/core/client/server";
import { MemoryConnector, MemoryHub } from "../src/core/decentralized/connector";
import { PeerClient } from "../src/core/decentralized/peer";
import { AccessRefused, ServerError } from "../src/core/errors";
import { decode, encode, ERROR_CODES, type Hello, type ServerMessage } from "../src/core/protocol";
import { Weights } from "../src/core/weights";
import { scriptedServer } from "./peer-helpers";
import { fakeServer, type Script } from "./server-helpers";

const TOKEN = "dinv.abcdefgh23.Qx7-_rT3kLmN0pQaZ9yW2vB4cD6eF8gHj1k2L3m4N5o";
const model = new Weights(["w"], [[2]], [new Float32Array([0.5, -1])]);

const welcome: ServerMessage = {
  type: "welcome", client_id: "c-1", task_id: "mnist", round: 0, weights: model, participants: 1, min_participants: 1,
  state: "enough_participants", capabilities: [],
};
const train: TrainFn = async (_round, weights) => ({ weights, numSamples: 1, metrics: {} });

/** A server that welcomes a hello, closes the round at once and says goodbye on leave. */
const welcoming: Script = (socket, m) => {
  if (m.type === "hello") socket.deliver(welcome);
  if (m.type === "update") socket.deliver({ type: "result", round: 1, weights: model, contributors: 1, num_samples: 1, metrics: {} });
  if (m.type === "leave") socket.drop(1000);
};

function federated(impl: typeof WebSocket, extra: object = {}, events: ClientEvent[] = []): FederatedClient {
  return new FederatedClient({
    serverUrl: "http://disco.test", taskId: "mnist", name: "ward-4", train, WebSocketImpl: impl,
    onEvent: (e) => events.push(e), firstConnectTimeoutMs: 10_000, ...extra,
  });
}

const hellos = (sockets: { received: { type: string }[] }[]): Hello[] =>
  sockets.flatMap((s) => s.received.filter((m): m is Hello => m.type === "hello"));

describe("the wire", () => {
  it("knows the new error codes and carries the invitation in Hello", () => {
    expect(ERROR_CODES).toContain("forbidden");
    expect(ERROR_CODES).toContain("limited");
    const message = hello({ taskId: "mnist", name: "ward-4", invitation: TOKEN }, "k".repeat(32), []);
    expect(message.invitation).toBe(TOKEN);
    expect(decode(encode(message))).toEqual(message);
    // none: no field at all (the frame is the one an older client sends)
    const plain = hello({ taskId: "mnist", invitation: null }, "k".repeat(32), []);
    expect("invitation" in plain).toBe(false);
    expect(() => encode({ ...plain, invitation: "x".repeat(129) })).toThrow(/invitation: string should have at most 128 characters/);
    expect(() => encode({ ...plain, invitation: "" })).toThrow(/invitation: string should have at least 1 character/);
  });

  it("4403 is fatal and says what to do, 4429 is not", () => {
    expect(FATAL_CLOSE[FORBIDDEN_CLOSE]).toMatch(/valid invitation link/);
    expect(fatalClose(new LinkClosed(FORBIDDEN_CLOSE, "invitation refused"))).toBeInstanceOf(AccessRefused);
    expect(fatalClose(new LinkClosed(LIMITED_CLOSE, "too many participants"))).toBeNull();
  });
});

describe("the federated client", () => {
  it("presents its invitation in every Hello, reconnects included", async () => {
    let drop = true;
    const script: Script = (socket, m, n) => {
      if (m.type === "update" && drop) return void ((drop = false), socket.drop(1006)); // lost: joins again
      welcoming(socket, m, n);
    };
    const { impl, sockets } = fakeServer(script);
    await federated(impl, { invitation: TOKEN, reconnectTimeoutMs: 5_000 }).run(1);
    const sent = hellos(sockets);
    expect(sent).toHaveLength(2);
    expect(sent.map((h) => h.invitation)).toEqual([TOKEN, TOKEN]);
  });

  it("sends no invitation when it has none", async () => {
    const { impl, sockets } = fakeServer(welcoming);
    await federated(impl).run(1);
    expect(hellos(sockets)[0]).not.toHaveProperty("invitation");
  });

  it("is refused without retrying when the invitation is not valid", async () => {
    const script: Script = (socket) => {
      socket.deliver({ type: "error", code: "forbidden", message: "invitation refused: it was revoked" });
      socket.drop(FORBIDDEN_CLOSE, "invitation refused");
    };
    const { impl, sockets } = fakeServer(script);
    const run = federated(impl, { invitation: TOKEN }).run(1);
    await expect(run).rejects.toBeInstanceOf(AccessRefused);
    await expect(run).rejects.toThrow(/valid invitation link.*the server says: invitation refused: it was revoked/);
    expect(sockets).toHaveLength(1);
  });

  it("is refused by the close code alone too", async () => {
    const { impl, sockets } = fakeServer((socket) => socket.drop(FORBIDDEN_CLOSE, "invitation required"));
    await expect(federated(impl).run(1)).rejects.toBeInstanceOf(AccessRefused);
    expect(sockets).toHaveLength(1);
  });

  it("asks again later when the server is at its limit", async () => {
    const script: Script = (socket, m, n) => {
      if (n === 0 && m.type === "hello") {
        socket.deliver({ type: "error", code: "limited", message: "too many participants in task mnist (limit 2)" });
        return void socket.drop(LIMITED_CLOSE, "too many participants");
      }
      welcoming(socket, m, n);
    };
    const { impl, sockets } = fakeServer(script);
    const events: ClientEvent[] = [];
    const started = Date.now();
    const out = await federated(impl, {}, events).run(1);
    expect(out.rounds).toBe(1);
    expect(sockets).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900); // backed off 2 s, not 0.1 s
    const warned = events.filter((e) => e.kind === "log" && e.level === "warn").map((e) => (e as { message: string }).message);
    expect(warned.join("\n")).toMatch(/closed with code 4429: too many participants in task mnist.*trying again in 2\.0 s/);
  });

  it("gives up on a server that stays at its limit as on one out of reach", async () => {
    const script: Script = (socket) => {
      socket.deliver({ type: "error", code: "limited", message: "too many participants" });
      socket.drop(LIMITED_CLOSE, "too many participants");
    };
    const { impl } = fakeServer(script);
    const error = await federated(impl, { firstConnectTimeoutMs: 1_000 }).run(1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect((error as ServerError).cause).toBeInstanceOf(LinkClosed);
    expect(((error as ServerError).cause as LinkClosed).code).toBe(LIMITED_CLOSE);
  });
});

describe("a decentralized peer", () => {
  function peer(server: ReturnType<typeof scriptedServer>, invitation?: string): PeerClient {
    return new PeerClient({
      serverUrl: "http://disco.test",
      taskId: "peers",
      name: "ward-4",
      ...(invitation ? { invitation } : {}),
      aggregation: { rule: "mean", max_share: 0.5 },
      train: async (_round, weights) => ({ weights, numSamples: 1, metrics: {} }),
      reference: model,
      initialModel: async () => ({ weights: model, digest: await model.digest() }),
      openServer: server.open,
      connector: (me, onChannel) => new MemoryConnector(me, onChannel, new MemoryHub()),
      waitForOthersMs: 10_000,
      slackMs: 2_000,
    });
  }

  it("presents its invitation in its Hello, and is refused plainly without a valid one", async () => {
    const server = scriptedServer();
    const run = peer(server, TOKEN).run(1);
    const said = await server.next("hello");
    expect(said.invitation).toBe(TOKEN);
    expect(said.capabilities).toEqual(["decentralized"]);
    server.deliver({ type: "error", code: "forbidden", message: "invitation refused: it has expired" });
    server.close(FORBIDDEN_CLOSE, "invitation refused");
    await expect(run).rejects.toBeInstanceOf(AccessRefused);
    await expect(run).rejects.toThrow(/it has expired/);
  });

  it("sends no invitation when it has none", async () => {
    const server = scriptedServer();
    const run = peer(server).run(1);
    expect(await server.next("hello")).not.toHaveProperty("invitation");
    server.deliver({ type: "error", code: "limited", message: "too many participants" });
    server.close(LIMITED_CLOSE, "too many participants");
    await expect(run).rejects.toThrow("the server cannot take this participant now (too many participants); try again later");
  });
});
