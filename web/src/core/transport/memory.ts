/**
 * Two in-process channel ends joined to each other, for tests and simulation: frames are copied
 * across as over a wire, and a sender waits while the peer has more than `highWater` bytes queued
 * and not yet taken.
 */

import { DEFAULT_MAX_FRAME } from "../protocol/codec";
import { ChannelClosed, DEFAULT_HIGH_WATER, frameTooLarge, type Channel } from "./channel";
import { Inbox, Outbox } from "./queues";

/** Options of `memoryPair`. */
export interface MemoryPairOptions {
  /** Largest frame (bytes; default 256 MiB, as a WebSocket channel). */
  maxFrame?: number;
  /** Bytes the peer may hold queued before a send waits (default 1 MiB); a frame always goes to an empty queue. */
  highWater?: number;
}

/** One end of a `memoryPair`. */
class MemoryEnd implements Channel {
  readonly inbox = new Inbox(() => this.peer.outbox.pump());
  readonly outbox: Outbox;
  closed: ChannelClosed | null = null;
  bytesSent = 0;
  private peer!: MemoryEnd;

  constructor(
    readonly maxFrame: number,
    highWater: number,
  ) {
    this.outbox = new Outbox(
      (bytes) => {
        const queued = this.peer.inbox.queuedBytes;
        return queued === 0 || queued + bytes <= highWater;
      },
      (frame) => {
        this.bytesSent += frame.length;
        this.peer.inbox.push(frame.slice());
      },
    );
  }

  /** Join two fresh ends. */
  static join(a: MemoryEnd, b: MemoryEnd): void {
    a.peer = b;
    b.peer = a;
  }

  get bytesReceived(): number {
    return this.inbox.bytesIn;
  }

  send(frame: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed === null && frame.length > this.maxFrame) return Promise.reject(frameTooLarge(frame.length, this.maxFrame));
    return this.outbox.send(frame, timeoutMs, signal);
  }

  receive(timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.inbox.take(timeoutMs, signal);
  }

  close(code = 1000, reason = ""): void {
    if (this.closed !== null) return;
    this.shut(new ChannelClosed(code, reason));
    this.peer.shut(new ChannelClosed(code, reason));
  }

  private shut(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    this.closed = closed;
    this.inbox.end(closed);
    this.outbox.end(closed);
  }
}

/** Two joined in-process channel ends: what one sends, the other receives. */
export function memoryPair(options: MemoryPairOptions = {}): [Channel, Channel] {
  const { maxFrame = DEFAULT_MAX_FRAME, highWater = DEFAULT_HIGH_WATER } = options;
  if (!(maxFrame > 0) || !(highWater >= 0)) {
    throw new RangeError(`memoryPair: maxFrame must be > 0 and highWater ≥ 0, got ${maxFrame} and ${highWater}`);
  }
  const a = new MemoryEnd(maxFrame, highWater);
  const b = new MemoryEnd(maxFrame, highWater);
  MemoryEnd.join(a, b);
  return [a, b];
}
