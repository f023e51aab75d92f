/**
 * The data-channel transport: the fragment format against tests/vectors/rtc_fragments.json
 * (written from the Python side by tests/vectors/rtc_fragments.py), and `RtcChannel` on a fake
 * data channel (Node has no WebRTC) whose buffer the test controls.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ChannelClosed, ChannelTimeout } from "../src/core/transport/channel";
import {
  CLOSE_NOTICE,
  FRAGMENT,
  LAST_FRAGMENT,
  MAX_MESSAGE,
  RtcChannel,
  closeNotice,
  fragments,
  type ConnectionLike,
  type DataChannelLike,
  type RtcChannelOptions,
} from "../src/core/transport/rtc";
import { bytes, flush, track, until } from "./channel-helpers";

// -- the shared vectors ----------------------------------------------------------------------

interface Vectors {
  frames: { name: string; message_size: number; frame: string; messages: string[] }[];
  close_notices: { name: string; code: number; reason: string; message_size: number; message: string }[];
  refused: { name: string; message: string; close_code: number }[];
  text_message_close_code: number;
  over_the_limit_close_code: number;
}

const vectors = JSON.parse(readFileSync(new URL("../../tests/vectors/rtc_fragments.json", import.meta.url), "utf8")) as Vectors;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
/** A fresh ArrayBuffer holding `text`'s bytes, as a data channel delivers a message. */
const buffer = (text: string): ArrayBuffer => new Uint8Array(Buffer.from(text, "hex")).buffer;

type Listener = (event: { readonly data?: unknown }) => void;

/**
 * An open data channel as far as `RtcChannel` sees one: `send` records a copy and adds to
 * `bufferedAmount`; `drain` lowers it, firing "bufferedamountlow" when it crosses the threshold;
 * `close` goes through "closing" to "closed" and fires "close" a moment later.
 */
class FakeDataChannel implements DataChannelLike {
  binaryType = "blob";
  readyState = "open";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  readonly sent: Uint8Array[] = [];
  private readonly listeners = new Map<string, Listener[]>();

  send(data: ArrayBuffer | ArrayBufferView): void {
    if (this.readyState !== "open") throw new Error("InvalidStateError: the data channel is not open");
    const copy = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() : new Uint8Array(data.slice(0));
    this.sent.push(copy);
    this.bufferedAmount += copy.length;
  }

