/**
 * What peers say to each other on their channels: updates (or masked inputs), acknowledgements,
 * models — as Python's `disco.decentralized.exchange`.
 *
 * `PeerExchange` reads every channel a peer has (one reader per channel), and:
 *
 * - keeps each valid `PeerUpdate` of a round it takes part in — the names and shapes those of the
 *   task's model, every value finite, the digest that of the weights (SHA-256, docs/protocol.md
 *   §12), and the task's rule able to take it (`acceptable`; the mean: every change below 256) —
 *   acknowledges it (`PeerAck`) and calls `onUpdate` (the peer tells the server whose
 *   updates it holds); an invalid one is refused with an `ErrorMessage` to the sender and changes
 *   nothing;
 * - in a task with secure aggregation, keeps each valid `PeerMasked` (a secure round's masked
 *   input, docs/protocol.md §19.1) the same way instead — the round open here, the first one
 *   of the round from its sender (a second one is refused, the first one kept), exactly the
 *   round's words (1 + the model's values, uint32 little-endian) and the SHA-256 of those bytes
 *   its digest — and refuses updates in the clear (a task without it refuses masked inputs);
 * - answers a `ModelRequest` with the model it holds for that round (`PeerModel`) or an error
 *   (`stale`);
 * - hands a `PeerModel` to whoever `fetch`-es it, after checking its digest.
 *
 * Frames are the protocol's msgpack frames (`core/protocol/codec`); a frame a peer may not send
 * (a server's message, garbage) closes that channel with 1003.
 */

import { DiscoError, ProtocolError } from "../errors";
import {
  DEFAULT_MAX_FRAME,
  decode,
  encode,
  isPeerMessage,
  type ErrorMessage,
  type ModelRequest,
  type PeerAck,
  type PeerMasked,
  type PeerMessage,
  type PeerModel,
  type PeerUpdate,
} from "../protocol";
import { ChannelClosed, type Channel } from "../transport/channel";
import { bounded } from "../transport/wait";
import { sha256Hex, type Weights } from "../weights";
import { Deferred, Notifier, sortedIds } from "./notify";

/** Bytes this peer sent to and received from other peers. */
export interface PeerTraffic {
  bytesUp: number;
  bytesDown: number;
}

/** A line for the log. */
export type PeerLog = (level: "info" | "warn", message: string) => void;

/** Longest wait to send an acknowledgement or an error (ms), as Python's 30 s. */
export const ANSWER_TIMEOUT_MS = 30_000;
/** Longest wait to send a model to a peer that asked for it (ms), as Python's 300 s. */
export const MODEL_TIMEOUT_MS = 300_000;

const digests = new WeakMap<Weights, Promise<string>>();
/** `weights.digest()`, computed once per `Weights` object (they are never changed in place here). */
export function digestOf(weights: Weights): Promise<string> {
  let digest = digests.get(weights);
  if (digest === undefined) {
    digest = weights.digest();
    digests.set(weights, digest);
  }
  return digest;
}

/** Options of a `PeerExchange`. */
export interface PeerExchangeOptions {
  /** Largest frame read (default 256 MiB). */
  maxFrame?: number;
  /** A channel's reader ended (it closed): the connector's state changes. */
  onClosed?: (peer: string, channel: Channel) => void;
  /** Why the task's rule cannot take `weights` as an update of `round` (null: it can); checked last. */
  acceptable?: (round: number, weights: Weights) => string | null;
  /** The task uses secure aggregation: updates travel masked (`PeerMasked`), never in the clear. */
  secure?: boolean;
  log?: PeerLog;
}

/** The peer-to-peer side of one peer: readers, received updates, held models. */
export class PeerExchange {
  /** Models this peer holds, by the round they open (served to peers that ask). */
  readonly models = new Map<number, Weights>();
  /** Valid updates received, by round and sender. */
  readonly updates = new Map<number, Map<string, PeerUpdate>>();
  /** Valid masked inputs received (secure rounds), by round and sender. */
  readonly masked = new Map<number, Map<string, PeerMasked>>();
  /** Rounds whose updates are kept (others are refused as not open here). */
  accepting = new Set<number>();
  /** Who acknowledged this peer's update, by round. */
  readonly acks = new Map<number, Set<string>>();
  readonly traffic: PeerTraffic = { bytesUp: 0, bytesDown: 0 };
  /** Notified on every update, acknowledgement and closed channel. */
  readonly changed = new Notifier();
  private readonly fetches = new Map<string, Deferred<PeerModel>>();
  private readonly readers = new Map<string, AbortController>();
  private readonly maxFrame: number;
  private readonly log: PeerLog;

