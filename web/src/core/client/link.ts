/**
 * One connection to a disco server, as a queue of decoded messages with bounded, abortable
 * waits. It runs on a `Channel` (`Link.connect` opens a WebSocket one): a background reader
 * decodes every frame as it arrives. `FederatedClient` builds its state machine on it; a new
 * `Link` is made for every (re)connection.
 */

import { ProtocolError } from "../errors";
import {
  DEFAULT_MAX_FRAME,
  decode,
  encode,
  isPeerMessage,
  isServerMessage,
  type ClientMessage,
  type ServerMessage,
} from "../protocol";
import { ChannelClosed, ChannelTimeout, type Channel } from "../transport/channel";
import { WaitQueue } from "../transport/queues";
import { WaitTimeout } from "../transport/wait";
import { WebSocketChannel } from "../transport/websocket";

export { bounded, sleep, WaitTimeout } from "../transport/wait";

/** Longest wait for room in the channel's outgoing buffer before a send gives up and the link closes (ms). */
export const SEND_TIMEOUT_MS = 60_000;

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

/** Bytes sent and received, summed over every link of a client. */
export interface Traffic {
  bytesUp: number;
  bytesDown: number;
}

/** The link's error for a channel's: `LinkClosed` for `ChannelClosed`, `WaitTimeout` for `ChannelTimeout`. */
function linkError(exc: unknown): Error {
  if (exc instanceof ChannelClosed) return new LinkClosed(exc.code ?? 1006, exc.reason);
  if (exc instanceof ChannelTimeout) return new WaitTimeout(exc.message);
  return exc instanceof Error ? exc : new ProtocolError(String(exc));
}

/** One connection: sends encoded messages, queues decoded server messages. */
export class Link {
  /** Decoded server messages not yet taken; ended with the error that ended the link. */
  private readonly queue = new WaitQueue<ServerMessage>();
  /** `channel.bytesSent` already added to `traffic.bytesUp`. */
  private sentCounted = 0;
  /** Resolves with the error that ended the link. */
  private readonly endedPromise: Promise<Error>;
  private resolveEnded!: (error: Error) => void;

  /**
   * A link over an open `channel`, which it owns from now on. `onMessage` sees every server
   * message as it arrives (before it is queued), for status displays; `traffic` is counted up.
   * With `keep` false nothing is queued (`next` only ever sees the end): `onMessage` is where
   * the messages go, as a peer of a decentralized session takes them (Python's `keep=False`).
   */
  constructor(
    private readonly channel: Channel,
    private readonly traffic: Traffic,
    private readonly onMessage: (message: ServerMessage) => void,
    private readonly sendTimeoutMs = SEND_TIMEOUT_MS,
    private readonly keep = true,
  ) {
    this.endedPromise = new Promise<Error>((resolve) => (this.resolveEnded = resolve));
    this.read().catch((exc: unknown) => this.fail(linkError(exc)));
  }

  /** End the queue (and the link) with `error`, once. */
  private endWith(error: Error): void {
    this.queue.end(error);
    this.resolveEnded(this.queue.ended as Error);
  }

  /** Why the link ended (`LinkClosed`, or the bad frame's error), or null while it is open. */
  get ended(): Error | null {
    return this.queue.ended;
  }

  /** Resolves with the error that ended the link, once it ends. */
  waitEnded(): Promise<Error> {
    return this.endedPromise;
  }

  /**
   * Open a WebSocket connection to `url` (ws:// or wss://) and make a link on it (`keep`: as the
   * constructor's); rejects with
   * `LinkClosed` (1006 when it could not connect), `WaitTimeout` after `timeoutMs`, or the abort reason.
   */
  static async connect(
    url: string,
    WebSocketImpl: typeof WebSocket,
    traffic: Traffic,
    onMessage: (message: ServerMessage) => void,
    timeoutMs: number,
    signal: AbortSignal,
    keep = true,
  ): Promise<Link> {
    try {
      const channel = await WebSocketChannel.open(url, WebSocketImpl, timeoutMs, signal, DEFAULT_MAX_FRAME);
      return new Link(channel, traffic, onMessage, SEND_TIMEOUT_MS, keep);
    } catch (exc) {
      throw linkError(exc);
    }
  }

  /** Whether the connection is open (messages can be sent). */
  get isOpen(): boolean {
    return this.queue.ended === null;
  }

  /** End with `error` and close the channel. */
  private fail(error: Error, code = 1000, reason = ""): void {
    this.endWith(error);
    this.channel.close(code, reason);
  }

  /** Add the bytes the channel sent since the last count to the traffic. */
  private countSent(): void {
    const sent = this.channel.bytesSent;
    this.traffic.bytesUp += sent - this.sentCounted;
    this.sentCounted = sent;
  }

  /** Take every frame from the channel until it closes: decode, queue, notify. */
  private async read(): Promise<void> {
    for (;;) {
      let frame: Uint8Array;
      try {
        frame = await this.channel.receive(Infinity);
      } catch (exc) {
        this.endWith(linkError(exc));
        return;
      }
      if (this.queue.ended !== null) continue; // drain what came before the close, unread
      this.traffic.bytesDown += frame.length;
      let message;
      try {
        message = decode(frame);
        if (!isServerMessage(message)) {
          const who = isPeerMessage(message) ? "only peers send each other" : "only clients send";
          throw new ProtocolError(`server sent a '${message.type}' message, which ${who}`);
        }
      } catch (exc) {
        this.fail(linkError(exc), 1000, "invalid frame from server");
        continue;
      }
      if (this.keep) this.queue.push(message);
      this.onMessage(message);
    }
  }

  /**
   * The next queued server message, waiting at most `timeoutMs`. Once the queue is drained
   * after the end of the connection, rejects with `LinkClosed` (or the bad frame's error).
   */
  next(timeoutMs: number, signal: AbortSignal): Promise<ServerMessage> {
    return this.queue.take(timeoutMs, signal, "waiting for the server");
  }

  /** Remove and return the queued messages for which `keep` is true, in arrival order. */
  take(keep: (message: ServerMessage) => boolean): ServerMessage[] {
    return this.queue.remove(keep);
  }

  /**
   * Send `message`; false (nothing sent) when the connection is not open. It goes out at once, or
   * after earlier frames when the channel's buffer is full; if it cannot go within the send
   * timeout the link closes (`LinkClosed` 1006), and a message larger than the channel carries
   * closes it with `LinkClosed` 1009.
   */
  send(message: ClientMessage): boolean {
    if (this.queue.ended !== null) return false;
    const frame = encode(message);
    if (frame.length > this.channel.maxFrame) {
      const why = `a message of ${frame.length} bytes exceeds the limit of ${this.channel.maxFrame} bytes`;
      this.fail(new LinkClosed(1009, why), 1000, "message too big");
      return false;
    }
    this.channel.send(frame, this.sendTimeoutMs).then(
      () => this.countSent(),
      (exc: unknown) => {
        this.countSent();
        if (exc instanceof ChannelTimeout) this.fail(new LinkClosed(1006, `could not send: ${exc.message}`), 1000, "send timed out");
        else this.fail(linkError(exc));
      },
    );
    this.countSent(); // a frame written at once counts at once
    return true;
  }

  /** Close the connection (idempotent); queued messages stay readable. */
  close(code = 1000, reason = ""): void {
    this.fail(new LinkClosed(code, reason || "closed by this client"), code, reason);
  }
}
