/**
 * A `Channel` over a WebRTC data channel (ordered, reliable), speaking the format of the Python
 * side (src/disco/transport/rtc.py; shared vectors in tests/vectors/rtc_fragments.json).
 *
 * A data channel carries messages of a limited size, so a frame travels as fragments of at most
 * `min(the remote's max message size, 64 KiB)` bytes, each with a one-byte header:
 *
 *     0x00 payload…      a fragment; more of the frame follows
 *     0x01 payload…      the frame's last fragment (an empty frame is the single message 0x01)
 *     0x02 code reason   the sender is closing: uint16 big-endian close code, UTF-8 reason
 *
 * A send waits while the data channel's `bufferedAmount` leaves no room under the high-water
 * mark, and wakes on "bufferedamountlow". A data channel has no close code of its own: the 0x02
 * notice carries it, and a data channel that closes without one reads as dropped (1006).
 */

import { DEFAULT_MAX_FRAME } from "../protocol/codec";
import { ChannelClosed, ChannelTimeout, DEFAULT_HIGH_WATER, frameTooLarge, type Channel } from "./channel";
import { Inbox } from "./queues";
import { stopped } from "./wait";

/** Header byte of a fragment that more of the frame follows. */
export const FRAGMENT = 0;
/** Header byte of a frame's last fragment. */
export const LAST_FRAGMENT = 1;
/** Header byte of a close notice (uint16 big-endian code, then the UTF-8 reason). */
export const CLOSE_NOTICE = 2;
/** The largest data-channel message sent, header included (64 KiB, what aiortc accepts). */
export const MAX_MESSAGE = 65536;
/** How long closing waits for the data channel's "close" before the connection is closed anyway (ms). */
export const CLOSE_WAIT_MS = 5_000;

/** The smallest message size a channel accepts: a close notice with an empty reason. */
const MIN_CHANNEL_MESSAGE = 3;

/** What an `RtcChannel` needs of a data channel; the browser's `RTCDataChannel` fits. */
export interface DataChannelLike {
  binaryType: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  send(data: ArrayBuffer | ArrayBufferView): void;
  close(): void;
  addEventListener(type: "message" | "close" | "bufferedamountlow", listener: (event: { readonly data?: unknown }) => void): void;
}

/** What an `RtcChannel` needs of the peer connection; the browser's `RTCPeerConnection` fits. */
export interface ConnectionLike {
  close(): void;
  /** The SCTP transport once negotiated; its `maxMessageSize` caps the message size. */
  readonly sctp?: { readonly maxMessageSize: number } | null;
}

/** Options of an `RtcChannel`. */
export interface RtcChannelOptions {
  /** Largest frame (bytes; default 256 MiB, as the other channels). */
  maxFrame?: number;
  /** Largest message sent (bytes, header included; at least 3): capped at `MAX_MESSAGE` and the connection's `sctp.maxMessageSize`. */
  messageSize?: number;
  /** Bytes the data channel may hold buffered before a send waits (default 1 MiB); an empty buffer always takes a message. */
  highWater?: number;
}

/** Message `index` of the messages carrying `frame` with `payload` bytes per message. */
function fragmentAt(frame: Uint8Array, payload: number, index: number, count: number): Uint8Array<ArrayBuffer> {
  const piece = frame.subarray(index * payload, Math.min(frame.length, (index + 1) * payload));
  const message = new Uint8Array(1 + piece.length);
  message[0] = index === count - 1 ? LAST_FRAGMENT : FRAGMENT;
  message.set(piece, 1);
  return message;
}

/** How many messages of `messageSize` bytes carry a frame of `size` bytes (at least one). */
function fragmentCount(size: number, messageSize: number): number {
  return Math.max(1, Math.ceil(size / (messageSize - 1)));
}

/** A `RangeError` unless `messageSize` is an integer of at least `least`. */
function checkMessageSize(messageSize: number, least: number): void {
  if (!Number.isInteger(messageSize) || messageSize < least) {
    throw new RangeError(`the message size must be an integer of at least ${least} bytes, got ${messageSize}`);
  }
}

/** The data-channel messages that carry `frame`, none over `messageSize` bytes (at least 2). */
export function fragments(frame: Uint8Array, messageSize: number): Uint8Array[] {
  checkMessageSize(messageSize, 2);
  const count = fragmentCount(frame.length, messageSize);
  return Array.from({ length: count }, (_, index) => fragmentAt(frame, messageSize - 1, index, count));
}

/**
 * The message that tells the peer this side closes: `code` (0–65535) and as much of `reason` as
 * fits in `messageSize` bytes (at least 3), cut to whole characters.
 */