  constructor(
    /** Names and shapes every update and model must have. */
    private readonly reference: Weights,
    /** A valid update (or masked input) of this round arrived. */
    private readonly onUpdate: (round: number) => void,
    private readonly options: PeerExchangeOptions = {},
  ) {
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.log = options.log ?? (() => undefined);
  }

  // -- channels ----------------------------------------------------------------------------------

  /** Start reading a new channel to `peer` (the connector calls this); a reader of an older one stops. */
  watch(peer: string, channel: Channel): void {
    this.readers.get(peer)?.abort();
    const stop = new AbortController();
    this.readers.set(peer, stop);
    void this.read(peer, channel, stop.signal);
  }

  /** Send `message` on `channel` within `timeoutMs`, counting its bytes. */
  async send(channel: Channel, message: PeerMessage, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const frame = encode(message);
    await channel.send(frame, timeoutMs, signal);
    this.traffic.bytesUp += frame.length;
  }

  private async read(peer: string, channel: Channel, signal: AbortSignal): Promise<void> {
    try {
      for (;;) {
        const frame = await channel.receive(Infinity, signal);
        this.traffic.bytesDown += frame.length;
        let message;
        try {
          message = decode(frame, this.maxFrame);
        } catch (exc) {
          if (!(exc instanceof ProtocolError)) throw exc;
          channel.close(1003, `not a peer frame: ${exc.message}`.slice(0, 100));
          return;
        }
        await this.handle(peer, channel, message, signal);
      }
    } catch (exc) {
      if (!(exc instanceof ChannelClosed) && !signal.aborted) {
        this.log("warn", `reading from peer ${peer} failed: ${exc instanceof Error ? exc.message : String(exc)}`);
        channel.close(1011, "reader failed");
      }
    } finally {
      const current = this.readers.get(peer)?.signal === signal; // not replaced by a newer channel's reader
      if (current) {
        this.readers.delete(peer);
        for (const [key, fetch] of this.fetches) {
          if (key.startsWith(`${peer}\u0000`) && !fetch.settled) fetch.reject(new ChannelClosed(1006, `the channel to ${peer} closed`));
        }
      }
      if (channel.closed !== null) this.options.onClosed?.(peer, channel);
      this.changed.notify();
    }
  }

  private async handle(peer: string, channel: Channel, message: ReturnType<typeof decode>, signal: AbortSignal): Promise<void> {
    if (!isPeerMessage(message)) {
      channel.close(1003, `peers do not send '${message.type}'`);
      throw new ChannelClosed(1003, `peers do not send '${message.type}'`);
    }
    switch (message.type) {
      case "peer_update": {
        const problem = await this.check(message);
        if (problem !== null) {
          this.log("warn", `refused the update of peer ${peer} for round ${message.round}: ${problem}`);
          const error: ErrorMessage = { type: "error", code: "unexpected", message: problem, round: message.round };
          await this.send(channel, error, ANSWER_TIMEOUT_MS, signal);
          return;
        }
        await this.keep(this.updates, peer, channel, message, signal);
        return;
      }
      case "peer_masked": {
        // (checked again after the digest's await: one from another channel of `peer` may have come first)
        const problem = (await this.checkMasked(peer, message)) ?? this.already(peer, message);
        if (problem !== null) {
          this.log("warn", `refused the masked input of peer ${peer} for round ${message.round}: ${problem}`);
          const error: ErrorMessage = { type: "error", code: "unexpected", message: problem, round: message.round };
          await this.send(channel, error, ANSWER_TIMEOUT_MS, signal);
          return;
        }
        await this.keep(this.masked, peer, channel, message, signal);
        return;
      }
      case "peer_ack": {
        let acks = this.acks.get(message.round);
        if (acks === undefined) {
          acks = new Set();
          this.acks.set(message.round, acks);
        }
        acks.add(peer);
        this.changed.notify();
        return;
      }
      case "model_request": {
        const model = this.models.get(message.round);
        if (model === undefined) {
          const held = [...this.models.keys()].sort((a, b) => a - b);
          const text = `this peer holds no model of round ${message.round} (it holds [${held.join(", ")}])`;
          const error: ErrorMessage = { type: "error", code: "stale", message: text, round: message.round };
          await this.send(channel, error, ANSWER_TIMEOUT_MS, signal);
        } else {
          const answer: PeerModel = { type: "model", round: message.round, weights: model, digest: await digestOf(model) };
          await this.send(channel, answer, MODEL_TIMEOUT_MS, signal);
        }
        return;
      }
      case "model": {
        const fetch = this.fetches.get(`${peer}\u0000${message.round}`);
        if (fetch !== undefined && !fetch.settled) fetch.resolve(message);
        return;
      }
      case "error": {
        const pending = [...this.fetches].filter(([key, f]) => key.startsWith(`${peer}\u0000`) && !f.settled);
        for (const [, fetch] of pending) fetch.reject(new DiscoError(`peer ${peer} refused: ${message.message}`));
        if (pending.length === 0) this.log("info", `peer ${peer} says: [${message.code}] ${message.message}`);
        return;
      }
    }
  }

