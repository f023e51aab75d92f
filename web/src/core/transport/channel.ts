/**
 * The transport seam: a `Channel` is an ordered, reliable, message-oriented link to one peer.
 * The round logic runs on it and never on a WebSocket (or data channel) directly.
 * Implementations: `memoryPair()` (two in-process ends, for tests and simulation),
 * `WebSocketChannel` (a client's connection to a server) and `RtcChannel` (a WebRTC data channel
 * to another peer, frames cut into fragments: `rtc.ts`). Mirrors `disco.transport` in Python.
 */

/** The channel is closed (by either side, or it dropped); `code` as WebSocket close codes (1000 normal, 1006 dropped), null if unknown. */
export class ChannelClosed extends Error {
  override name = "ChannelClosed";
  constructor(
    readonly code: number | null,
    readonly reason: string,
  ) {
    const how = code === null ? "closed" : `closed with code ${code}`;
    super(reason ? `${how}: ${reason}` : how);
  }
}

/** A bounded wait on a channel expired; the message says what was waited for and how long. */
export class ChannelTimeout extends Error {
  override name = "ChannelTimeout";
}

/** An ordered, reliable, message-oriented link to one peer carrying binary frames. */
export interface Channel {
  /** Largest frame this channel carries (bytes); send() rejects larger frames with a RangeError, sending nothing. */
  readonly maxFrame: number;
  /**
   * Send one frame. Waits while the frame would take the channel's outgoing buffer above its
   * high-water mark (backpressure; an empty buffer always takes a frame), at most `timeoutMs`
   * (then `ChannelTimeout`, frame not sent); rejects with `ChannelClosed` if closed; with the
   * signal's reason if `signal` aborts. Frames go out in the order of the calls.
   */
  send(frame: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /**
   * The next frame, in order. Rejects with `ChannelTimeout` after `timeoutMs` (Infinity allowed
   * only for background readers), with `ChannelClosed` once the channel is closed AND every frame
   * received before the close has been taken, with the signal's reason if aborted.
   */
  receive(timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Close (idempotent); the peer's receive() rejects with ChannelClosed(code, reason) after draining. */
  close(code?: number, reason?: string): void;
  /** Why the channel is closed, or null while open. */
  readonly closed: ChannelClosed | null;
  /** Bytes of the frames handed to the underlying transport so far. */
  readonly bytesSent: number;
  /** Bytes of the frames received so far (taken or still queued). */
  readonly bytesReceived: number;
}

/** Default high-water mark of a channel's outgoing buffer (1 MiB). */
export const DEFAULT_HIGH_WATER = 2 ** 20;

/** The `RangeError` for a frame larger than `maxFrame`. */
export function frameTooLarge(size: number, maxFrame: number): RangeError {
  return new RangeError(`a frame of ${size} bytes exceeds this channel's limit of ${maxFrame} bytes`);
}
