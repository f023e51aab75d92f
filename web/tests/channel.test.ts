/**
 * The transport seam: in-memory channel pairs (order, backpressure, timeouts, close, limits,
 * abort), the WebSocket channel against a scripted socket, and a `Link` running on a channel.
 */

import { describe, expect, it } from "vitest";
import { Link, LinkClosed, WaitTimeout, type Traffic } from "../src/core/client/link";
import { ProtocolError } from "../src/core/errors";
import { decode, encode, type Hello, type Message, type ServerMessage } from "../src/core/protocol";
import { ChannelClosed, ChannelTimeout, type Channel } from "../src/core/transport/channel";
import { memoryPair } from "../src/core/transport/memory";
import { WebSocketChannel } from "../src/core/transport/websocket";
import { bytes, flush, track, until } from "./channel-helpers";

// -- memory pairs ------------------------------------------------------------------------------

describe("memoryPair", () => {
  it("carries frames in order, as copies, and counts bytes", async () => {
    const [a, b] = memoryPair();
    const first = Uint8Array.from([1, 2, 3]);
    await a.send(first, 100);
    await a.send(Uint8Array.from([4]), 100);
    await b.send(Uint8Array.from([9, 9]), 100);
    first[0] = 7; // the sender's buffer is its own again

    expect(Array.from(await b.receive(100))).toEqual([1, 2, 3]);
    expect(Array.from(await b.receive(100))).toEqual([4]);
    expect(Array.from(await a.receive(100))).toEqual([9, 9]);
    expect([a.bytesSent, a.bytesReceived, b.bytesSent, b.bytesReceived]).toEqual([4, 2, 2, 4]);
    expect([a.closed, b.closed]).toEqual([null, null]);
  });

  it("holds a send while the peer's queue is above the high-water mark, until the peer takes", async () => {
    const [a, b] = memoryPair({ highWater: 1000 });
    await a.send(bytes(800, 1), 1_000);
    const second = track(a.send(bytes(800, 2), 1_000));
    await flush();
    expect(second.done()).toBe(false);
    expect(b.bytesReceived).toBe(800);

    expect((await b.receive(100))[0]).toBe(1);
    expect(await second.result).toBe("sent");
    expect((await b.receive(100))[0]).toBe(2);
    expect(a.bytesSent).toBe(1600);
  });

  it("sends held frames in the order of the calls", async () => {
    const [a, b] = memoryPair({ highWater: 10 });
    const sends = [1, 2, 3, 4].map((n) => a.send(bytes(8, n), 1_000));
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push((await b.receive(1_000))[0] as number);
    await Promise.all(sends);
    expect(got).toEqual([1, 2, 3, 4]);
  });

  it("times out a held send without sending it", async () => {
    const [a, b] = memoryPair({ highWater: 10 });
    await a.send(bytes(10), 100);
    const error = await a.send(bytes(5, 2), 20).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelTimeout);
    expect((error as Error).message).toMatch(/sending a frame of 5 bytes: the outgoing buffer stayed full for 20 ms/);
    await b.receive(100);
    await expect(b.receive(20)).rejects.toBeInstanceOf(ChannelTimeout); // the held frame never went
    expect(a.bytesSent).toBe(10);
  });

  it("times out a receive, saying what it waited for and how long", async () => {
    const [, b] = memoryPair();
    const error = await b.receive(25).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelTimeout);
    expect((error as Error).name).toBe("ChannelTimeout");
    expect((error as Error).message).toBe("waiting for a frame from the peer: nothing within 25 ms");
  });

  it("lets the peer drain the frames sent before a close, then reports the code and reason", async () => {
    const [a, b] = memoryPair();
    await a.send(Uint8Array.from([1]), 100);
    await a.send(Uint8Array.from([2]), 100);
    const waiting = a.receive(Infinity); // a reader blocked on the closing end
    a.close(4404, "no such task");
    a.close(1000, "again"); // idempotent

    await expect(waiting).rejects.toEqual(new ChannelClosed(4404, "no such task"));
    expect(Array.from(await b.receive(100))).toEqual([1]);
    expect(Array.from(await b.receive(100))).toEqual([2]);
    const error = await b.receive(100).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChannelClosed);
    expect(error).toMatchObject({ code: 4404, reason: "no such task", message: "closed with code 4404: no such task" });
    expect(b.closed).toMatchObject({ code: 4404 });
    expect(a.closed).toMatchObject({ code: 4404 });
  });

  it("rejects sends on a closed channel, from either end, and held sends when it closes", async () => {
    const [a, b] = memoryPair({ highWater: 4 });
    await a.send(bytes(4), 100);
    const held = a.send(bytes(4), 1_000);
    b.close();
    await expect(held).rejects.toBeInstanceOf(ChannelClosed);
    await expect(a.send(bytes(1), 100)).rejects.toMatchObject({ name: "ChannelClosed", code: 1000 });
    await expect(b.send(bytes(1), 100)).rejects.toBeInstanceOf(ChannelClosed);
  });

  it("refuses a frame larger than maxFrame with a RangeError, sending nothing", async () => {
    const [a, b] = memoryPair({ maxFrame: 16 });
    expect(a.maxFrame).toBe(16);
    await expect(a.send(bytes(17), 100)).rejects.toThrow(RangeError);
    await expect(a.send(bytes(17), 100)).rejects.toThrow(/17 bytes exceeds this channel's limit of 16 bytes/);
    expect(a.bytesSent).toBe(0);
    await a.send(bytes(16), 100);
    expect((await b.receive(100)).length).toBe(16);
  });

  it("rejects waits with the abort reason", async () => {
    const [a, b] = memoryPair({ highWater: 4 });
    const controller = new AbortController();
    const reason = new Error("user left");
    const receiving = b.receive(Infinity, controller.signal);
    await a.send(bytes(4), 100);
    expect((await receiving).length).toBe(4); // the frame came before the abort
    await a.send(bytes(4), 100);
    const held = a.send(bytes(4, 2), 10_000, controller.signal);
    const idle = a.receive(10_000, controller.signal);
    controller.abort(reason);
    await expect(held).rejects.toBe(reason);
    await expect(idle).rejects.toBe(reason);
    await expect(b.receive(100, controller.signal)).resolves.toHaveLength(4); // a queued frame is still there
    await expect(b.receive(100, controller.signal)).rejects.toBe(reason); // the aborted send never went
    await expect(a.send(bytes(1), 100, controller.signal)).rejects.toBe(reason);
  });
});

