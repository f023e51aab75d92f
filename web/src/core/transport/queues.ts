/**
 * The two queues behind each end of a channel: the `Inbox` holds the frames received and not yet
 * taken; the `Outbox` holds, in order, the frames waiting for room in the outgoing buffer.
 */

import { ChannelClosed, ChannelTimeout } from "./channel";
import { bounded, stopped } from "./wait";

/** Frames received and not yet taken, and the wait for the next one. */
export class Inbox {
  private readonly frames: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private woken: Promise<void> | null = null;
  /** Bytes of the frames queued (received, not yet taken). */
  queuedBytes = 0;
  /** Bytes of every frame received. */
  bytesIn = 0;
  /** Set once no more frames will arrive. */
  closed: ChannelClosed | null = null;

  /** `onTake` runs after each frame is taken (the queue shrank). */
  constructor(private readonly onTake: () => void = () => undefined) {}

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    this.woken = null;
    wake?.();
  }

  private changed(): Promise<void> {
    this.woken ??= new Promise<void>((resolve) => (this.wake = resolve));
    return this.woken;
  }

  /** Queue a received frame (ignored once closed). */
  push(frame: Uint8Array): void {
    if (this.closed !== null) return;
    this.frames.push(frame);
    this.queuedBytes += frame.length;
    this.bytesIn += frame.length;
    this.notify();
  }

  /** No more frames will arrive; takers drain the queue, then get `closed`. */
  end(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    this.closed = closed;
    this.notify();
  }

  /** The next frame (see `Channel.receive`). */
  async take(timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    const expired = (): Error => new ChannelTimeout(`waiting for a frame from the peer: nothing within ${Math.round(timeoutMs)} ms`);
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) {
        this.queuedBytes -= frame.length;
        this.onTake();
        return frame;
      }
      if (this.closed !== null) throw this.closed;
      await bounded(this.changed(), signal, deadline - Date.now(), "receive", expired);
    }
  }
}

interface Waiting {
  frame: Uint8Array;
  /** Resolve (no error) or reject, removing timers and listeners. */
  settle: (error?: Error) => void;
}

/**
 * Frames waiting, in order, for room in an outgoing buffer. `room(bytes)` says whether a frame of
 * that size may be written now; `write` writes it (and may throw). The owner calls `pump()`
 * whenever room may have appeared; with `pollMs`, the outbox also polls while frames wait.
 */
export class Outbox {
  private readonly waiting: Waiting[] = [];
  private poller: ReturnType<typeof setInterval> | undefined;
  private closed: ChannelClosed | null = null;

  constructor(
    private readonly room: (bytes: number) => boolean,
    private readonly write: (frame: Uint8Array) => void,
    private readonly pollMs: number | null = null,
  ) {}

  /** Write `frame` once there is room and every earlier frame is written (see `Channel.send`). */
  send(frame: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed !== null) return Promise.reject(this.closed);
    if (signal?.aborted) return Promise.reject(stopped(signal));
    if (Number.isNaN(timeoutMs)) return Promise.reject(new RangeError("send: the timeout is NaN"));
    if (this.waiting.length === 0 && this.room(frame.length)) {
      try {
        this.write(frame);
      } catch (exc) {
        return Promise.reject(exc);
      }
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => entry.settle(stopped(signal as AbortSignal));
      const entry: Waiting = {
        frame,
        settle: (error) => {
          const at = this.waiting.indexOf(entry);
          if (at >= 0) this.waiting.splice(at, 1);
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (error === undefined) resolve();
          else reject(error);
        },
      };
      signal?.addEventListener("abort", onAbort);
      if (Number.isFinite(timeoutMs)) {
        const ms = Math.round(timeoutMs);
        const why = `sending a frame of ${frame.length} bytes: the outgoing buffer stayed full for ${ms} ms`;
        timer = setTimeout(() => entry.settle(new ChannelTimeout(why)), Math.max(0, timeoutMs));
      }
      this.waiting.push(entry);
      if (this.pollMs !== null && this.poller === undefined) this.poller = setInterval(() => this.pump(), this.pollMs);
    });
  }

  /** Write the waiting frames, in order, while there is room. */
  pump(): void {
    for (;;) {
      const next = this.waiting[0];
      if (next === undefined || this.closed !== null || !this.room(next.frame.length)) break;
      this.waiting.shift();
      try {
        this.write(next.frame);
        next.settle();
      } catch (exc) {
        next.settle(exc instanceof Error ? exc : new Error(String(exc)));
      }
    }
    this.stopPolling();
  }

  private stopPolling(): void {
    if (this.poller !== undefined && (this.waiting.length === 0 || this.closed !== null)) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  /** Nothing more can be sent: every waiting frame is rejected with `closed`, and later sends too. */
  end(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    this.closed = closed;
    for (const entry of [...this.waiting]) entry.settle(closed);
    this.stopPolling();
  }
}
