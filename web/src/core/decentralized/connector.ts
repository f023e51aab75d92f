/**
 * How a peer opens channels to the other peers of its session, as Python's
 * `disco.decentralized.connector`.
 *
 * A `Connector` keeps at most one open `Channel` per other peer and reuses it round after round.
 * Of two peers, the one with the smaller id (compared as Python compares strings) opens the
 * connection and the other accepts it, so two peers never open two connections to each other at
 * once; `initiate` makes this side open whatever the ids (the other peer does not know to: a
 * late joiner fetching a model, a resync). One connection attempt runs at a time per peer,
 * shared by every caller that asks for that peer. Every channel, opened or accepted, is handed to
 * `onChannel` (the peer starts reading it there).
 *
 * - `RtcConnector`: WebRTC data channels (`RTCPeerConnection`); the offer and the answer travel
 *   as `Signal` messages through the server. Every ICE candidate is gathered before the offer or
 *   the answer is sent (Python peers ignore trickled "candidate" signals), so none is trickled.
 * - `MemoryConnector`: in-process channel pairs through a shared `MemoryHub`, for tests and
 *   simulations; the round logic above it is the same.
 */

import { SessionError } from "../errors";
import type { Signal } from "../protocol";
import { ChannelClosed, type Channel } from "../transport/channel";
import { memoryPair } from "../transport/memory";
import { RtcChannel, type ConnectionLike, type DataChannelLike } from "../transport/rtc";
import { bounded, stopped, WaitTimeout } from "../transport/wait";
import { compareIds, Deferred, Notifier, sortedIds } from "./notify";

/** Called with every channel the connector opens or accepts. */
export type OnChannel = (peer: string, channel: Channel) => void;
/** Sends a signalling message to the server (which relays it to `signal.peer`). */
export type SendSignal = (signal: Signal) => void;
/** How the connection to one peer stands, for displays. */
export type PeerConnectionState = "connected" | "connecting" | "failed";

/** Options of `Connector.connect`. */
export interface ConnectOptions {
  /** Open the connection from this side whatever the ids. */
  initiate?: boolean;
  /** Stops the wait (the attempt itself goes on for whoever else waits). */
  signal?: AbortSignal;
}

/** Open channels to other peers, one per peer, reused until it closes. */
export abstract class Connector {
  private readonly channels = new Map<string, Channel>();
  private readonly opening = new Map<string, Promise<Channel>>();
  /** Peers whose last attempt (opened or accepted) failed, or whose channel closed. */
  private readonly failedPeers = new Set<string>();
  /** Peers an offer of which is being answered (`RtcConnector`). */
  protected readonly accepting = new Set<string>();
  private readonly changes = new Notifier();
  /** Aborted by `close()`: every attempt ends. */
  protected readonly closing = new AbortController();
  /** Called whenever a connection's state changes (for displays). */
  onChange: (() => void) | null = null;

  constructor(
    readonly me: string,
    private readonly onChannel: OnChannel,
  ) {}

  /** The open channel to `peer`, if any. */
  channel(peer: string): Channel | null {
    const channel = this.channels.get(peer);
    return channel !== undefined && channel.closed === null ? channel : null;
  }

  /** The peers with an open channel, sorted. */
  openPeers(): string[] {
    return sortedIds([...this.channels.keys()].filter((p) => this.channel(p) !== null));
  }

  /** How the connection to `peer` stands: open, being opened (or awaited), or failed. */
  state(peer: string): PeerConnectionState {
    if (this.channel(peer) !== null) return "connected";
    if (this.opening.has(peer) || this.accepting.has(peer)) return "connecting";
    if (this.failedPeers.has(peer) || this.channels.has(peer)) return "failed";
    return "connecting"; // waiting for the peer to open it
  }

  /** Something changed: wake the waiters, tell the display. */
  protected changed(): void {
    this.changes.notify();
    try {
      this.onChange?.();
    } catch {
      // a display callback must not break the connector
    }
  }

  /** Note that a connection to `peer` failed (for `state`). */
  protected failed(peer: string): void {
    this.failedPeers.add(peer);
    this.changed();
  }