// -- the WebSocket channel ---------------------------------------------------------------------

/** A WebSocket driven by the test: it opens (or fails) when told, and buffers what is set. */
class ScriptedSocket {
  static made: ScriptedSocket[] = [];
  binaryType = "blob";
  readyState = 0;
  sent: Uint8Array[] = [];
  closedWith: [number, string] | null = null;
  buffered = 0;
  bufferedReads = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(readonly url: string) {
    ScriptedSocket.made.push(this);
  }

  get bufferedAmount(): number {
    this.bufferedReads++;
    return this.buffered;
  }

  send(data: Uint8Array): void {
    this.sent.push(data.slice());
    this.buffered += data.length;
  }

  close(code: number, reason: string): void {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  refuse(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }
}

/** Open a channel over a fresh `ScriptedSocket` (opened by the test) and return both. */
async function openScripted(highWater?: number): Promise<[WebSocketChannel, ScriptedSocket]> {
  ScriptedSocket.made = [];
  const Impl = ScriptedSocket as unknown as typeof WebSocket;
  const opening = WebSocketChannel.open("ws://test/ws", Impl, 1_000, undefined, 1 << 20, highWater);
  await until(() => ScriptedSocket.made.length === 1);
  const socket = ScriptedSocket.made[0] as ScriptedSocket;
  socket.open();
  return [await opening, socket];
}

describe("WebSocketChannel", () => {
  it("opens, sends and receives binary frames", async () => {
    const [channel, socket] = await openScripted();
    expect(socket.binaryType).toBe("arraybuffer");
    await channel.send(Uint8Array.from([1, 2]), 100);
    expect(socket.sent.map((f) => Array.from(f))).toEqual([[1, 2]]);
    socket.onmessage?.({ data: Uint8Array.from([3, 4, 5]).buffer });
    expect(Array.from(await channel.receive(100))).toEqual([3, 4, 5]);
    expect([channel.bytesSent, channel.bytesReceived]).toEqual([2, 3]);
  });

  it("fails to open with ChannelClosed 1006, or ChannelTimeout when nothing happens", async () => {
    ScriptedSocket.made = [];
    const Impl = ScriptedSocket as unknown as typeof WebSocket;
    const refused = WebSocketChannel.open("ws://test/ws", Impl, 1_000);
    await until(() => ScriptedSocket.made.length === 1);
    ScriptedSocket.made[0]?.refuse();
    await expect(refused).rejects.toEqual(new ChannelClosed(1006, "connection error"));

    const silent = await WebSocketChannel.open("ws://test/ws", Impl, 20).catch((e: unknown) => e);
    expect(silent).toBeInstanceOf(ChannelTimeout);
    expect((silent as Error).message).toBe("opening ws://test/ws: no answer within 20 ms");
    expect(ScriptedSocket.made[1]?.closedWith).toEqual([1000, "gave up connecting"]);
  });

  it("waits while bufferedAmount is above the high-water mark, polling it", async () => {
    const [channel, socket] = await openScripted(1000);
    await channel.send(bytes(800), 100);
    const second = track(channel.send(bytes(800, 2), 2_000));
    const reads = socket.bufferedReads;
    await until(() => socket.bufferedReads >= reads + 2); // polled at least once more: no room yet
    expect(second.done()).toBe(false);
    expect(socket.sent).toHaveLength(1);

    socket.buffered = 0; // the first frame left
    expect(await second.result).toBe("sent");
    expect(socket.sent.map((f) => f[0])).toEqual([1, 2]);
  });

  it("closes on a text frame: ChannelClosed(1003, 'text frame') after the frames before it", async () => {
    const [channel, socket] = await openScripted();
    socket.onmessage?.({ data: Uint8Array.from([1]).buffer });
    socket.onmessage?.({ data: "hello" });
    expect(Array.from(await channel.receive(100))).toEqual([1]);
    await expect(channel.receive(100)).rejects.toEqual(new ChannelClosed(1003, "text frame"));
    expect(socket.closedWith).toEqual([1000, "text frame"]); // a WebSocket may only send 1000 or 3000–4999
  });

  it("reports the peer's close code and a drop as 1006", async () => {
    const [channel, socket] = await openScripted();
    socket.onclose?.({ code: 4404, reason: "unknown task" });
    await expect(channel.receive(100)).rejects.toEqual(new ChannelClosed(4404, "unknown task"));
    await expect(channel.send(bytes(1), 100)).rejects.toMatchObject({ code: 4404 });

    const [dropped, other] = await openScripted();
    other.onerror?.({});
    other.onclose?.({ code: 1006, reason: "" });
    expect(dropped.closed).toEqual(new ChannelClosed(1006, "connection error"));
  });
});

// -- a link on a channel -----------------------------------------------------------------------

/** A link on one end of a memory pair; the other end plays the server. */
function linked(): { link: Link; server: Channel; seen: ServerMessage[]; traffic: Traffic } {
  const [client, server] = memoryPair();
  const seen: ServerMessage[] = [];
  const traffic: Traffic = { bytesUp: 0, bytesDown: 0 };
  return { link: new Link(client, traffic, (m) => seen.push(m)), server, seen, traffic };
}

describe("Link on a channel", () => {
  it("decodes server messages, sends client messages, and counts traffic", async () => {
    const { link, server, seen, traffic } = linked();
    const status: ServerMessage = { type: "status", round: 2, participants: 3, min_participants: 2, reported: 1, state: "enough_participants" };
    const ack: ServerMessage = { type: "ack", round: 2, reported: 2, participants: 3 };
    const frames = [encode(status), encode(ack)];
    for (const frame of frames) await server.send(frame, 100);
    const signal = new AbortController().signal;

    expect(await link.next(1_000, signal)).toEqual(status);
    expect(await link.next(1_000, signal)).toEqual(ack);
    expect(seen).toEqual([status, ack]);
    expect(traffic.bytesDown).toBe(frames[0]!.length + frames[1]!.length);

    expect(link.send({ type: "leave" })).toBe(true);
    const sent = await server.receive(100);
    expect(decode(sent)).toEqual({ type: "leave" });
    expect(traffic.bytesUp).toBe(sent.length);
    await expect(link.next(20, signal)).rejects.toBeInstanceOf(WaitTimeout);
  });

  it("surfaces the server's close as LinkClosed with its code, after the queued messages", async () => {
    const { link, server } = linked();
    const ack: ServerMessage = { type: "ack", round: 0, reported: 1, participants: 1 };
    await server.send(encode(ack), 100);
    server.close(4404, "no task 'titanic' here");
    const signal = new AbortController().signal;

    expect(await link.next(1_000, signal)).toEqual(ack);
    const error = await link.next(1_000, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LinkClosed);
    expect(error).toMatchObject({ code: 4404, reason: "no task 'titanic' here" });
    expect(link.isOpen).toBe(false);
    expect(link.send({ type: "leave" })).toBe(false);
  });

  it("ends with the codec's error on a bad frame and closes the channel", async () => {
    const { link, server } = linked();
    await server.send(Uint8Array.from([0xc1]), 100); // never valid msgpack
    await expect(link.next(1_000, new AbortController().signal)).rejects.toBeInstanceOf(ProtocolError);
    await expect(server.receive(100)).rejects.toMatchObject({ code: 1000, reason: "invalid frame from server" });
  });

  const strays: [string, Message, RegExp][] = [
    ["a client message", { type: "leave" }, /server sent a 'leave' message, which only clients send/],
    ["a peer frame", { type: "peer_ack", round: 0, digest: "a".repeat(64) }, /'peer_ack' message, which only peers send each other/],
  ];
  it.each(strays)("ends with a ProtocolError when the server sends %s", async (_, message, error) => {
    const { link, server } = linked();
    await server.send(encode(message), 100);
    await expect(link.next(1_000, new AbortController().signal)).rejects.toThrow(error);
    await expect(server.receive(100)).rejects.toMatchObject({ code: 1000, reason: "invalid frame from server" });
  });

  it("queues the decentralized messages a server may send", async () => {
    const { link, server } = linked();
    const signal: ServerMessage = { type: "signal", peer: "p-a", kind: "offer", data: "v=0" };
    await server.send(encode(signal), 100);
    expect(await link.next(1_000, new AbortController().signal)).toEqual(signal);
  });

  it("closes the channel when it is closed, keeping queued messages readable", async () => {
    const { link, server } = linked();
    const ack: ServerMessage = { type: "ack", round: 0, reported: 1, participants: 1 };
    await server.send(encode(ack), 100);
    const signal = new AbortController().signal;
    expect(await link.next(1_000, signal)).toEqual(ack);
    link.close(1000, "done");
    await expect(server.receive(100)).rejects.toEqual(new ChannelClosed(1000, "done"));
    await expect(link.next(100, signal)).rejects.toEqual(new LinkClosed(1000, "done"));
  });

  it("closes with LinkClosed 1009 for a message larger than the channel carries", async () => {
    const [client, server] = memoryPair({ maxFrame: 64 });
    const link = new Link(client, { bytesUp: 0, bytesDown: 0 }, () => undefined);
    const big: Hello = { type: "hello", task_id: "x".repeat(60), name: "Zoë", kind: "browser", capabilities: [] };
    expect(link.send(big)).toBe(false);
    await expect(link.next(100, new AbortController().signal)).rejects.toMatchObject({ name: "LinkClosed", code: 1009 });
    await expect(server.receive(100)).rejects.toBeInstanceOf(ChannelClosed);
  });
});