  close(): void {
    if (this.readyState === "closing" || this.readyState === "closed") return;
    this.readyState = "closing";
    queueMicrotask(() => this.closed());
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  private fire(type: string, data?: unknown): void {
    for (const listener of this.listeners.get(type) ?? []) listener({ data });
  }

  /** A message from the peer. */
  deliver(data: unknown): void {
    this.fire("message", data);
  }

  /** The buffer went down to `amount` bytes. */
  drain(amount: number): void {
    const crossed = this.bufferedAmount > this.bufferedAmountLowThreshold && amount <= this.bufferedAmountLowThreshold;
    this.bufferedAmount = amount;
    if (crossed) this.fire("bufferedamountlow");
  }

  /** The data channel is closed (by either side, or it dropped). */
  closed(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.fire("close");
  }
}

/** A connection that records being closed, with the remote's max message size. */
class FakeConnection implements ConnectionLike {
  closes = 0;
  constructor(readonly sctp: { maxMessageSize: number } | null = null) {}
  close(): void {
    this.closes += 1;
  }
}

function channelOn(options: RtcChannelOptions = {}, connection: FakeConnection | null = null): [RtcChannel, FakeDataChannel] {
  const dc = new FakeDataChannel();
  return [new RtcChannel(dc, connection, options), dc];
}

/** The error `receive` rejects with. */
const failure = (channel: RtcChannel): Promise<unknown> => channel.receive(1_000).catch((e: unknown) => e);

// the browser's objects fit the structural types
const browserChannel: DataChannelLike | null = null as RTCDataChannel | null;
const browserConnection: ConnectionLike | null = null as RTCPeerConnection | null;

// -- the fragment format ---------------------------------------------------------------------

describe("the fragment format (shared vectors)", () => {
  it("has the Python side's header bytes and message size", () => {
    expect([FRAGMENT, LAST_FRAGMENT, CLOSE_NOTICE, MAX_MESSAGE]).toEqual([0, 1, 2, 65536]);
    expect([browserChannel, browserConnection]).toEqual([null, null]);
  });

  it.each(vectors.frames.map((v) => [v.name, v] as const))("cuts a frame: %s", (_, vector) => {
    const messages = fragments(Buffer.from(vector.frame, "hex"), vector.message_size);
    expect(messages.map(hex)).toEqual(vector.messages);
  });

  it.each(vectors.close_notices.map((v) => [v.name, v] as const))("writes a close notice: %s", (_, vector) => {
    expect(hex(closeNotice(vector.code, vector.reason, vector.message_size))).toBe(vector.message);
  });

  it("refuses message sizes and codes the format cannot carry", () => {
    expect(() => fragments(bytes(1), 1)).toThrow(RangeError);
    expect(() => closeNotice(1000, "", 2)).toThrow(RangeError);
    expect(() => closeNotice(65536, "", 64)).toThrow(RangeError);
    expect(hex(closeNotice(4001, "a😀", 6))).toBe("020fa161"); // a surrogate pair is one character
  });

  it.each(vectors.frames.map((v) => [v.name, v] as const))("joins the messages into the frame: %s", async (_, vector) => {
    const [channel, dc] = channelOn();
    for (const message of vector.messages) dc.deliver(buffer(message));
    expect(hex(await channel.receive(100))).toBe(vector.frame);
    expect(channel.bytesReceived).toBe(vector.frame.length / 2);
    expect(channel.closed).toBeNull();
  });

  it.each(vectors.close_notices.map((v) => [v.name, v] as const))("reads a close notice: %s", async (_, vector) => {
    const [channel, dc] = channelOn();
    dc.deliver(buffer(vector.message));
    const closed = await failure(channel);
    expect(closed).toBeInstanceOf(ChannelClosed);
    const { code, reason } = closed as ChannelClosed;
    expect(code).toBe(vector.code);
    expect(vector.reason.startsWith(reason)).toBe(true);
    expect(hex(closeNotice(code as number, reason, vector.message_size))).toBe(vector.message);
    expect(dc.readyState).not.toBe("open"); // this side lets go of the data channel too
  });

  it.each(vectors.refused.map((v) => [v.name, v] as const))("refuses %s", async (_, vector) => {
    const [channel, dc] = channelOn();
    dc.deliver(buffer(vector.message));
    expect(await failure(channel)).toMatchObject({ code: vector.close_code });
    expect(dc.sent.at(-1)?.subarray(0, 3)).toEqual(closeNotice(vector.close_code, "", MAX_MESSAGE)); // the peer is told
    expect(dc.readyState).not.toBe("open");
  });

  it("refuses a text message, and a Blob", async () => {
    const [channel, dc] = channelOn();
    dc.deliver("hello");
    expect(await failure(channel)).toMatchObject({ code: vectors.text_message_close_code });

    const [other, otherDc] = channelOn();
    otherDc.deliver(new Blob([Uint8Array.from([LAST_FRAGMENT])]));
    expect(await failure(other)).toMatchObject({ code: 1003 });
  });

  it("refuses a frame whose fragments join to more than maxFrame", async () => {
    const [channel, dc] = channelOn({ maxFrame: 6 });
    for (const message of fragments(bytes(6), 4)) dc.deliver(message.buffer);
    expect(Array.from(await channel.receive(100))).toEqual([1, 1, 1, 1, 1, 1]);
    for (const message of fragments(bytes(7), 4)) dc.deliver(message.buffer);
    expect(await failure(channel)).toMatchObject({ code: vectors.over_the_limit_close_code });
  });
});

// -- the channel -------------------------------------------------------------------------------

describe("RtcChannel", () => {
  it("sets up the data channel: binary messages, the low-buffer threshold, the message size", () => {
    const [channel, dc] = channelOn({ highWater: 1 << 20 });
    expect([dc.binaryType, dc.bufferedAmountLowThreshold, channel.messageSize]).toEqual(["arraybuffer", 1 << 19, MAX_MESSAGE]);

    const [capped] = channelOn({ messageSize: 1 << 20 }, new FakeConnection({ maxMessageSize: 1000 }));
    expect(capped.messageSize).toBe(1000);
    const [small, smallDc] = channelOn({ highWater: 1000, messageSize: 800 });
    expect([small.messageSize, smallDc.bufferedAmountLowThreshold]).toEqual([800, 200]);
    expect(() => channelOn({ messageSize: 2 })).toThrow(RangeError);
  });

  it("sends a large frame as several messages the peer joins back", async () => {
    const [a, dc] = channelOn({ messageSize: 4096 });
    const frame = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
    await a.send(frame, 100);
    await a.send(new Uint8Array(0), 100);
    expect(dc.sent.map((m) => [m[0], m.length])).toEqual([
      [FRAGMENT, 4096],
      [FRAGMENT, 4096],
      [LAST_FRAGMENT, 10_000 - 2 * 4095 + 1],
      [LAST_FRAGMENT, 1],
    ]);
    expect(a.bytesSent).toBe(10_000);

    const [b, peer] = channelOn();
    for (const message of dc.sent) peer.deliver(message.buffer);
    expect(await b.receive(100)).toEqual(frame);
    expect(await b.receive(100)).toEqual(new Uint8Array(0));
    expect(b.bytesReceived).toBe(10_000);
  });

  it("rejects a frame over maxFrame with a RangeError, sending nothing", async () => {
    const [channel, dc] = channelOn({ maxFrame: 10 });
    await expect(channel.send(bytes(11), 100)).rejects.toBeInstanceOf(RangeError);
    expect(dc.sent).toHaveLength(0);
    expect(channel.closed).toBeNull();
  });

  it("waits while the buffer is full and goes on, in order, once it drains", async () => {
    const [channel, dc] = channelOn({ highWater: 1000, messageSize: 400 });
    const first = track(channel.send(bytes(1200, 1), 2_000)); // 400 + 400 + 400 + 4 bytes
    const second = track(channel.send(bytes(10, 2), 2_000));
    await flush();
    expect(dc.sent.map((m) => m.length)).toEqual([400, 400]); // a third would take 1200 bytes buffered
    expect([first.done(), second.done()]).toEqual([false, false]);

    dc.drain(700); // still above the threshold (500): no event, nothing moves
    await flush();
    expect(dc.sent).toHaveLength(2);

    dc.drain(500);
    expect(await first.result).toBe("sent");
    expect(await second.result).toBe("sent");
    expect(dc.sent.map((m) => [m[0], m[1], m.length])).toEqual([
      [FRAGMENT, 1, 400],
      [FRAGMENT, 1, 400],
      [FRAGMENT, 1, 400],
      [LAST_FRAGMENT, 1, 4],
      [LAST_FRAGMENT, 2, 11],
    ]);
    expect(channel.bytesSent).toBe(1210);
  });

  it("always hands a message to an empty buffer, even one over the high-water mark", async () => {
    const [channel, dc] = channelOn({ highWater: 100, messageSize: 400 });
    expect(dc.bufferedAmountLowThreshold).toBe(0);
    const sending = track(channel.send(bytes(500), 2_000));
    await flush();
    expect(dc.sent).toHaveLength(1);
    dc.drain(0);
    expect(await sending.result).toBe("sent");
    expect(dc.sent.map((m) => m.length)).toEqual([400, 102]);
  });

  it("times out a send that finds no room: ChannelTimeout, and the channel closes with 1011", async () => {
    const [channel, dc] = channelOn({ highWater: 1000, messageSize: 400 }, new FakeConnection());
    const cut = track(channel.send(bytes(1200), 30));
    const behind = track(channel.send(bytes(10), 2_000));
    const error = await cut.result;
    expect(error).toBeInstanceOf(ChannelTimeout);
    expect((error as Error).message).toContain("the data channel's buffer stayed full for 30 ms (800 bytes buffered, 2 of 4 messages sent)");
    expect(await behind.result).toEqual(new ChannelClosed(1011, "a send timed out"));
    expect(channel.closed).toEqual(new ChannelClosed(1011, "a send timed out"));
    expect(hex(dc.sent.at(-1) as Uint8Array)).toBe(hex(closeNotice(1011, "a send timed out", 400)));
  });

  it("stops a send on abort: the channel stays open before any message went out, closes after", async () => {
    const [channel, dc] = channelOn({ highWater: 1000, messageSize: 400 });
    dc.bufferedAmount = 995;
    const early = new AbortController();
    const waiting = track(channel.send(bytes(10), 2_000, early.signal));
    early.abort(new Error("stop"));
    expect(await waiting.result).toEqual(new Error("stop"));
    expect([dc.sent.length, channel.closed]).toEqual([0, null]);

    dc.drain(0);
    const late = new AbortController();
    const partway = track(channel.send(bytes(1200), 2_000, late.signal));
    await flush();
    expect(dc.sent).toHaveLength(2);
    late.abort(new Error("stop"));
    expect(await partway.result).toEqual(new Error("stop"));
    expect(channel.closed).toMatchObject({ code: 1011 });
  });

  it("closes: sends the notice, closes the data channel, then the connection; idempotent", async () => {
    const connection = new FakeConnection();
    const [channel, dc] = channelOn({}, connection);
    await channel.send(bytes(3), 100);
    channel.close(4001, "left the round");
    channel.close(1000, "again");
    expect(dc.sent.map(hex)).toEqual(["01010101", hex(closeNotice(4001, "left the round", MAX_MESSAGE))]);
    expect(dc.readyState).toBe("closing");
    expect(connection.closes).toBe(0); // not before the data channel has closed
    await until(() => dc.readyState === "closed");
    expect(connection.closes).toBe(1);

    expect(channel.closed).toEqual(new ChannelClosed(4001, "left the round"));
    await expect(channel.send(bytes(1), 100)).rejects.toEqual(new ChannelClosed(4001, "left the round"));
    await expect(channel.receive(100)).rejects.toEqual(new ChannelClosed(4001, "left the round"));
  });

  it("reports the peer's notice after the frames received before it", async () => {
    const connection = new FakeConnection();
    const [channel, dc] = channelOn({}, connection);
    dc.deliver(Uint8Array.from([LAST_FRAGMENT, 7]).buffer);
    dc.deliver(closeNotice(4404, "unknown task", MAX_MESSAGE).buffer);
    dc.deliver(Uint8Array.from([LAST_FRAGMENT, 8]).buffer); // after the notice: ignored
    expect(Array.from(await channel.receive(100))).toEqual([7]);
    await expect(channel.receive(100)).rejects.toEqual(new ChannelClosed(4404, "unknown task"));
    expect(dc.sent).toHaveLength(0); // no notice back
    await until(() => connection.closes === 1);
  });

  it("reads the data channel closing without a notice as a drop (1006)", async () => {
    const connection = new FakeConnection();
    const [channel, dc] = channelOn({ highWater: 10 }, connection);
    dc.bufferedAmount = 10;
    const waiting = track(channel.send(bytes(5), 2_000));
    dc.closed();
    const dropped = new ChannelClosed(1006, "the connection dropped");
    expect(await waiting.result).toEqual(dropped);
    await expect(channel.receive(100)).rejects.toEqual(dropped);
    expect(connection.closes).toBe(1);
    channel.close();
    expect([dc.sent.length, connection.closes]).toEqual([0, 1]);
  });

  it("times out a receive with ChannelTimeout", async () => {
    const [channel] = channelOn();
    await expect(channel.receive(20)).rejects.toBeInstanceOf(ChannelTimeout);
  });
});
