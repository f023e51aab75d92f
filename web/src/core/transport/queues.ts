/**
 * The two queues behind each end of a channel: the `Inbox` holds the frames received and not yet
 * taken; the `Outbox` holds, in order, the frames waiting for room in the outgoing buffer.
 * `QueuedChannel` is a channel end built on the two; `WaitQueue` is the waiting queue under the
 * `Inbox` (and under a client `Link`).
 */

import { ChannelClosed, ChannelTimeout, frameTooLarge, type Channel } from "./channel";
import { bounded, stopped } from "./wait";

/**
 * A queue whose takers wait, bounded and abortable, for the next item. Once ended, no more items
 * are queued; takers drain what is queued, then get the end's error.
 */
export class WaitQueue<T, E extends Error = Error> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private woken: Promise<void> | null = null;
  /** Why no more items will arrive; null until the queue ends. */
  ended: E | null = null;

  /** `onTake` runs as each item is taken (the queue shrank). */
  constructor(private readonly onTake: (item: T) => void = () => undefined) {}

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

  /** Queue `item` and wake a waiting taker; false (ignored) once ended. */
  push(item: T): boolean {
    if (this.ended !== null) return false;
    this.items.push(item);
    this.notify();
    return true;
  }

  /** No more items will be queued (idempotent); takers drain the queue, then get `error`. */
  end(error: E): void {
    if (this.ended !== null) return;
    this.ended = error;
    this.notify();
  }

  /**
   * The next item, waiting at most `timeoutMs` in all; rejects with the end's error once the queue
   * is drained and ended, with the signal's reason if aborted, and on timeout as `bounded` does
   * (naming `what`, or with `expired()` where given).
   */
  async take(timeoutMs: number, signal: AbortSignal | undefined, what: string, expired?: () => Error): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.items.length > 0) {
        const item = this.items.shift() as T;
        this.onTake(item);
        return item;
      }
      if (this.ended !== null) throw this.ended;
      await bounded(this.changed(), signal, deadline - Date.now(), what, expired);
    }
  }

  /** Remove and return the queued items for which `keep` is true, in order. */
  remove(keep: (item: T) => boolean): T[] {
    const taken = this.items.filter(keep);
    const rest = this.items.filter((item) => !keep(item));
    this.items.splice(0, this.items.length, ...rest);
    return taken;
  }
}

/** Frames received and not yet taken, and the wait for the next one. */
export class Inbox {
  private readonly frames: WaitQueue<Uint8Array, ChannelClosed>;
  /** Bytes of the frames queued (received, not yet taken). */
  queuedBytes = 0;
  /** Bytes of every frame received. */
  bytesIn = 0;

  /** `onTake` runs after each frame is taken (the queue shrank). */
  constructor(onTake: () => void = () => undefined) {
    this.frames = new WaitQueue((frame) => {
      this.queuedBytes -= frame.length;
      onTake();
    });
  }

  /** Set once no more frames will arrive. */
  get closed(): ChannelClosed | null {
    return this.frames.ended;
  }

  /** Queue a received frame (ignored once closed). */
  push(frame: Uint8Array): void {
    if (!this.frames.push(frame)) return;
    this.queuedBytes += frame.length;
    this.bytesIn += frame.length;
  }

  /** No more frames will arrive; takers drain the queue, then get `closed`. */
  end(closed: ChannelClosed): void {
    this.frames.end(closed);
  }

  /** The next frame (see `Channel.receive`). */
  take(timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const expired = (): Error => new ChannelTimeout(`waiting for a frame from the peer: nothing within ${Math.round(timeoutMs)} ms`);
    return this.frames.take(timeoutMs, signal, "receive", expired);
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

/**
 * A channel end whose frames arrive in an `Inbox` and leave through an `Outbox`: the `Channel`
 * calls that go straight to the two queues, and the end of both when the channel closes.
 */
export abstract class QueuedChannel implements Channel {
  closed: ChannelClosed | null = null;
  bytesSent = 0;
  abstract readonly maxFrame: number;
  protected abstract readonly inbox: Inbox;
  protected abstract readonly outbox: Outbox;

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

  abstract close(code?: number, reason?: string): void;

  /** The channel is closed for `closed` (idempotent): no more frames in or out; the inbox drains. */
  protected end(closed: ChannelClosed): void {
    if (this.closed !== null) return;
    this.closed = closed;
    this.inbox.end(closed);
    this.outbox.end(closed);
  }
}