  /**
   * The channel to `peer`, opening it (or waiting for the peer to open it) if needed; rejects
   * with `WaitTimeout` after `timeoutMs`, or with the attempt's error if the connection failed.
   * With `initiate` this side opens whatever the ids (the peer does not know to connect).
   */
  async connect(peer: string, timeoutMs: number, options: ConnectOptions = {}): Promise<Channel> {
    if (peer === this.me) throw new RangeError("a peer does not connect to itself");
    const { initiate = false, signal } = options;
    const deadline = Date.now() + Math.max(0, timeoutMs);
    const what = `the channel to peer ${peer}`;
    for (;;) {
      const open = this.channel(peer);
      if (open !== null) return open;
      if (this.closing.signal.aborted) throw new ChannelClosed(1000, "the connector is closed");
      let attempt = this.opening.get(peer);
      if (attempt === undefined && (initiate || compareIds(this.me, peer) < 0)) attempt = this.attempt(peer);
      const left = deadline - Date.now();
      if (left <= 0) throw new WaitTimeout(`${what}: not open within ${Math.round(timeoutMs)} ms`);
      if (attempt !== undefined) {
        // one attempt at a time, whoever asks; it has left `opening` by the time this resumes,
        // so a channel that closed at once makes the next turn start a new attempt (never a spin
        // on a finished one)
        const channel = await bounded(attempt, signal, left, what);
        if (channel.closed === null) return channel;
        continue;
      }
      await bounded(this.changes.wait(), signal, left, what); // the peer with the smaller id opens
    }
  }

  /** Start an attempt to open a connection to `peer`, shared by whoever asks for it. */
  private attempt(peer: string): Promise<Channel> {
    this.failedPeers.delete(peer);
    const attempt: Promise<Channel> = this.open(peer, this.closing.signal).then(
      (channel) => {
        if (this.opening.get(peer) === attempt) {
          this.opening.delete(peer);
          this.adopt(peer, channel);
        }
        return channel;
      },
      (error: unknown) => {
        if (this.opening.get(peer) === attempt) {
          this.opening.delete(peer);
          this.failed(peer);
        }
        throw error;
      },
    );
    attempt.catch(() => undefined); // its callers see the error; nobody else must
    this.opening.set(peer, attempt);
    this.changed();
    return attempt;
  }

  /** Keep `channel` as the one to `peer` (closing any other) and hand it to `onChannel`. */
  protected adopt(peer: string, channel: Channel): void {
    if (this.closing.signal.aborted) {
      channel.close(1000, "leaving");
      return;
    }
    const old = this.channels.get(peer);
    this.channels.set(peer, channel);
    this.failedPeers.delete(peer);
    if (old !== undefined && old !== channel && old.closed === null) old.close(1000, "replaced by a new connection");
    this.onChannel(peer, channel);
    this.changed();
  }

  /** A channel to `peer` closed (the reader saw it): update the state. */
  channelClosed(peer: string, channel: Channel): void {
    if (this.channels.get(peer) === channel) this.failed(peer);
  }

  /** Open a new connection to `peer`; `signal` aborts when the connector closes. */
  protected abstract open(peer: string, signal: AbortSignal): Promise<Channel>;

  /** A signalling message from `signal.peer`, relayed by the server. */
  onSignal(signal: Signal): void {
    void signal;
  }

  /** Close every channel and end every attempt (idempotent). */
  close(): void {
    if (!this.closing.signal.aborted) this.closing.abort(new ChannelClosed(1000, "the connector is closed"));
    for (const channel of this.channels.values()) channel.close(1000, "leaving");
    this.channels.clear();
    this.changed();
  }
}

// -- in memory ---------------------------------------------------------------------------------

/** The in-process meeting point of `MemoryConnector`s. */
export class MemoryHub {
  readonly connectors = new Map<string, MemoryConnector>();
  readonly changes = new Notifier();
  /** Peers whose connections fail (a test's unreachable peer). */
  readonly unreachable = new Set<string>();
}

/** Channels to peers in the same process, through `hub`. */
export class MemoryConnector extends Connector {
  constructor(
    me: string,
    onChannel: OnChannel,
    private readonly hub: MemoryHub,
  ) {
    super(me, onChannel);
    hub.connectors.set(me, this);
    hub.changes.notify();
  }

  protected async open(peer: string, signal: AbortSignal): Promise<Channel> {
    for (;;) {
      if (this.hub.unreachable.has(peer) || this.hub.unreachable.has(this.me)) {
        throw new ChannelClosed(1006, `peer ${peer} cannot be reached`);
      }
      const other = this.hub.connectors.get(peer);
      if (other !== undefined) {
        const [mine, theirs] = memoryPair();
        other.adopt(this.me, theirs);
        return mine;
      }
      await bounded(this.hub.changes.wait(), signal); // bounded by connect's timeout, ended by close
    }
  }

