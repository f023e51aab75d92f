/**
 * Servers for the peer tests, over in-memory channels with real encoded frames:
 *
 * - `FakeSession`: a port of the Python server's `DecentralizedSession` (plan → signalling relay →
 *   ready barrier → exchange → received → combine → digest → resync, with deadlines), small
 *   enough to read, so several `PeerClient`s can train together in one process (its secure
 *   rounds: `FakeSecureSession`, ./secure-peer-helpers.ts);
 * - `scriptedServer()`: one connection the test drives message by message.
 */

import { decode, encode, type ClientMessage, type Message, type PeerInfo, type ServerMessage } from "../src/core/protocol";
import type { Channel } from "../src/core/transport/channel";
import { memoryPair } from "../src/core/transport/memory";
import type { Weights } from "../src/core/weights";

/** A graph for one round: each member's neighbours, and whether it is all to all. */
export interface Graph {
  neighbours: Map<string, string[]>;
  allToAll: boolean;
}

/** Everyone with everyone (Python's `peer_graph` up to its all-to-all limit). */
export function allToAll(members: string[]): Graph {
  const sorted = [...members].sort();
  return { neighbours: new Map(sorted.map((m) => [m, sorted.filter((n) => n !== m)])), allToAll: true };
}

/** Metropolis–Hastings weights of `peer` over its neighbours and itself (Python's `mixing_weights`). */
export function mixingWeights(graph: Graph, peer: string): Map<string, number> {
  const degree = (p: string): number => (graph.neighbours.get(p) as string[]).length;
  const own = degree(peer);
  const weights = new Map<string, number>();
  for (const q of graph.neighbours.get(peer) as string[]) weights.set(q, 1.0 / (1 + Math.max(own, degree(q))));
  weights.set(peer, 1.0 - [...weights.values()].reduce((a, b) => a + b, 0));
  return weights;
}

export interface Peer {
  identity: string;
  channel: Channel;
  name: string;
  kind: "python" | "browser";
  order: number;
  holds: [number, string] | null;
}

export interface Round {
  number: number;
  neighbours: Map<string, string[]>;
  allToAll: boolean;
  /** `sharing` and `unmasking`: a secure round's (`FakeSecureSession`, ./secure-peer-helpers.ts). */
  phase: "connecting" | "sharing" | "exchanging" | "unmasking" | "combining";
  ready: Map<string, Set<string>>;
  exchange: Set<string>;
  received: Map<string, Set<string>>;
  contributors: string[];
  digests: Map<string, string>;
  timer: ReturnType<typeof setTimeout> | null;
}

/** A closed round, as the server records it. */
export interface ClosedRound {
  round: number;
  contributors: string[];
  digests: Map<string, string>;
  agreed: string | null;
  excluded: string[];
}

export interface SessionOptions {
  minParticipants: number;
  connectMs?: number;
  exchangeMs?: number;
  combineMs?: number;
  /** The round's graph (default all to all). */
  graph?: (members: string[], round: number) => Graph;
}

/** The server's side of a decentralized session, as `disco.server.decentralized` paces it. */
export class FakeSession {
  readonly peers = new Map<string, Peer>();
  /** Every message each identity sent, in order. */
  readonly sent = new Map<string, ClientMessage[]>();
  readonly closed: ClosedRound[] = [];
  roundNo = 0;
  agreed: string | null;
  protected current: Round | null = null;
  /** What `welcome` lists, and what a `hello` must ask for. */
  protected capabilities: readonly string[] = ["decentralized"];
  private joined = 0;
  private excludedNow: string[] = [];

  constructor(
    readonly initialDigest: string,
    protected readonly options: SessionOptions,
  ) {
    this.agreed = initialDigest;
  }

  /** What `PeerClientOptions.openServer` takes: a new connection to this session. */
  readonly open = async (): Promise<Channel> => {
    const [client, server] = memoryPair();
    void this.serve(server);
    return client;
  };

  protected get connectMs(): number {
    return this.options.connectMs ?? 5_000;
  }
  protected get exchangeMs(): number {
    return this.options.exchangeMs ?? 5_000;
  }

  protected send(peer: Peer, message: ServerMessage): void {
    peer.channel.send(encode(message), 5_000).catch(() => undefined);
  }

  private async serve(channel: Channel): Promise<void> {
    let identity: string | null = null;
    try {
      for (;;) {
        const message = decode(await channel.receive(Infinity)) as ClientMessage;
        if (identity === null) {
          if (message.type !== "hello") continue;
          identity = message.name;
          if (!this.capabilities.every((c) => message.capabilities.includes(c))) {
            channel.send(encode({ type: "error", code: "unsupported", message: "capability needed" }), 1000).catch(() => undefined);
            channel.close(4426, "capability needed");
            return;
          }
          this.join(identity, channel, message.kind);
          this.log(identity, message);
          continue;
        }
        this.log(identity, message);
        if (message.type === "leave") {
          channel.close(1000, "bye");
          break;
        }
        this.receive(identity, message);
      }
    } catch {
      // the connection closed
    } finally {
      if (identity !== null && this.peers.get(identity)?.channel === channel) this.leave(identity);
    }
  }

