/**
 * A browser peer of a decentralized session: trains locally, exchanges updates with its peers
 * directly. It speaks what Python's `disco.decentralized.peer.PeerClient` speaks, and lives a
 * round the same way (docs/protocol.md, docs/decentralized.md):
 *
 * 1. `RoundPlan`: the round's model is the one it holds, the initial one (fetched from the server
 *    by REST before the first round, its digest checked against the `X-Disco-Digest` header), or
 *    one fetched from the peer named in `model_from`; its digest must match the plan's.
 * 2. Training starts at once; meanwhile the channels to the round's neighbours open (or are
 *    reused) and each one opened is reported (`Ready`, cumulative).
 * 3. `Exchange` (the barrier passed): the update goes to every neighbour that passed it; every
 *    valid update received is acknowledged and reported to the server (`Received`, cumulative;
 *    also right when `Exchange` arrives if updates came before it).
 * 4. `Combine`: exactly the listed updates are combined, in sorted id order — with the task's
 *    rule (the browser does "mean" only) in an all-to-all round, so every peer gets the same
 *    model bit for bit; by Metropolis–Hastings mixing in a sparse round — and the new model's
 *    digest goes to the server (`DigestReport`).
 *
 * A `Resync` makes it fetch the agreed model from the named peer. A peer sits a round out when it
 * cannot get the round's model, or when the barrier left it out. Every wait is bounded: by the
 * plan's deadlines plus `SLACK_MS`, or by the task's `wait_for_others_s` between rounds. What is
 * sent after training comes from the one update pipeline (`../client/update.ts`), as in a
 * federated session.
 */

import { AggregationError } from "../aggregation/errors";
import { combineMean, MAX_CHANGE } from "../aggregation/mean";
import { DiscoError, ServerError, SessionError, StoppedError } from "../errors";
import type { RandomSource } from "../privacy";
import {
  DEFAULT_MAX_FRAME,
  type ClientMessage,
  type Combine,
  type ErrorMessage,
  type Exchange,
  type PeerUpdate,
  type Resync,
  type RoundPlan,
  type ServerMessage,
  type Status,
  type Topology,
  type Welcome,
} from "../protocol";
import type { AggregationConfig, PrivacyConfig } from "../task";
import type { Channel } from "../transport/channel";
import { WaitQueue } from "../transport/queues";
import { bounded, sleep, WaitTimeout } from "../transport/wait";
import { WebSocketChannel } from "../transport/websocket";
import type { Weights } from "../weights";
import {
  FATAL_CLOSE,
  newParticipantKey,
  ServerUnreachable,
  WaitExpired,
  wsUrl,
  type LogEvent,
  type SentEvent,
  type TrainOutput,
} from "../client/federated";
import { Link, LinkClosed, SEND_TIMEOUT_MS, type Traffic } from "../client/link";
import { describePrivacy, prepareUpdate } from "../client/update";
import { RtcConnector, type Connector, type OnChannel, type PeerConnectionState, type SendSignal } from "./connector";
import { digestOf, PeerExchange } from "./exchange";
import { Notifier, sortedIds } from "./notify";
import { peerRefusal } from "./rules";

export { PEER_RULES, peerRefusal } from "./rules";

/** Added to the server's deadlines before a peer gives up waiting for the server itself (ms). */
export const SLACK_MS = 30_000;

/** The capabilities a peer announces in `Hello` (a federated client announces none). */
export const PEER_CAPABILITIES: readonly string[] = ["decentralized"];

/** Makes this peer's connector from (its id, onChannel, sendSignal). */
export type ConnectorFactory = (me: string, onChannel: OnChannel, sendSignal: SendSignal) => Connector;

/** Where one round's time went, in milliseconds (for logs and benchmarks); Python's `RoundTiming`. */
export interface RoundTiming {
  round: number;
  /** Getting the round's model (0 when held). */
  modelMs: number;
  /** Plan → every neighbour's channel open. */
  connectMs: number;
  trainMs: number;
  /** Update sent → combine received. */
  exchangeMs: number;
  combineMs: number;
  totalMs: number;
  neighbours: number;
  contributors: number;
  digest: string;
}

/** What the peer is doing, for the UI. */
export type PeerState =
  | "connecting" // opening the connection to the server, saying hello
  | "waiting_for_participants" // fewer peers connected than a round needs
  | "waiting" // enough peers: waiting for the next round to start
  | "connecting_peers" // a round started: getting its model, opening the channels to its peers
  | "training" // training locally on the round's model
  | "exchanging" // sending the update to the round's peers, receiving theirs
  | "combining" // combining the updates the server named
  | "done"
  | "stopped"
  | "error";

