/**
 * One WebSocket connection to a disco server, as a queue of decoded messages with bounded,
 * abortable waits. `FederatedClient` builds its state machine on it; a new `Link` is made for
 * every (re)connection.
 */

import { ProtocolError, ServerError, StoppedError } from "../errors";
import { decode, encode, isServerMessage, type ClientMessage, type ServerMessage } from "../protocol";

/** The connection is gone: closed by either side, failed to open, or dropped. */
export class LinkClosed extends Error {
  override name = "LinkClosed";
  constructor(
    /** The WebSocket close code (1006: dropped without a close frame). */
    readonly code: number,
    readonly reason: string,
  ) {
    super(reason ? `closed with code ${code}: ${reason}` : `closed with code ${code}`);
  }
}

/** A bounded wait expired. */
export class WaitTimeout extends Error {
  override name = "WaitTimeout";
}

/** Bytes sent and received, summed over every link of a client. */
export interface Traffic {
  bytesUp: number;
  bytesDown: number;
}

/** The error a wait rejects with once `signal` is aborted. */
function stopped(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new StoppedError("stopped");
}

/**
 * `promise`, unless `signal` aborts first (rejects with its reason) or `timeoutMs` passes
 * (rejects with `new WaitTimeout(what)`). Timers and listeners are always cleaned up.
 */
export function bounded<T>(promise: Promise<T>, signal: AbortSignal, timeoutMs = Infinity, what = "wait"): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(stopped(signal));
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(stopped(signal));
    };
    signal.addEventListener("abort", onAbort);
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        cleanup();
        reject(new WaitTimeout(`${what}: no answer within ${Math.round(timeoutMs)} ms`));
      }, Math.max(0, timeoutMs));
    }
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** Wait `ms` milliseconds, or reject as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return bounded(new Promise<void>(() => undefined), signal, ms).catch((exc: unknown) => {
    if (!(exc instanceof WaitTimeout)) throw exc;
  });
}

/** One WebSocket connection: sends encoded messages, queues decoded server messages. */
export class Link {
  private readonly ws: WebSocket;
  private readonly queue: ServerMessage[] = [];
  private state: "connecting" | "open" | "ended" = "connecting";
  private ended: Error | null = null;
  private wake: (() => void) | null = null;
  private woken: Promise<void> | null = null;

  /**
   * Open a connection to `url` (a ws:// or wss:// URL). `onMessage` sees every server message
   * as it arrives (before it is queued), for status displays.
   */
  constructor(
    url: string,
    WebSocketImpl: typeof WebSocket,
    private readonly traffic: Traffic,
    private readonly onMessage: (message: ServerMessage) => void,
  ) {
    this.ws = new WebSocketImpl(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => {
      if (this.state === "connecting") this.state = "open";
      this.notify();
    };
    this.ws.onmessage = (event: MessageEvent) => this.receive(event.data);
    this.ws.onerror = () => this.end(new LinkClosed(1006, "connection error"));
    this.ws.onclose = (event: CloseEvent) => this.end(new LinkClosed(event.code, event.reason));
  }

  /** Whether the connection is open (messages can be sent). */
  get isOpen(): boolean {
    return this.state === "open";
  }

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

  private end(error: Error): void {
    if (this.state === "ended") return;
    this.state = "ended";
    this.ended = error;
    this.notify();
  }

  private receive(data: unknown): void {
    if (this.state === "ended") return;
    let message;
    try {
      if (typeof data === "string") throw new ServerError(`server sent a text frame: ${data.slice(0, 200)}`);
      let bytes: Uint8Array;
      if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
      else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      else throw new ServerError("server sent a frame that is not an ArrayBuffer (binaryType must be 'arraybuffer')");
      this.traffic.bytesDown += bytes.length;
      message = decode(bytes);
      if (!isServerMessage(message)) {
        throw new ProtocolError(`server sent a '${message.type}' message, which only clients send`);
      }
    } catch (exc) {
      this.end(exc instanceof Error ? exc : new ProtocolError(String(exc)));
      this.close(1000, "invalid frame from server");
      return;
    }
    this.queue.push(message);
    this.onMessage(message);
    this.notify();
  }

  /** Wait until the connection is open; rejects with `LinkClosed`, `WaitTimeout` or the abort reason. */
  async opened(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.state === "connecting") {
      await bounded(this.changed(), signal, deadline - Date.now(), "opening the connection");
    }
    if (this.ended !== null) throw this.ended;
  }

  /**
   * The next queued server message, waiting at most `timeoutMs`. Once the queue is drained
   * after the end of the connection, rejects with `LinkClosed` (or the bad frame's error).
   */
  async next(timeoutMs: number, signal: AbortSignal): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.queue.shift();
      if (message !== undefined) return message;
      if (this.ended !== null) throw this.ended;
      await bounded(this.changed(), signal, deadline - Date.now(), "waiting for the server");
    }
  }

  /** Remove and return the queued messages for which `keep` is true, in arrival order. */
  take(keep: (message: ServerMessage) => boolean): ServerMessage[] {
    const taken = this.queue.filter(keep);
    const rest = this.queue.filter((m) => !keep(m));
    this.queue.splice(0, this.queue.length, ...rest);
    return taken;
  }

  /** Send `message`; false (nothing sent) when the connection is not open. */
  send(message: ClientMessage): boolean {
    if (this.state !== "open") return false;
    const frame = encode(message);
    try {
      this.ws.send(frame);
    } catch {
      return false;
    }
    this.traffic.bytesUp += frame.length;
    return true;
  }

  /** Close the connection (idempotent); queued messages stay readable. */
  close(code = 1000, reason = ""): void {
    this.end(new LinkClosed(code, reason || "closed by this client"));
    if (this.ws.readyState >= 2) return; // CLOSING or CLOSED
    try {
      this.ws.close(code, reason);
    } catch {
      // already closing or closed
    }
  }
}