export function closeNotice(code: number, reason: string, messageSize: number): Uint8Array {
  checkMessageSize(messageSize, MIN_CHANNEL_MESSAGE);
  if (!Number.isInteger(code) || code < 0 || code > 0xffff) throw new RangeError(`a close code is an integer in 0–65535, got ${code}`);
  const encoder = new TextEncoder();
  const room = messageSize - 3;
  let kept = "";
  let used = 0;
  for (const character of reason) {
    const size = encoder.encode(character).length;
    if (used + size > room) break;
    kept += character;
    used += size;
  }
  const text = encoder.encode(kept);
  const message = new Uint8Array(3 + text.length);
  message[0] = CLOSE_NOTICE;
  message[1] = code >> 8;
  message[2] = code & 0xff;
  message.set(text, 3);
  return message;
}

/** A frame waiting, in order, for its messages to go out. */
interface Sending {
  frame: Uint8Array;
  /** How many messages carry the frame, and how many have been handed to the data channel. */
  count: number;
  next: number;
  /** Resolve (no error) or reject, removing timers and listeners and the entry from the queue. */
  settle: (error?: Error) => void;
}

/** A `Channel` on an open, ordered and reliable data channel, optionally owning its connection. */
export class RtcChannel implements Channel {
  closed: ChannelClosed | null = null;
  bytesSent = 0;
  readonly maxFrame: number;
  /** Largest message sent, header included. */
  readonly messageSize: number;
  private readonly highWater: number;
  private readonly inbox = new Inbox();
  private readonly sending: Sending[] = [];
  /** Fragments of the frame arriving, and their joined size. */
  private parts: Uint8Array[] = [];
  private partial = 0;
  private connectionClosed = false;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wrap `channel`; `connection`, when given, is closed once the data channel has closed (or
   * `CLOSE_WAIT_MS` after this side closed it). Sets `binaryType` to "arraybuffer" and
   * `bufferedAmountLowThreshold` to half the high-water mark (less where a message would not
   * otherwise fit under the mark once the buffer is that low).
   */
  constructor(
    private readonly channel: DataChannelLike,
    private readonly connection: ConnectionLike | null = null,
    options: RtcChannelOptions = {},
  ) {
    const { maxFrame = DEFAULT_MAX_FRAME, messageSize = MAX_MESSAGE, highWater = DEFAULT_HIGH_WATER } = options;
    if (!(maxFrame > 0) || !(highWater >= 0)) {
      throw new RangeError(`RtcChannel: maxFrame must be > 0 and highWater ≥ 0, got ${maxFrame} and ${highWater}`);
    }
    checkMessageSize(messageSize, MIN_CHANNEL_MESSAGE);
    const remote = connection?.sctp?.maxMessageSize;
    this.maxFrame = maxFrame;
    this.messageSize = Math.min(messageSize, MAX_MESSAGE, remote !== undefined && remote >= MIN_CHANNEL_MESSAGE ? Math.floor(remote) : Infinity);
    this.highWater = highWater;
    channel.binaryType = "arraybuffer";
    // a waiting send has more than this buffered, so the event is sure to come once there is room
    channel.bufferedAmountLowThreshold = Math.max(0, Math.min(Math.floor(highWater / 2), highWater - this.messageSize));
    channel.addEventListener("message", (event) => this.arrive(event.data));
    channel.addEventListener("bufferedamountlow", () => this.pump());
    channel.addEventListener("close", () => {
      this.end(new ChannelClosed(1006, "the connection dropped"));
      this.closeConnection();
    });
    if (channel.readyState === "closed") {
      this.end(new ChannelClosed(1006, "the connection dropped"));
      this.closeConnection();
    }
  }

  get bytesReceived(): number {
    return this.inbox.bytesIn;
  }

  // -- receiving ------------------------------------------------------------------------------