/** The peer's state and the session's counters. */
export interface PeerStatusEvent {
  kind: "status";
  state: PeerState;
  /** The server's open round (rounds the shared model has been through). */
  round: number;
  participants: number;
  minParticipants: number;
  /** Peers in the round this peer takes part in (it included); null between rounds. */
  members: number | null;
  /** While waiting for a round to start: when this peer gives up (ms since the epoch). */
  waitUntil: number | null;
  message?: string;
}
/** One peer of the round as the display shows it. */
export interface PeerView {
  id: string;
  name: string;
  kind: "python" | "browser";
  state: PeerConnectionState;
}
/** The round's peers and how the channel to each stands (sent whenever one changes). */
export interface PeersEvent {
  kind: "peers";
  round: number;
  topology: Topology;
  /** Peers in the round, this one included. */
  members: number;
  /** This peer's neighbours in the round. */
  peers: PeerView[];
}
/** This peer combined a round: `round` is the round its model opens (combined round + 1). */
export interface PeerRoundEvent {
  kind: "round";
  round: number;
  contributors: number;
  weights: Weights;
  digest: string;
  timing: RoundTiming;
}
/** Training starts on the model of server round `round`. */
export interface PeerModelEvent {
  kind: "model";
  round: number;
  weights: Weights;
}
/** Everything `onEvent` receives. */
export type PeerClientEvent = PeerStatusEvent | PeersEvent | PeerRoundEvent | PeerModelEvent | LogEvent | SentEvent;

/**
 * Local training on the model of server round `round`; `yourRound` counts this peer's rounds from
 * 1 (for the round's epochs); `signal` aborts when the client stops or the round fails.
 */
export type PeerTrainFn = (round: number, weights: Weights, signal: AbortSignal, yourRound: number) => Promise<TrainOutput>;

/** The task's initial model as the server serves it, with the digest of its `X-Disco-Digest` header. */
export type InitialModelFn = (signal: AbortSignal) => Promise<{ weights: Weights; digest: string }>;

/** Options of `PeerClient`. */
export interface PeerClientOptions {
  /** The server's http(s) base URL (e.g. `location.origin`), or its ws(s) URL. */
  serverUrl: string;
  taskId: string;
  /** Display name shown to others (≤ 100 characters). */
  name?: string;
  /** The task's aggregation: the browser combines with "mean" only. */
  aggregation: AggregationConfig;
  train: PeerTrainFn;
  /** Names and shapes every model and update must have (the local model's). */
  reference: Weights;
  /** Fetches the initial model (`GET /api/tasks/{id}/model`). */
  initialModel: InitialModelFn;
  onEvent?: (event: PeerClientEvent) => void;
  /** The task's privacy: updates are clipped and noised before they leave (default none). */
  privacy?: PrivacyConfig | null;
  random?: RandomSource;
  /** Longest wait for a round to start (the task's `wait_for_others_s`; default 600 s). */
  waitForOthersMs?: number;
  /** Longest wait for the connection to open, then for `Welcome` (default 30 s each). */
  joinTimeoutMs?: number;
  /** The WebSocket class (default: the global one). */
  WebSocketImpl?: typeof WebSocket;
  /** Opens the channel to the server instead of a WebSocket (tests: an in-memory channel). */
  openServer?: (signal: AbortSignal) => Promise<Channel>;
  /** Makes the connector (default: WebRTC, with `iceServers`). */
  connector?: ConnectorFactory;
  /** STUN/TURN servers for the default connector; none by default. */
  iceServers?: unknown[];
  /** Added to the plan's deadlines before this peer gives up on the server (default `SLACK_MS`). */
  slackMs?: number;
}

/** What `run()` resolves with. */
export interface PeerResult {
  /** The model this peer holds: the last one it combined. */
  weights: Weights;
  /** Rounds this peer combined. */
  rounds: number;
  bytesUp: number;
  bytesDown: number;
  bytesToServer: number;
  bytesToPeers: number;
  bytesFromPeers: number;
  timings: RoundTiming[];
}

/**
 * The model this peer ends an all-to-all or sparse round with (Python's `PeerClient._combine`):
 * `received` holds the neighbours' valid updates, `own` this peer's (as sent). All to all: the
 * mean rule over exactly the updates `combine` lists that are held (sorted ids), from `base`
 * (unchanged when there are none). Sparse: own weight × own update + Σ neighbour weight ×
 * neighbour update, in float64, own first, then the chosen neighbours in `plan.peers` order, the
 * own weight being 1 − the sum of the chosen neighbours' weights; then rounded to float32.
 */