  private log(identity: string, message: ClientMessage): void {
    this.sent.set(identity, [...(this.sent.get(identity) ?? []), message]);
  }

  /** The messages `identity` sent of `type`. */
  messages<T extends ClientMessage["type"]>(identity: string, type: T): Extract<ClientMessage, { type: T }>[] {
    return (this.sent.get(identity) ?? []).filter((m) => m.type === type) as Extract<ClientMessage, { type: T }>[];
  }

  protected status(): ServerMessage {
    const min = this.options.minParticipants;
    return {
      type: "status",
      round: this.roundNo,
      participants: this.peers.size,
      min_participants: min,
      reported: this.current?.digests.size ?? 0,
      state: this.peers.size >= min ? "enough_participants" : "waiting_for_participants",
    };
  }

  protected broadcast(message: ServerMessage, exclude?: string): void {
    for (const [id, peer] of this.peers) if (id !== exclude) this.send(peer, message);
  }

  private join(identity: string, channel: Channel, kind: "python" | "browser"): void {
    const old = this.peers.get(identity);
    if (old !== undefined) this.dropFromRound(identity);
    this.joined += 1;
    const peer: Peer = { identity, channel, name: identity, kind, order: this.joined, holds: old?.holds ?? null };
    this.peers.set(identity, peer);
    const min = this.options.minParticipants;
    this.send(peer, {
      type: "welcome",
      client_id: identity,
      task_id: "peers",
      round: this.roundNo,
      participants: this.peers.size,
      min_participants: min,
      state: this.peers.size >= min ? "enough_participants" : "waiting_for_participants",
      capabilities: [...this.capabilities],
    });
    this.broadcast(this.status(), identity);
    this.advance();
  }

  /** Drop `identity` as if its connection ended. */
  leave(identity: string): void {
    if (!this.peers.delete(identity)) return;
    this.dropFromRound(identity);
    this.broadcast(this.status());
    this.advance();
  }

  protected receive(identity: string, message: ClientMessage): void {
    const peer = this.peers.get(identity) as Peer;
    if (message.type === "signal") {
      const target = this.peers.get(message.peer);
      if (target === undefined || target === peer) {
        this.send(peer, { type: "error", code: "unknown_peer", message: `there is no peer '${message.peer}'` });
        return;
      }
      this.send(target, { type: "signal", peer: identity, kind: message.kind, data: message.data });
      return;
    }
    if (message.type !== "ready" && message.type !== "received" && message.type !== "digest") return;
    const rnd = this.current;
    if (message.type === "digest" && (rnd === null || message.round !== rnd.number)) {
      if (message.round < this.roundNo) peer.holds = [message.round + 1, message.digest];
      return;
    }
    if (rnd === null || message.round !== rnd.number || !rnd.neighbours.has(identity)) return;
    const own = new Set(rnd.neighbours.get(identity));
    if (message.type === "ready" && rnd.phase === "connecting") {
      rnd.ready.set(identity, new Set(message.connected.filter((p) => own.has(p))));
    } else if (message.type === "received" && rnd.phase === "exchanging") {
      rnd.received.set(identity, new Set(message.peers.filter((p) => own.has(p))));
    } else if (message.type === "digest" && rnd.phase === "combining" && rnd.exchange.has(identity)) {
      rnd.digests.set(identity, message.digest);
    }
    this.advance();
  }

  protected live(rnd: Round, among?: Iterable<string>): Set<string> {
    return new Set([...(among ?? rnd.neighbours.keys())].filter((p) => this.peers.has(p)));
  }

  private missing(rnd: Round, member: string, live: Set<string>): string[] {
    const mine = rnd.ready.get(member) ?? new Set();
    return (rnd.neighbours.get(member) as string[]).filter(
      (n) => live.has(n) && !(mine.has(n) && (rnd.ready.get(n) ?? new Set()).has(member)),
    );
  }

  /** A phase of a subclass's round that may end now: whether it did (default: none). */
  protected step(_rnd: Round): boolean {
    return false;
  }