  override close(): void {
    if (this.hub.connectors.get(this.me) === this) this.hub.connectors.delete(this.me);
    super.close();
  }
}

// -- WebRTC --------------------------------------------------------------------------------------

/** A data channel as the connector needs it: an `RtcChannel`'s, plus its "open" event. */
export type OpeningDataChannel = DataChannelLike & {
  addEventListener(type: "open", listener: () => void): void;
};

/** What the connector needs of an `RTCPeerConnection`; the browser's fits. */
export interface PeerConnectionLike extends ConnectionLike {
  readonly localDescription: { readonly sdp: string } | null;
  readonly iceGatheringState: string;
  readonly connectionState: string;
  createDataChannel(label: string, init?: { ordered?: boolean }): OpeningDataChannel;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  createAnswer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(description?: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: "offer" | "answer"; sdp: string }): Promise<void>;
  addEventListener(
    type: "icegatheringstatechange" | "icecandidate" | "connectionstatechange" | "datachannel",
    listener: (event: { readonly candidate?: unknown; readonly channel?: OpeningDataChannel }) => void,
  ): void;
}

/** Makes a peer connection from its configuration (the browser's `RTCPeerConnection` fits). */
export type PeerConnectionFactory = new (configuration: { iceServers: unknown[] }) => PeerConnectionLike;

/** Options of an `RtcConnector`. */
export interface RtcConnectorOptions {
  /** STUN/TURN servers (`RTCIceServer`s); none by default: peers find each other by their host addresses. */
  iceServers?: unknown[];
  /** Longest wait for the answer, then for the data channel to open (ms; default 30 s). */
  openTimeoutMs?: number;
  /** Longest wait for ICE gathering to complete; the description then goes with the candidates found (ms; default 15 s). */
  gatherTimeoutMs?: number;
  /** The peer-connection class (default: the global `RTCPeerConnection`); tests pass a fake. */
  PeerConnection?: PeerConnectionFactory;
  /** A line for the log (a failed attempt, a description sent without every candidate). */
  log?: (level: "info" | "warn", message: string) => void;
}

/** Resolves once `pc` has gathered every ICE candidate (or after `timeoutMs`: false). */
export function iceGathered(pc: PeerConnectionLike, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  if (pc.iceGatheringState === "complete") return Promise.resolve(true);
  const done = new Deferred<boolean>();
  const check = (event?: { readonly candidate?: unknown }): void => {
    // a null candidate is the end-of-candidates event of browsers that fire no state change
    if (pc.iceGatheringState === "complete" || (event !== undefined && event.candidate === null)) done.resolve(true);
  };
  pc.addEventListener("icegatheringstatechange", () => check());
  pc.addEventListener("icecandidate", (event) => check(event));
  return bounded(done.promise, signal, timeoutMs).catch((exc: unknown) => {
    if (exc instanceof WaitTimeout) return false;
    throw exc;
  });
}

/** Resolves once `dc` is open; rejects if it or `pc` closes or fails first. */
function dataChannelOpen(pc: PeerConnectionLike, dc: OpeningDataChannel): Promise<void> {
  const done = new Deferred<void>();
  if (dc.readyState === "open") done.resolve();
  dc.addEventListener("open", () => done.resolve());
  dc.addEventListener("close", () => done.reject(new ChannelClosed(1006, "the data channel closed before it opened")));
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") {
      done.reject(new ChannelClosed(1006, `the connection failed (${pc.connectionState})`));
    }
  });
  return done.promise;
}

/** WebRTC data channels, signalled through the server. */
export class RtcConnector extends Connector {
  private readonly answers = new Map<string, Deferred<string>>();
  private readonly iceServers: unknown[];
  private readonly openTimeoutMs: number;
  private readonly gatherTimeoutMs: number;
  private readonly PeerConnection: PeerConnectionFactory;
  private readonly log: (level: "info" | "warn", message: string) => void;
  private readonly connections = new Set<PeerConnectionLike>();

  constructor(
    me: string,
    onChannel: OnChannel,
    private readonly sendSignal: SendSignal,
    options: RtcConnectorOptions = {},
  ) {
    super(me, onChannel);
    this.iceServers = [...(options.iceServers ?? [])];
    this.openTimeoutMs = options.openTimeoutMs ?? 30_000;
    this.gatherTimeoutMs = options.gatherTimeoutMs ?? 15_000;
    const Impl = options.PeerConnection ?? (globalThis as { RTCPeerConnection?: PeerConnectionFactory }).RTCPeerConnection;
    if (Impl === undefined) {
      throw new SessionError("this browser has no WebRTC (RTCPeerConnection), so it cannot connect to other participants");
    }
    this.PeerConnection = Impl;
    this.log = options.log ?? (() => undefined);
  }