export function combineRound(
  plan: Pick<RoundPlan, "topology" | "peers">,
  base: Weights,
  me: string,
  own: Pick<PeerUpdate, "weights" | "num_samples">,
  combine: Pick<Combine, "peers">,
  received: ReadonlyMap<string, Pick<PeerUpdate, "weights" | "num_samples">>,
  maxShare: number | null,
): Weights {
  const all = new Map(received);
  all.set(me, own);
  const chosen = sortedIds(combine.peers).filter((p) => all.has(p));
  if (plan.topology === "all_to_all") {
    if (chosen.length === 0) return base;
    const updates = chosen.map((p) => {
      const update = all.get(p) as Pick<PeerUpdate, "weights" | "num_samples">;
      return { participant: p, weights: update.weights, numSamples: update.num_samples };
    });
    return combineMean(base, updates, maxShare);
  }
  const picked = new Set(chosen);
  const weights = plan.peers.filter((p) => picked.has(p.id)).map((p) => ({ id: p.id, weight: p.weight }));
  const ownWeight = 1.0 - weights.reduce((sum, p) => sum + p.weight, 0);
  return own.weights.map((values, name) => {
    const mixed = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) mixed[i] = ownWeight * (values[i] as number);
    for (const { id, weight } of weights) {
      const theirs = (all.get(id) as Pick<PeerUpdate, "weights">).weights.get(name);
      for (let i = 0; i < mixed.length; i++) mixed[i] = (mixed[i] as number) + weight * (theirs[i] as number);
    }
    return Float32Array.from(mixed); // round to nearest, ties to even: numpy's astype(float32)
  });
}

/** Joins a decentralized task on a disco server and trains with its peers. */
export class PeerClient {
  /** This peer's identity in the session (from the Welcome). */
  clientId: string | null = null;
  /** The last status from the server. */
  status: Status | null = null;
  /** Rounds this peer combined. */
  roundsDone = 0;
  /** One entry per round this peer combined. */
  readonly timings: RoundTiming[] = [];
  /** The model this peer holds now. */
  weights: Weights | null = null;

  private readonly participantKey = newParticipantKey();
  private readonly url: string;
  private readonly abort = new AbortController();
  private readonly traffic: Traffic = { bytesUp: 0, bytesDown: 0 };
  private readonly exchange: PeerExchange;
  private readonly control = new WaitQueue<RoundPlan | Resync>();
  private readonly exchanges = new Map<number, Exchange>();
  private readonly combines = new Map<number, Combine>();
  private readonly changes = new Notifier();
  private readonly slackMs: number;
  private link: Link | null = null;
  private connector: Connector | null = null;
  private initial: Weights | null = null;
  private initialDigest: string | null = null;
  private welcome: Welcome | null = null;
  private refused: ErrorMessage | null = null;
  private plan: RoundPlan | null = null;
  private state: PeerState = "connecting";
  /** While waiting for the next round: when this peer gives up (ms since the epoch). */
  private waitUntil: number | null = null;
  /** Rounds the model this peer holds has been trained for (the round it opens). */
  private sharedRound = 0;
  private started = false;
  private finished = false;

  constructor(private readonly options: PeerClientOptions) {
    this.url = wsUrl(options.serverUrl);
    this.slackMs = options.slackMs ?? SLACK_MS;
    const wait = options.waitForOthersMs;
    if (wait !== undefined && !(Number.isFinite(wait) && wait > 0)) {
      throw new SessionError(`waitForOthersMs must be a finite number of milliseconds > 0, got ${wait}`);
    }
    this.exchange = new PeerExchange(options.reference, (round) => this.updated(round), {
      maxFrame: DEFAULT_MAX_FRAME,
      onClosed: (peer, channel) => this.connector?.channelClosed(peer, channel),
      acceptable: (round, weights) => this.acceptable(round, weights),
      log: (level, message) => this.log(level, message),
    });
  }

  // -- traffic ---------------------------------------------------------------------------------

  /** Bytes sent to other peers (updates, models, acknowledgements). */
  get bytesToPeers(): number {
    return this.exchange.traffic.bytesUp;
  }
  get bytesFromPeers(): number {
    return this.exchange.traffic.bytesDown;
  }
  /** Bytes to and from the server (signalling, reports; never a model). */
  get bytesToServer(): number {
    return this.traffic.bytesUp + this.traffic.bytesDown;
  }
  /** Bytes sent, to the server and to peers. */
  get bytesUp(): number {
    return this.traffic.bytesUp + this.bytesToPeers;
  }
  get bytesDown(): number {
    return this.traffic.bytesDown + this.bytesFromPeers;
  }

  // -- events ----------------------------------------------------------------------------------

  private emit(event: PeerClientEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (exc) {
      console.warn("disco: onEvent handler failed", exc);
    }
  }

  private log(level: LogEvent["level"], message: string): void {
    this.emit({ kind: "log", level, message });
  }