  protected advance(): void {
    for (;;) {
      const rnd = this.current;
      if (rnd !== null && this.step(rnd)) continue;
      if (rnd === null) {
        if (this.peers.size < this.options.minParticipants || this.peers.size === 0) return;
        this.startRound();
      } else if (rnd.phase === "connecting" && [...this.live(rnd)].every((m) => this.missing(rnd, m, this.live(rnd)).length === 0)) {
        this.startExchange(rnd, []);
      } else if (rnd.phase === "exchanging" && this.exchanged(rnd)) {
        this.startCombining(rnd);
      } else if (rnd.phase === "combining" && [...this.live(rnd, rnd.exchange)].every((m) => rnd.digests.has(m))) {
        this.closeRound(rnd);
      } else return;
    }
  }

  protected exchanged(rnd: Round): boolean {
    const live = this.live(rnd, rnd.exchange);
    return [...live].every((m) =>
      (rnd.neighbours.get(m) as string[]).filter((n) => live.has(n)).every((n) => (rnd.received.get(m) ?? new Set()).has(n)),
    );
  }

  protected holdsModel(peer: Peer): boolean {
    if (peer.holds === null || peer.holds[0] !== this.roundNo) return false;
    return this.agreed === null || peer.holds[1] === this.agreed;
  }

  private startRound(): void {
    const members = [...this.peers.keys()].sort();
    const graph = (this.options.graph ?? allToAll)(members, this.roundNo);
    const holders = members.filter((m) => this.holdsModel(this.peers.get(m) as Peer));
    if (holders.length === 0 && this.agreed !== this.initialDigest) this.agreed = this.initialDigest;
    const fromInitial = this.agreed === this.initialDigest;
    const rnd: Round = {
      number: this.roundNo,
      neighbours: graph.neighbours,
      allToAll: graph.allToAll,
      phase: "connecting",
      ready: new Map(),
      exchange: new Set(),
      received: new Map(),
      contributors: [],
      digests: new Map(),
      timer: null,
    };
    this.current = rnd;
    rnd.timer = setTimeout(() => this.expire(rnd, "connecting"), this.connectMs);
    for (const m of members) {
      const peer = this.peers.get(m) as Peer;
      const weights = mixingWeights(graph, m);
      let source: string | undefined;
      if (!fromInitial && !this.holdsModel(peer)) {
        const near = holders.filter((h) => (graph.neighbours.get(m) as string[]).includes(h));
        const pool = near.length > 0 ? near : holders;
        source = pool[(peer.order + rnd.number) % pool.length];
      }
      const peers: PeerInfo[] = (graph.neighbours.get(m) as string[]).map((n) => {
        const other = this.peers.get(n) as Peer;
        return { id: n, name: other.name, kind: other.kind, weight: weights.get(n) as number };
      });
      this.send(peer, {
        type: "plan",
        round: rnd.number,
        peers,
        members: members.length,
        topology: graph.allToAll ? "all_to_all" : "sparse",
        self_weight: weights.get(m) as number,
        ...(this.agreed === null ? {} : { digest: this.agreed }),
        ...(source === undefined ? {} : { model_from: source }),
        connect_s: this.connectMs / 1000,
        exchange_s: this.exchangeMs / 1000,
      });
    }
  }

  protected startExchange(rnd: Round, excluded: string[]): void {
    if (rnd.timer !== null) clearTimeout(rnd.timer);
    rnd.phase = "exchanging";
    rnd.exchange = new Set([...this.live(rnd)].filter((m) => !excluded.includes(m)));
    this.excludedNow = excluded;
    rnd.timer = setTimeout(() => this.expire(rnd, "exchanging"), this.exchangeMs);
    const members = [...rnd.exchange].sort();
    for (const m of members) this.send(this.peers.get(m) as Peer, { type: "exchange", round: rnd.number, peers: members });
    for (const m of excluded) {
      const peer = this.peers.get(m);
      if (peer !== undefined) this.send(peer, { type: "exchange", round: rnd.number, peers: [] });
    }
  }

  protected startCombining(rnd: Round): void {
    if (rnd.timer !== null) clearTimeout(rnd.timer);
    rnd.phase = "combining";
    const live = this.live(rnd, rnd.exchange);
    rnd.contributors = [...rnd.exchange]
      .filter((s) =>
        [...live].every((m) => s === m || !(rnd.neighbours.get(m) as string[]).includes(s) || (rnd.received.get(m) ?? new Set()).has(s)),
      )
      .sort();
    rnd.timer = setTimeout(() => this.expire(rnd, "combining"), this.options.combineMs ?? 5_000);
    for (const m of [...live].sort()) {
      this.send(this.peers.get(m) as Peer, { type: "combine", round: rnd.number, peers: rnd.contributors });
    }
  }