  private connection(): PeerConnectionLike {
    const pc = new this.PeerConnection({ iceServers: this.iceServers });
    this.connections.add(pc);
    return pc;
  }

  private drop(pc: PeerConnectionLike): void {
    this.connections.delete(pc);
    try {
      pc.close();
    } catch {
      // already closed
    }
  }

  /** `pc`'s local description once every candidate is in it. */
  private async described(pc: PeerConnectionLike, peer: string, signal: AbortSignal): Promise<string> {
    const complete = await iceGathered(pc, this.gatherTimeoutMs, signal);
    if (!complete) this.log("warn", `ICE gathering for peer ${peer} did not complete in ${this.gatherTimeoutMs} ms; sending the candidates found`);
    const sdp = pc.localDescription?.sdp;
    if (!sdp) throw new ChannelClosed(1006, "the connection has no local description");
    return sdp;
  }

  protected async open(peer: string, signal: AbortSignal): Promise<Channel> {
    const pc = this.connection();
    const answer = new Deferred<string>();
    this.answers.set(peer, answer);
    try {
      const dc = pc.createDataChannel("disco", { ordered: true });
      const opened = dataChannelOpen(pc, dc);
      opened.catch(() => undefined);
      await pc.setLocalDescription(await pc.createOffer());
      const offer = await this.described(pc, peer, signal);
      this.sendSignal({ type: "signal", peer, kind: "offer", data: offer });
      const sdp = await bounded(answer.promise, signal, this.openTimeoutMs, `the answer of peer ${peer}`);
      await pc.setRemoteDescription({ type: "answer", sdp });
      await bounded(opened, signal, this.openTimeoutMs, `the data channel to peer ${peer}`);
      this.connections.delete(pc); // the channel owns it from now on
      return new RtcChannel(dc, pc);
    } catch (exc) {
      this.drop(pc);
      throw exc;
    } finally {
      if (this.answers.get(peer) === answer) this.answers.delete(peer);
    }
  }

  override onSignal(signal: Signal): void {
    if (signal.kind === "answer") {
      const waiting = this.answers.get(signal.peer);
      if (waiting !== undefined && !waiting.settled) waiting.resolve(signal.data);
    } else if (signal.kind === "offer") {
      void this.accept(signal); // answered in the background: signals keep flowing
    }
    // "candidate": every candidate is already in the offer and the answer
  }

  private async accept(offer: Signal): Promise<void> {
    const peer = offer.peer;
    const signal = this.closing.signal;
    if (signal.aborted) return;
    const pc = this.connection();
    this.accepting.add(peer);
    this.changed();
    try {
      const announced = new Deferred<OpeningDataChannel>();
      pc.addEventListener("datachannel", (event) => {
        if (event.channel !== undefined) announced.resolve(event.channel);
      });
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          announced.reject(new ChannelClosed(1006, `the connection failed (${pc.connectionState})`));
        }
      });
      await pc.setRemoteDescription({ type: "offer", sdp: offer.data });
      await pc.setLocalDescription(await pc.createAnswer());
      const answer = await this.described(pc, peer, signal);
      this.sendSignal({ type: "signal", peer, kind: "answer", data: answer });
      const dc = await bounded(announced.promise, signal, this.openTimeoutMs, `the data channel of peer ${peer}`);
      await bounded(dataChannelOpen(pc, dc), signal, this.openTimeoutMs, `the data channel of peer ${peer}`);
      this.accepting.delete(peer);
      this.connections.delete(pc); // the channel owns it from now on
      this.adopt(peer, new RtcChannel(dc, pc));
    } catch (exc) {
      this.drop(pc);
      this.accepting.delete(peer);
      if (!signal.aborted) {
        this.log("info", `the connection offered by peer ${peer} did not open: ${exc instanceof Error ? exc.message : String(exc)}`);
        this.failed(peer);
      }
    }
  }

  override close(): void {
    super.close();
    for (const answer of this.answers.values()) answer.reject(stopped(this.closing.signal));
    this.answers.clear();
    for (const pc of [...this.connections]) this.drop(pc);
  }
}