  private setState(state: PeerState, message?: string): void {
    this.state = state;
    const s = this.status;
    const w = this.welcome;
    this.emit({
      kind: "status",
      state,
      round: s?.round ?? w?.round ?? 0,
      participants: s?.participants ?? w?.participants ?? 0,
      minParticipants: s?.min_participants ?? w?.min_participants ?? 1,
      members: this.plan?.members ?? null,
      waitUntil: this.waitUntil,
      ...(message === undefined ? {} : { message }),
    });
  }

  /** Between rounds: waiting for enough peers, or for the next plan. */
  private waitingState(): PeerState {
    const s = this.status ?? this.welcome;
    return s !== null && s.participants < s.min_participants ? "waiting_for_participants" : "waiting";
  }

  /** Tell the display how the channels to the round's peers stand. */
  private emitPeers(): void {
    const plan = this.plan;
    const connector = this.connector;
    if (plan === null || connector === null) return;
    const peers = plan.peers.map((p) => ({ id: p.id, name: p.name, kind: p.kind, state: connector.state(p.id) }));
    this.emit({ kind: "peers", round: plan.round, topology: plan.topology, members: plan.members, peers });
  }

  // -- server messages -------------------------------------------------------------------------

  /** Every server message, in order, as the link reads it. */
  private observe(m: ServerMessage): void {
    switch (m.type) {
      case "signal":
        this.connector?.onSignal(m);
        break;
      case "plan":
      case "resync":
        this.control.push(m);
        break;
      case "exchange":
        this.exchanges.set(m.round, m);
        if ((this.exchange.updates.get(m.round)?.size ?? 0) > 0) this.updated(m.round); // updates that came before it
        break;
      case "combine":
        this.combines.set(m.round, m);
        break;
      case "status":
        this.status = m;
        if (this.state === "waiting" || this.state === "waiting_for_participants") this.setState(this.waitingState());
        else this.setState(this.state);
        break;
      case "welcome":
        this.welcome = m;
        break;
      case "error":
        if (this.welcome === null) this.refused = m;
        else this.log("warn", `the server says: [${m.code}] ${m.message}`);
        break;
      default:
        break; // a federated session's messages: a server keeping to the protocol sends none here
    }
    this.changes.notify();
  }

  private send(message: ClientMessage): boolean {
    return this.link?.send(message) ?? false;
  }