  protected closeRound(rnd: Round): void {
    if (rnd.timer !== null) clearTimeout(rnd.timer);
    const counts = new Map<string, number>();
    for (const d of rnd.digests.values()) counts.set(d, (counts.get(d) ?? 0) + 1);
    let agreed: string | null = null;
    for (const [d, n] of counts) {
      const best = agreed === null ? -1 : (counts.get(agreed) as number);
      if (n > best || (n === best && d < (agreed as string))) agreed = d;
    }
    for (const [m, d] of rnd.digests) {
      const peer = this.peers.get(m);
      if (peer !== undefined) peer.holds = [rnd.number + 1, d];
    }
    this.roundNo = rnd.number + 1;
    this.current = null;
    this.agreed = rnd.allToAll ? (agreed ?? this.agreed) : null;
    this.closed.push({ round: rnd.number, contributors: rnd.contributors, digests: new Map(rnd.digests), agreed, excluded: this.excludedNow });
    this.excludedNow = [];
    if (rnd.allToAll && agreed !== null) {
      const differ = [...rnd.digests].filter(([m, d]) => d !== agreed && this.peers.has(m)).map(([m]) => m).sort();
      const holders = [...rnd.digests].filter(([m, d]) => d === agreed && this.peers.has(m)).map(([m]) => m).sort();
      differ.forEach((m, i) => {
        this.send(this.peers.get(m) as Peer, { type: "resync", round: this.roundNo, digest: agreed as string, peer: holders[i % holders.length] as string });
      });
    }
    this.broadcast(this.status());
  }

  protected expire(rnd: Round, phase: Round["phase"]): void {
    if (this.current !== rnd || rnd.phase !== phase) return;
    if (phase === "connecting") {
      const live = this.live(rnd);
      const out: string[] = [];
      for (;;) {
        const missing = new Map([...live].map((m) => [m, this.missing(rnd, m, live)]));
        if ([...missing.values()].every((v) => v.length === 0)) break;
        const worst = [...live].sort((a, b) => {
          const ka = [(missing.get(a) as string[]).length, rnd.ready.has(a) ? 0 : 1, (this.peers.get(a) as Peer).order];
          const kb = [(missing.get(b) as string[]).length, rnd.ready.has(b) ? 0 : 1, (this.peers.get(b) as Peer).order];
          for (let i = 0; i < 3; i++) if (ka[i] !== kb[i]) return (kb[i] as number) - (ka[i] as number);
          return 0;
        })[0] as string;
        live.delete(worst);
        out.push(worst);
      }
      this.startExchange(rnd, out);
    } else if (phase === "exchanging") this.startCombining(rnd);
    else this.closeRound(rnd);
    this.advance();
  }

  private dropFromRound(identity: string): void {
    const rnd = this.current;
    if (rnd !== null && rnd.neighbours.has(identity) && this.live(rnd).size === 0) {
      if (rnd.timer !== null) clearTimeout(rnd.timer);
      this.current = null;
    }
  }

  /** Stop every timer. */
  stop(): void {
    if (this.current?.timer) clearTimeout(this.current.timer);
    this.current = null;
  }
}

// -- a scripted server -------------------------------------------------------------------------

/** One connection whose server side the test drives. */
export interface ScriptedServer {
  /** What `PeerClientOptions.openServer` takes. */
  open: () => Promise<Channel>;
  /** How many times the client connected. */
  readonly connections: number;
  /** Every message the client sent, in order. */
  readonly received: Message[];
  deliver(...messages: ServerMessage[]): void;
  /** The next message of `type` the client sends (waiting at most 3 s). */
  next<T extends ClientMessage["type"]>(type: T): Promise<Extract<ClientMessage, { type: T }>>;
  close(code?: number, reason?: string): void;
}

export function scriptedServer(): ScriptedServer {
  let channel: Channel | null = null;
  let connections = 0;
  const received: Message[] = [];
  const taken = new Set<number>();
  const waiters: (() => void)[] = [];
  const read = async (end: Channel): Promise<void> => {
    try {
      for (;;) {
        received.push(decode(await end.receive(Infinity)));
        waiters.splice(0).forEach((wake) => wake());
      }
    } catch {
      waiters.splice(0).forEach((wake) => wake());
    }
  };
  return {
    open: async () => {
      connections += 1;
      const [client, server] = memoryPair();
      channel = server;
      void read(server);
      return client;
    },
    get connections() {
      return connections;
    },
    received,
    deliver(...messages) {
      for (const m of messages) channel?.send(encode(m), 5_000).catch(() => undefined);
    },
    async next(type) {
      const deadline = Date.now() + 3_000;
      for (;;) {
        const at = received.findIndex((m, i) => !taken.has(i) && m.type === type);
        if (at >= 0) {
          taken.add(at);
          return received[at] as never;
        }
        if (Date.now() > deadline) throw new Error(`the client sent no '${type}' within 3 s`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    close(code = 1000, reason = "") {
      channel?.close(code, reason);
    },
  };
}

/** `weights` with `delta` added to every value. */
export function shifted(weights: Weights, delta: number): Weights {
  return weights.map((v) => v.map((x) => x + delta));
}
