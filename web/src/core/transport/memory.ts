/**
 * Two in-process channel ends joined to each other, for tests and simulation: frames are copied
 * across as over a wire, and a sender waits while the peer has more than `highWater` bytes queued
 * and not yet taken.
 */

import { DEFAULT_MAX_FRAME } from "../protocol/codec";
import { ChannelClosed, DEFAULT_HIGH_WATER, type Channel } from "./channel";
import { Inbox, Outbox, QueuedChannel } from "./queues";

/** Options of `memoryPair`. */
export interface MemoryPairOptions {
  /** Largest frame (bytes; default 256 MiB, as a WebSocket channel). */
  maxFrame?: number;
  /** Bytes the peer may hold queued before a send waits (default 1 MiB); a frame always goes to an empty queue. */
  highWater?: number;
}

/** One end of a `memoryPair`. */
class MemoryEnd extends QueuedChannel {
  readonly inbox = new Inbox(() => this.peer.outbox.pump());
  readonly outbox: Outbox;
  private peer!: MemoryEnd;

  constructor(
    readonly maxFrame: number,
    highWater: number,
  ) {
    super();
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

  close(code = 1000, reason = ""): void {
    if (this.closed !== null) return;
    this.end(new ChannelClosed(code, reason));
    this.peer.end(new ChannelClosed(code, reason));
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