  /** Keep `message` from `peer` in `held`, acknowledge it and tell the peer whose inputs it holds. */
  private async keep<T extends PeerUpdate | PeerMasked>(
    held: Map<number, Map<string, T>>,
    peer: string,
    channel: Channel,
    message: T,
    signal: AbortSignal,
  ): Promise<void> {
    let round = held.get(message.round);
    if (round === undefined) {
      round = new Map();
      held.set(message.round, round);
    }
    round.set(peer, message);
    const ack: PeerAck = { type: "peer_ack", round: message.round, digest: message.digest };
    await this.send(channel, ack, ANSWER_TIMEOUT_MS, signal);
    this.changed.notify();
    this.onUpdate(message.round);
  }

  /** Why `update` cannot be taken, or null: the round open here, names and shapes, finite values, the digest, the rule's limits. */
  async check(update: PeerUpdate): Promise<string | null> {
    if (!this.accepting.has(update.round)) return `round ${update.round} is not open here`;
    if (this.options.secure) return "this task uses secure aggregation: updates travel masked (peer_masked), never in the clear";
    try {
      update.weights.checkLike(this.reference, "update");
    } catch (exc) {
      return exc instanceof Error ? exc.message : String(exc);
    }
    if (!update.weights.isFinite()) return "the update holds NaN or infinite values";
    if ((await digestOf(update.weights)) !== update.digest) {
      return "the update's digest does not match its weights (damaged in transit?)";
    }
    return this.options.acceptable?.(update.round, update.weights) ?? null;
  }

  /**
   * Why `masked` from `peer` cannot be taken, or null: the round open here, the first one of the
   * round from `peer` (a second one is refused, the first one stays), the round's number of words,
   * the digest.
   */
  async checkMasked(peer: string, masked: PeerMasked): Promise<string | null> {
    if (!this.accepting.has(masked.round)) return `round ${masked.round} is not open here`;
    if (!this.options.secure) return "this task does not use secure aggregation: its updates travel as peer_update";
    const again = this.already(peer, masked);
    if (again !== null) return again;
    const length = 1 + this.reference.size; // the weight word, then one word per value of the model
    if (masked.words.length % 4 !== 0) return `a masked input is whole 32-bit words, not ${masked.words.length} bytes`;
    if (masked.words.length !== 4 * length) return `a masked input of round ${masked.round} is ${length} words`;
    if ((await sha256Hex(masked.words)) !== masked.digest) {
      return "the masked input's digest does not match its words (damaged in transit?)";
    }
    return null;
  }

  /** Why `masked` is not the first masked input of its round from `peer`, or null. */
  private already(peer: string, masked: PeerMasked): string | null {
    if (this.masked.get(masked.round)?.has(peer) !== true) return null;
    return `a masked input of round ${masked.round} from this peer arrived already`;
  }

  /** The peers whose update or masked input of `round` this peer holds (sorted). */
  holders(round: number): string[] {
    return sortedIds(new Set([...(this.updates.get(round)?.keys() ?? []), ...(this.masked.get(round)?.keys() ?? [])]));
  }

  // -- models ------------------------------------------------------------------------------------

  /** The model that opens `round`, asked of `peer` on `channel`; its names, shapes and digest checked. */
  async fetch(peer: string, channel: Channel, round: number, timeoutMs: number, signal?: AbortSignal): Promise<Weights> {
    const key = `${peer}\u0000${round}`;
    const future = new Deferred<PeerModel>();
    this.fetches.set(key, future);
    const deadline = Date.now() + timeoutMs;
    let answer: PeerModel;
    try {
      const request: ModelRequest = { type: "model_request", round };
      await this.send(channel, request, timeoutMs, signal);
      answer = await bounded(future.promise, signal, deadline - Date.now(), `the model of round ${round} from peer ${peer}`);
    } finally {
      if (this.fetches.get(key) === future) this.fetches.delete(key);
    }
    answer.weights.checkLike(this.reference, `the model from ${peer}`);
    if ((await digestOf(answer.weights)) !== answer.digest) throw new DiscoError(`the model from ${peer} does not match its digest`);
    return answer.weights;
  }

  /** Drop the models, updates, masked inputs and acknowledgements of rounds before `round`. */
  forgetBefore(round: number): void {
    for (const map of [this.models, this.updates, this.masked, this.acks] as Map<number, unknown>[]) {
      for (const r of [...map.keys()]) if (r < round) map.delete(r);
    }
  }

  /** Stop every reader. */
  close(): void {
    for (const stop of this.readers.values()) stop.abort();
    this.readers.clear();
  }
}