  private arrive(data: unknown): void {
    if (this.closed !== null) return;
    if (typeof data === "string") {
      this.close(1003, "the peer sent a text message");
      return;
    }
    let message: Uint8Array;
    if (data instanceof ArrayBuffer) message = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) message = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.close(1003, "a message is not an ArrayBuffer (binaryType must be 'arraybuffer')");
      return;
    }
    const kind = message[0];
    if (kind === undefined) {
      this.close(1003, "the peer sent an empty message");
      return;
    }
    const payload = message.subarray(1);
    if (kind === CLOSE_NOTICE) {
      if (payload.length < 2) {
        this.close(1003, "the peer sent a close notice without a code");
        return;
      }
      const code = ((payload[0] as number) << 8) | (payload[1] as number);
      this.end(new ChannelClosed(code, new TextDecoder().decode(payload.subarray(2))));
      this.release();
    } else if (kind === FRAGMENT || kind === LAST_FRAGMENT) {
      this.partial += payload.length;
      if (this.partial > this.maxFrame) {
        this.close(1009, `the peer sent a frame over the limit of ${this.maxFrame} bytes`);
        return;
      }
      this.parts.push(payload);
      if (kind === LAST_FRAGMENT) {
        const frame = new Uint8Array(this.partial);
        let at = 0;
        for (const part of this.parts) {
          frame.set(part, at);
          at += part.length;
        }
        this.parts = [];
        this.partial = 0;
        this.inbox.push(frame);
      }
    } else {
      this.close(1003, `the peer sent a message of unknown kind ${kind}`);
    }
  }

  receive(timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.inbox.take(timeoutMs, signal);
  }

  // -- sending --------------------------------------------------------------------------------

  /**
   * Send `frame` as fragments, each once the data channel's buffer has room. A send that times
   * out closes the channel (1011), as does one stopped by `signal` after part of its frame went out:
   * the peer could not tell where the next frame starts.
   */
  send(frame: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed !== null) return Promise.reject(this.closed);
    if (frame.length > this.maxFrame) return Promise.reject(frameTooLarge(frame.length, this.maxFrame));
    if (signal?.aborted) return Promise.reject(stopped(signal));
    if (Number.isNaN(timeoutMs)) return Promise.reject(new RangeError("send: the timeout is NaN"));
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        const started = entry.next > 0;
        entry.settle(stopped(signal as AbortSignal));
        if (started) this.close(1011, "a send was stopped partway through a frame");
        else this.pump();
      };
      const entry: Sending = {
        frame,
        count: fragmentCount(frame.length, this.messageSize),
        next: 0,
        settle: (error) => {
          const at = this.sending.indexOf(entry);
          if (at >= 0) this.sending.splice(at, 1);
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (error === undefined) resolve();
          else reject(error);
        },
      };
      this.sending.push(entry);
      signal?.addEventListener("abort", onAbort);
      this.pump();
      if (this.sending.includes(entry) && Number.isFinite(timeoutMs)) {
        const ms = Math.round(timeoutMs);
        timer = setTimeout(() => {
          const why =
            `sending a frame of ${frame.length} bytes: the data channel's buffer stayed full for ${ms} ms ` +
            `(${this.channel.bufferedAmount} bytes buffered, ${entry.next} of ${entry.count} messages sent)`;
          entry.settle(new ChannelTimeout(why));
          this.close(1011, "a send timed out");
        }, Math.max(0, timeoutMs));
      }
    });
  }

  /** Whether a message of `bytes` may be handed to the data channel now. */
  private room(bytes: number): boolean {
    const buffered = this.channel.bufferedAmount;
    return buffered === 0 || buffered + bytes <= this.highWater;
  }

  /** Hand the waiting frames' messages, in order, to the data channel while there is room. */
  private pump(): void {
    for (;;) {
      const head = this.sending[0];
      if (head === undefined || this.closed !== null) return;
      const payload = this.messageSize - 1;
      if (!this.room(1 + Math.min(payload, head.frame.length - head.next * payload))) return;
      try {
        this.channel.send(fragmentAt(head.frame, payload, head.next, head.count));
      } catch (exc) {
        this.end(new ChannelClosed(1006, `send failed: ${exc instanceof Error ? exc.message : String(exc)}`));
        this.release();
        return;
      }
      head.next += 1;
      if (head.next === head.count) {
        this.bytesSent += head.frame.length;
        head.settle();
      }
    }
  }

  // -- closing --------------------------------------------------------------------------------

  /**
   * Close (idempotent): tell the peer `code` and `reason` (cut to fit one message) if the data
   * channel is open, close the data channel, then the connection once the data channel has closed.
   */
  close(code = 1000, reason = ""): void {
    if (this.closed !== null) return;
    this.end(new ChannelClosed(code, reason));
    if (this.channel.readyState === "open") {
      try {
        this.channel.send(closeNotice(code, reason, this.messageSize));
      } catch {
        // a code out of range, or the data channel failed: the peer reads a drop
      }
    }
    this.release();
  }

  /** The channel is closed for `closed`: no more frames in or out; the inbox drains. */
  private end(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    this.closed = closed;
    this.parts = [];
    this.partial = 0;
    this.inbox.end(closed);
    for (const entry of [...this.sending]) entry.settle(closed);
  }

  /** Close the data channel, and the connection once it has closed (or after `CLOSE_WAIT_MS`). */
  private release(): void {
    if (this.channel.readyState !== "closing" && this.channel.readyState !== "closed") {
      try {
        this.channel.close();
      } catch {
        // already closing
      }
    }
    if (this.channel.readyState === "closed") this.closeConnection();
    else if (this.connection !== null && !this.connectionClosed && this.closeTimer === undefined) {
      this.closeTimer = setTimeout(() => this.closeConnection(), CLOSE_WAIT_MS);
    }
  }

  private closeConnection(): void {
    if (this.connectionClosed) return;
    this.connectionClosed = true;
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    try {
      this.connection?.close();
    } catch {
      // already closed
    }
  }
}
