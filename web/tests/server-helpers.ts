/**
 * A fake disco server for the federated client's tests (federated.test.ts, secure-client.test.ts):
 * an in-process WebSocket class whose other end is a script; frames travel as real encoded bytes.
 */

import { decode, encode, type Message, type ServerMessage } from "../src/core/protocol";

/** Decides what the fake server does with each message a client sends on connection `n`. */
export type Script = (socket: FakeSocket, message: Message, n: number) => void;

/** A WebSocket whose other end is a script; frames travel as real encoded bytes. */
export class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  binaryType = "blob";
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Every message the client sent on this connection, decoded. */
  readonly received: Message[] = [];
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    readonly url: string,
    readonly n: number,
    private readonly script: Script,
    refuse: boolean,
  ) {
    setTimeout(() => {
      if (this.readyState !== 0) return;
      if (refuse) {
        this.readyState = 3;
        this.onerror?.({});
        this.onclose?.({ code: 1006, reason: "" });
      } else {
        this.readyState = 1;
        this.onopen?.({});
      }
    });
  }

  send(data: Uint8Array): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.bytesIn += data.length;
    const message = decode(data.slice());
    this.received.push(message);
    setTimeout(() => this.readyState === 1 && this.script(this, message, this.n));
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    setTimeout(() => {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    });
  }

  /** The server sends `messages`, one frame each. */
  deliver(...messages: ServerMessage[]): void {
    for (const m of messages) {
      if (this.readyState !== 1) return;
      const frame = encode(m);
      this.bytesOut += frame.length;
      this.onmessage?.({ data: frame.buffer });
    }
  }

  /** The server closes (or the network drops, code 1006). */
  drop(code = 1006, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/**
 * A WebSocket class for `WebSocketImpl`, and the sockets it made. `refuse`: how many first
 * connections fail to open, or which ones (by index).
 */
export function fakeServer(
  script: Script,
  refuse: number | ((n: number) => boolean) = 0,
): { impl: typeof WebSocket; sockets: FakeSocket[] } {
  const sockets: FakeSocket[] = [];
  const refused = typeof refuse === "number" ? (n: number) => n < refuse : refuse;
  class Impl extends FakeSocket {
    constructor(url: string) {
      super(url, sockets.length, script, refused(sockets.length));
      sockets.push(this);
    }
  }
  return { impl: Impl as unknown as typeof WebSocket, sockets };
}