  /** A valid update of `round` arrived: tell the server whose updates this peer holds. */
  private updated(round: number): void {
    this.changes.notify();
    if (!this.exchanges.has(round)) return;
    const peers = sortedIds(this.exchange.updates.get(round)?.keys() ?? []);
    this.send({ type: "received", round, peers });
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * Wait until `done()`; `SessionError` saying `what` it waited for after `timeoutMs`,
   * `ServerUnreachable` if the connection to the server ends first.
   */
  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new SessionError(`waited ${Math.round(timeoutMs / 1000)} s for ${what}; the server did not say`);
      const ended = this.link?.ended ?? null;
      if (ended !== null) throw this.lost(ended, what);
      try {
        // the link's end notifies `changes` too (see `join`)
        await bounded(Promise.race([this.changes.wait(), this.exchange.changed.wait()]), this.signal, left, what);
      } catch (exc) {
        if (!(exc instanceof WaitTimeout)) throw exc;
      }
    }
  }

  /** The error for a connection to the server that ended while waiting for `what`. */
  private lost(ended: Error, what: string): ServerError {
    if (ended instanceof LinkClosed) {
      const fatal = FATAL_CLOSE[ended.code];
      if (fatal !== undefined) return new ServerError(`${fatal} (${ended.message})`);
    }
    return new ServerUnreachable(
      `the connection to the server closed while waiting for ${what}: ${ended.message}`,
      1,
      this.welcome !== null,
      { cause: ended },
    );
  }

  // -- joining ---------------------------------------------------------------------------------

  private async openServer(timeoutMs: number): Promise<Channel> {
    if (this.options.openServer) return bounded(this.options.openServer(this.signal), this.signal, timeoutMs, "connecting");
    const WebSocketImpl = this.options.WebSocketImpl ?? globalThis.WebSocket;
    if (WebSocketImpl === undefined) throw new SessionError("this environment has no WebSocket");
    return WebSocketChannel.open(this.url, WebSocketImpl, timeoutMs, this.signal, DEFAULT_MAX_FRAME);
  }

  private async join(): Promise<Welcome> {
    this.setState("connecting");
    const timeout = this.options.joinTimeoutMs ?? 30_000;
    let channel: Channel;
    try {
      channel = await this.openServer(timeout);
    } catch (exc) {
      if (this.signal.aborted || exc instanceof SessionError) throw exc;
      const why = exc instanceof Error ? exc.message : String(exc);
      throw new ServerUnreachable(`cannot reach the server at ${this.url}: ${why}`, 1, false, { cause: exc });
    }
    const link = new Link(channel, this.traffic, (m) => this.observe(m), SEND_TIMEOUT_MS, false);
    this.link = link;
    void link.waitEnded().then((error) => {
      this.control.end(this.lost(error, "the next round"));
      this.changes.notify();
    });
    link.send({
      type: "hello",
      task_id: this.options.taskId,
      name: this.options.name ?? "",
      kind: "browser",
      participant_key: this.participantKey,
      capabilities: [...PEER_CAPABILITIES],
    });
    try {
      await this.until(() => this.welcome !== null || this.refused !== null, timeout, "the server's welcome");
    } catch (exc) {
      if (this.refused === null) throw exc;
    }
    const refused = this.refused as ErrorMessage | null;
    if (refused !== null) {
      const advice = refused.code === "unsupported" ? ` (${FATAL_CLOSE[4426]})` : "";
      throw new ServerError(`server refused to join: [${refused.code}] ${refused.message}${advice}`);
    }
    const welcome = this.welcome as Welcome | null;
    if (welcome === null) throw new ServerError("the server sent no welcome");
    if (!welcome.capabilities.includes("decentralized")) {
      throw new ServerError(`task ${welcome.task_id} is not trained between peers on this server; reload the page`);
    }
    return welcome;
  }

  /** The task's initial model, the only one the server keeps; checked against its digest. */
  private async initialModel(): Promise<Weights> {
    let fetched: { weights: Weights; digest: string };
    try {
      fetched = await bounded(this.options.initialModel(this.signal), this.signal, 60_000, "the initial model");
    } catch (exc) {
      if (this.signal.aborted) throw exc;
      throw new ServerError(`could not fetch the initial model: ${exc instanceof Error ? exc.message : String(exc)}`, { cause: exc });
    }
    fetched.weights.checkLike(this.options.reference, "initial model");
    const digest = await digestOf(fetched.weights);
    if (digest !== fetched.digest) throw new ServerError("the initial model does not match the digest the server gave");
    this.initialDigest = digest;
    return fetched.weights;
  }

  // -- the run ---------------------------------------------------------------------------------

  /** Take part in `rounds` rounds, then leave; resolve with the model this peer holds. */
  async run(rounds: number): Promise<PeerResult> {
    if (this.started) throw new SessionError("this client already ran; create a new PeerClient");
    this.started = true;
    if (!Number.isInteger(rounds) || rounds < 0) throw new SessionError(`rounds must be a non-negative integer, got ${rounds}`);
    try {
      const refusal = peerRefusal(this.options.aggregation);
      if (refusal !== null) throw new SessionError(refusal); // before joining: nothing is sent
      if (this.signal.aborted) throw this.signal.reason;
      const welcome = await this.join();
      this.clientId = welcome.client_id;
      const make: ConnectorFactory =
        this.options.connector ??
        ((me, onChannel, sendSignal) =>
          new RtcConnector(me, onChannel, sendSignal, {
            iceServers: this.options.iceServers ?? [],
            log: (level, message) => this.log(level, message),
          }));
      const connector = make(
        welcome.client_id,
        (peer, channel) => this.exchange.watch(peer, channel),
        (signal) => void this.send(signal),
      );
      connector.onChange = () => this.emitPeers();
      this.connector = connector;
      this.initial = await this.initialModel();
      this.weights = this.initial;
      const need = `${welcome.participants} peer${welcome.participants === 1 ? "" : "s"} connected, a round needs ${welcome.min_participants}`;
      this.log("info", `joined task ${welcome.task_id} as ${welcome.client_id}; models go directly between peers (${need})`);
      let done = 0;
      while (done < rounds) {
        const order = await this.nextControl();
        if (order.type === "resync") {
          await this.resync(order);
          continue;
        }
        done += await this.round(order, done + 1, rounds);
        this.roundsDone = done;
      }
      this.send({ type: "leave" });
      this.finished = true;
      this.plan = null;
      this.setState("done");
      this.log("info", `done: ${done} round(s) with the other peers; left the session`);
      const weights = this.weights as Weights;
      return {
        weights,
        rounds: done,
        bytesUp: this.bytesUp,
        bytesDown: this.bytesDown,
        bytesToServer: this.bytesToServer,
        bytesToPeers: this.bytesToPeers,
        bytesFromPeers: this.bytesFromPeers,
        timings: [...this.timings],
      };
    } catch (exc) {
      this.finished = true;
      const error = this.signal.aborted ? this.signal.reason : exc;
      if (!(error instanceof StoppedError)) {
        const text = error instanceof Error ? error.message : String(error);
        this.setState("error", text);
        if (!(error instanceof WaitExpired)) this.log("error", text);
      }
      throw error;
    } finally {
      this.close();
    }
  }

  /** The next plan or resync order, waiting at most the task's `wait_for_others_s`. */
  private async nextControl(): Promise<RoundPlan | Resync> {
    const waitMs = this.options.waitForOthersMs ?? 600_000;
    this.waitUntil = Date.now() + waitMs;
    this.setState(this.waitingState());
    try {
      return await this.control.take(waitMs, this.signal, "the next round");
    } catch (exc) {
      if (!(exc instanceof WaitTimeout)) throw exc;
    } finally {
      this.waitUntil = null;
    }
    const seconds = Math.round(waitMs / 1000);
    const why = this.waitingFor();
    if (this.roundsDone > 0 && this.weights !== null) {
      const message =
        `stopped waiting for the others after ${seconds} s: no round started (${why}). ` +
        `You keep the last model you combined with the others (${this.sharedRound} round${this.sharedRound === 1 ? "" : "s"} of training).`;
      this.log("warn", message);
      throw new WaitExpired(message, this.weights, "global", this.roundsDone, this.sharedRound);
    }
    throw new SessionError(`no round started in ${seconds} s (${why})`);
  }

  private waitingFor(): string {
    const s = this.status ?? this.welcome;
    if (s === null) return "no word from the server";
    return `${s.participants} peer${s.participants === 1 ? "" : "s"} connected, a round needs ${s.min_participants}`;
  }

  /** Leave: close the link, the readers and every channel. */
  private close(): void {
    this.plan = null;
    this.link?.close(1000, this.signal.aborted ? "stopped" : "done");
    this.exchange.close();
    this.connector?.close();
  }

  /** Leave the session now: send Leave, close, and make `run()` reject with `StoppedError`. */
  stop(): void {
    if (this.finished || this.signal.aborted) return;
    if (this.clientId !== null) this.send({ type: "leave" });
    this.link?.close(1000, "stopped");
    this.abort.abort(new StoppedError("stopped: left the session"));
    this.setState("stopped");
    this.log("info", "stopped; left the session");
  }

  // -- one round -------------------------------------------------------------------------------

  /** Take part in the planned round; 1 if this peer combined it, 0 if it sat it out. */
  private async round(plan: RoundPlan, k: number, rounds: number): Promise<number> {
    const r = plan.round;
    const t0 = Date.now();
    const timing: RoundTiming = {
      round: r,
      modelMs: 0,
      connectMs: 0,
      trainMs: 0,
      exchangeMs: 0,
      combineMs: 0,
      totalMs: 0,
      neighbours: plan.peers.length,
      contributors: 0,
      digest: "",
    };
    const mine = `your round ${k} of ${rounds}`;
    this.plan = plan;
    this.exchange.accepting = new Set([r]);
    this.exchange.forgetBefore(r);
    const neighbours = plan.peers.map((p) => p.id);
    this.setState("connecting_peers");
    this.emitPeers();
    const stopRound = new AbortController();
    const onAbort = (): void => stopRound.abort(this.signal.reason);
    this.signal.addEventListener("abort", onAbort);
    const connecting = this.connectAll(plan, neighbours, timing, t0, stopRound.signal);
    try {
      let base: Weights;
      try {
        base = await this.roundModel(plan, timing);
      } catch (exc) {
        if (this.signal.aborted || exc instanceof ServerError) throw exc;
        const why = exc instanceof Error ? exc.message : String(exc);
        this.log("warn", `round ${r}: cannot get the round's model (${why}); sitting this round out`);
        this.forget(r);
        return 0;
      }
      this.exchange.models.set(r, base);
      this.emit({ kind: "model", round: r, weights: base });
      const others = neighbours.length;
      this.log("info", `${mine}: training on the shared model (round ${r}) while connecting to ${others} peer${others === 1 ? "" : "s"}`);
      this.setState("training");
      const tTrain = Date.now();
      const training = bounded(this.options.train(r, base, stopRound.signal, k), this.signal);
      let failed = false; // training failed: no need to wait for the go-ahead to say so
      training.then(
        () => {
          timing.trainMs = Date.now() - tTrain;
          if (!this.exchanges.has(r) && this.state === "training") this.setState("connecting_peers");
        },
        () => {
          failed = true;
          this.changes.notify();
        },
      );
      await this.until(() => failed || this.exchanges.has(r), plan.connect_s * 1000 + this.slackMs, `the server's go-ahead for round ${r}`);
      const out = await training;
      stopRound.abort(); // no more channels to open this round
      const exchange = this.exchanges.get(r) as Exchange;
      if (this.clientId === null || !exchange.peers.includes(this.clientId)) {
        this.log("warn", `round ${r}: left out (channels to the peers did not open in time); waiting for the next round`);
        this.forget(r);
        return 0;
      }
      const own = await this.prepare(base, out, r, mine);
      this.emit({ kind: "sent", round: r, numSamples: own.num_samples });
      const targets = neighbours.filter((n) => exchange.peers.includes(n));
      this.setState("exchanging");
      this.log("info", `round ${r}: sending the update to ${targets.length} peer${targets.length === 1 ? "" : "s"}`);
      const tExchange = Date.now();
      await Promise.all(targets.map((n) => this.sendUpdate(n, own, plan.exchange_s * 1000)));
      await this.until(() => this.combines.has(r), plan.exchange_s * 1000 + this.slackMs, `the server's list of updates to combine in round ${r}`);
      timing.exchangeMs = Date.now() - tExchange;
      const combine = this.combines.get(r) as Combine;
      this.setState("combining");
      const tCombine = Date.now();
      const received = new Map(this.exchange.updates.get(r) ?? []);
      const maxShare = this.options.aggregation.rule === "mean" ? this.options.aggregation.max_share : null;
      let combined: Weights;
      try {
        combined = combineRound(plan, base, this.clientId, own, combine, received, maxShare);
      } catch (exc) {
        if (!(exc instanceof AggregationError)) throw exc;
        // every peer fails alike: all keep the round's model
        this.log("warn", `round ${r}: the updates could not be combined (${exc.message}); keeping the round's model`);
        combined = base;
      }
      timing.combineMs = Date.now() - tCombine;
      this.weights = combined;
      this.sharedRound = r + 1;
      this.exchange.models.set(r + 1, combined);
      const digest = await digestOf(combined);
      this.send({ type: "digest", round: r, digest });
      timing.totalMs = Date.now() - t0;
      timing.contributors = combine.peers.length;
      timing.digest = digest;
      this.timings.push(timing);
      this.forget(r);
      const seconds = (timing.totalMs / 1000).toFixed(1);
      this.log("info", `${mine} done: combined ${combine.peers.length} update${combine.peers.length === 1 ? "" : "s"} in ${seconds} s (model ${digest.slice(0, 12)}…)`);
      this.emit({ kind: "round", round: r + 1, contributors: combine.peers.length, weights: combined, digest, timing });
      return 1;
    } catch (exc) {
      stopRound.abort(exc instanceof Error ? exc : undefined); // stop training and connecting
      throw exc;
    } finally {
      this.signal.removeEventListener("abort", onAbort);
      if (!stopRound.signal.aborted) stopRound.abort();
      await connecting;
      if (this.plan === plan) this.plan = null; // between rounds: no round's peers to show
    }
  }

  /** The update to send after training `base` into `out` (the one update pipeline). */
  private async prepare(base: Weights, out: TrainOutput, round: number, mine: string): Promise<PeerUpdate> {
    const privacy = this.options.privacy ?? null;
    const prepared = prepareUpdate(base, out.weights, out.numSamples, out.metrics, privacy, this.options.random);
    if (prepared.droppedMetrics.length > 0) {
      this.log("warn", `${mine}: metrics ${prepared.droppedMetrics.join(", ")} are not finite; they are not reported`);
    }
    if (privacy !== null) this.log("info", describePrivacy(prepared, privacy));
    const { weights, numSamples, metrics } = prepared;
    return { type: "peer_update", round, num_samples: numSamples, weights, digest: await digestOf(weights), metrics };
  }

  /** The model round `plan.round` starts from. */
  private async roundModel(plan: RoundPlan, timing: RoundTiming): Promise<Weights> {
    const t = Date.now();
    const held = this.exchange.models.get(plan.round);
    if (held !== undefined && plan.digest !== undefined && (await digestOf(held)) === plan.digest) return held; // e.g. fetched by a resync
    if (plan.model_from !== undefined) {
      const peer = plan.model_from;
      const connector = this.connector as Connector;
      const neighbours = new Set(plan.peers.map((p) => p.id));
      this.log("info", `round ${plan.round}: fetching the round's model from peer ${peer}`);
      const timeout = plan.connect_s * 1000;
      const channel = await connector.connect(peer, timeout, { initiate: !neighbours.has(peer), signal: this.signal });
      const model = await this.exchange.fetch(peer, channel, plan.round, timeout, this.signal);
      if (plan.digest !== undefined && (await digestOf(model)) !== plan.digest) {
        throw new DiscoError(`the model from ${peer} is not the round's model`);
      }
      this.log("info", `round ${plan.round}: got the round's model from peer ${peer}`);
      timing.modelMs = Date.now() - t;
      return model;
    }
    if (held !== undefined && plan.digest === undefined) return held;
    const initial = this.initial as Weights;
    if (plan.digest === undefined || plan.digest === this.initialDigest) return initial;
    throw new DiscoError(`this peer does not hold the model of round ${plan.round}`);
  }

  /** Open (or reuse) a channel to every neighbour; report each one that opens (cumulatively). */
  private async connectAll(plan: RoundPlan, neighbours: string[], timing: RoundTiming, t0: number, signal: AbortSignal): Promise<void> {
    const connector = this.connector as Connector;
    const deadline = Date.now() + plan.connect_s * 1000;
    const connected = new Set<string>();
    const one = async (peer: string): Promise<void> => {
      while (Date.now() < deadline && !signal.aborted) {
        try {
          await connector.connect(peer, deadline - Date.now(), { signal });
        } catch (exc) {
          if (signal.aborted) return;
          const why = exc instanceof Error ? exc.message : String(exc);
          this.log("info", `round ${plan.round}: channel to peer ${peer} not open yet (${why})`);
          await sleep(500, signal).catch(() => undefined); // retry a failed attempt while there is time
          continue;
        }
        connected.add(peer);
        this.send({ type: "ready", round: plan.round, connected: sortedIds(connected) });
        this.emitPeers();
        return;
      }
    };
    if (neighbours.length === 0) this.send({ type: "ready", round: plan.round, connected: [] });
    await Promise.all(neighbours.map(one));
    timing.connectMs = Date.now() - t0;
  }

  private async sendUpdate(peer: string, update: PeerUpdate, timeoutMs: number): Promise<void> {
    const channel = this.connector?.channel(peer) ?? null;
    if (channel === null) {
      this.log("info", `round ${update.round}: no channel to peer ${peer}; its update is not sent`);
      return;
    }
    try {
      await this.exchange.send(channel, update, timeoutMs, this.signal);
    } catch (exc) {
      if (this.signal.aborted) throw exc;
      const why = exc instanceof Error ? exc.message : String(exc);
      this.log("info", `round ${update.round}: sending the update to peer ${peer} failed (${why})`);
    }
  }

  /** Why the task's rule cannot take `weights` as an update of `round` (null: it can): the mean takes changes below 256. */
  private acceptable(round: number, weights: Weights): string | null {
    const base = this.exchange.models.get(round);
    if (base === undefined || this.options.aggregation.rule !== "mean") return null;
    const change = largestChange(base, weights);
    return change < MAX_CHANGE ? null : `a value changed by ${formatG(change)} in one round; the mean takes less than ${MAX_CHANGE}`;
  }

  private forget(r: number): void {
    for (const orders of [this.exchanges, this.combines] as Map<number, unknown>[]) {
      for (const old of [...orders.keys()]) if (old <= r) orders.delete(old);
    }
  }

  /** Fetch the agreed model of `order.round` from `order.peer`. */
  private async resync(order: Resync): Promise<void> {
    const connector = this.connector as Connector;
    let model: Weights;
    try {
      const channel = await connector.connect(order.peer, 60_000, { initiate: true, signal: this.signal });
      model = await this.exchange.fetch(order.peer, channel, order.round, 60_000, this.signal);
    } catch (exc) {
      if (this.signal.aborted) throw exc;
      const why = exc instanceof Error ? exc.message : String(exc);
      this.log("warn", `resync from peer ${order.peer} failed (${why}); the next round fetches it again`);
      return;
    }
    if ((await digestOf(model)) !== order.digest) {
      this.log("warn", `the model from peer ${order.peer} is not the agreed one; not taken`);
      return;
    }
    this.weights = model;
    this.sharedRound = order.round;
    this.exchange.models.set(order.round, model);
    this.send({ type: "digest", round: order.round - 1, digest: order.digest });
    this.log("info", `your model differed from the others'; took the agreed model of round ${order.round} from peer ${order.peer}`);
  }
}

/** The largest |trained − base| over every value (float32 differences, as numpy's), 0 when there are none. */
export function largestChange(base: Weights, trained: Weights): number {
  let largest = 0;
  trained.names.forEach((name, t) => {
    const values = trained.values[t] as Float32Array;
    const from = base.get(name);
    for (let i = 0; i < values.length; i++) {
      const change = Math.abs(Math.fround((values[i] as number) - (from[i] as number)));
      if (!(change <= largest)) largest = change; // NaN wins, as numpy's max
    }
  });
  return largest;
}

/** A number as Python's `format(x, "g")` writes it (6 significant digits). */
function formatG(x: number): string {
  if (!Number.isFinite(x)) return String(x).toLowerCase().replace("infinity", "inf");
  const exponent = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, power] = x.toExponential(5).split("e") as [string, string];
    const trimmed = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const sign = power.startsWith("-") ? "-" : "+";
    return `${trimmed}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return String(Number(x.toPrecision(6)));
}
