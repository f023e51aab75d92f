/**
 * A `Channel` over a WebSocket (binary frames only). The WebSocket API has no drain event, so a
 * send waits for room by polling `bufferedAmount`. A text frame from the peer is a protocol
 * violation: the channel closes and reports `ChannelClosed(1003, "text frame")`.
 */

import { DEFAULT_MAX_FRAME } from "../protocol/codec";
import { ChannelClosed, ChannelTimeout, DEFAULT_HIGH_WATER } from "./channel";
import { Inbox, Outbox, QueuedChannel } from "./queues";
import { bounded } from "./wait";

/** How often a send waiting for room looks at `bufferedAmount` (ms). */
export const POLL_MS = 10;

/** Longest close reason a WebSocket accepts (bytes of UTF-8). */
const MAX_REASON = 123;

/** The code to hand to `WebSocket.close()`, which accepts only 1000 and 3000–4999. */
function sendableCode(code: number): number {
  return code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
}

/** `reason` cut to what `WebSocket.close()` accepts. */
function sendableReason(reason: string): string {
  const encoder = new TextEncoder();
  let cut = reason;
  while (encoder.encode(cut).length > MAX_REASON) cut = cut.slice(0, -1);
  return cut;
}

/** A channel over one WebSocket; made open by `WebSocketChannel.open`. */
export class WebSocketChannel extends QueuedChannel {
  protected readonly inbox = new Inbox();
  protected readonly outbox: Outbox;
  private readonly ready: Promise<void>;
  private isOpen: (() => void) | null = null;
  private failed: ((error: ChannelClosed) => void) | null = null;

  private constructor(
    private readonly ws: WebSocket,
    readonly maxFrame: number,
    highWater: number,
  ) {
    super();
    this.ready = new Promise<void>((resolve, reject) => {
      this.isOpen = resolve;
      this.failed = reject;
    });
    this.outbox = new Outbox(
      (bytes) => {
        const buffered = this.ws.bufferedAmount ?? 0;
        return buffered === 0 || buffered + bytes <= highWater;
      },
      (frame) => this.write(frame),
      POLL_MS,
    );
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.isOpen?.();
    ws.onmessage = (event: MessageEvent) => this.arrive(event.data);
    ws.onerror = () => this.end(new ChannelClosed(1006, "connection error"));
    ws.onclose = (event: CloseEvent) => this.end(new ChannelClosed(event.code, event.reason));
  }

  /**
   * Connect to `url` (ws:// or wss://) and resolve once the connection is open; reject with
   * `ChannelClosed` (1006 when it could not connect), `ChannelTimeout` after `timeoutMs`, or the
   * signal's reason. `highWater`: bytes buffered by the WebSocket before a send waits.
   */
  static async open(
    url: string,
    WebSocketImpl: typeof WebSocket,
    timeoutMs: number,
    signal?: AbortSignal,
    maxFrame = DEFAULT_MAX_FRAME,
    highWater = DEFAULT_HIGH_WATER,
  ): Promise<WebSocketChannel> {
    const channel = new WebSocketChannel(new WebSocketImpl(url), maxFrame, highWater);
    const expired = (): Error => new ChannelTimeout(`opening ${url}: no answer within ${Math.round(timeoutMs)} ms`);
    try {
      await bounded(channel.ready, signal, timeoutMs, "open", expired);
    } catch (exc) {
      channel.close(1000, "gave up connecting");
      throw exc;
    }
    return channel;
  }

  private write(frame: Uint8Array): void {
    try {
      this.ws.send(frame as Uint8Array<ArrayBuffer>);
    } catch (exc) {
      const closed = new ChannelClosed(1006, `send failed: ${exc instanceof Error ? exc.message : String(exc)}`);
      this.end(closed);
      throw closed;
    }
    this.bytesSent += frame.length;
  }

  private arrive(data: unknown): void {
    if (this.closed !== null) return;
    if (typeof data === "string") {
      this.close(1003, "text frame");
      return;
    }
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.close(1003, "frame is not an ArrayBuffer (binaryType must be 'arraybuffer')");
      return;
    }
    if (bytes.length > this.maxFrame) {
      this.close(1009, `a frame of ${bytes.length} bytes exceeds the limit of ${this.maxFrame} bytes`);
      return;
    }
    this.inbox.push(bytes);
  }

  /** The channel is closed for `closed`: no more frames in or out; the inbox drains; a pending open fails. */
  protected override end(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    super.end(closed);
    this.failed?.(closed);
    this.isOpen = null;
    this.failed = null;
  }

  /**
   * Close (idempotent). `closed` reports `code` and `reason` as given; the WebSocket itself is
   * closed with `code` where it accepts it (1000, 3000–4999), else 1000, and the reason cut to 123 bytes.
   */
  close(code = 1000, reason = ""): void {
    if (this.closed !== null) return;
    this.end(new ChannelClosed(code, reason));
    if (this.ws.readyState >= 2) return; // CLOSING or CLOSED
    try {
      this.ws.close(sendableCode(code), sendableReason(reason));
    } catch {
      // already closing or closed
    }
  }
}
