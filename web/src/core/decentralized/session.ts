/**
 * A peer's side of a decentralized session with the server (the groundwork of `PeerClient`,
 * ./peer.ts, and of its rounds, ./rounds.ts): what it holds and counts, what it tells the display,
 * the server's messages as they arrive (a secure round's in its `SecureBox`) and the peers'
 * updates as they are checked, bounded waits on either, and joining: the connection,
 * `Hello`/`Welcome` (with capability `secure_aggregation` for a task that uses it), the task's
 * initial model.
 */

import { MAX_CHANGE } from "../aggregation/mean";
import { ServerError, SessionError } from "../errors";
import {
  DEFAULT_MAX_FRAME,
  type ClientMessage,
  type Combine,
  type ErrorMessage,
  type Exchange,
  type Resync,
  type RoundPlan,
  type ServerMessage,
  type Status,
  type Welcome,
} from "../protocol";
import type { Channel } from "../transport/channel";
import { WaitQueue } from "../transport/queues";
import { bounded, WaitTimeout } from "../transport/wait";
import { WebSocketChannel } from "../transport/websocket";
import type { Weights } from "../weights";
import { Link, LinkClosed, SEND_TIMEOUT_MS, type Traffic } from "../client/link";
import { checkWaitForOthers, deliver, type LogEvent } from "../client/options";
import { fatalClose, hello, newParticipantKey, refusal, ServerUnreachable, webSocketClass, wsUrl } from "../client/server";
import { SECURE_CAPABILITY } from "../client/session";
import { formatG, largestChange } from "./combine";
import type { Connector } from "./connector";
import type { PeerClientEvent, PeerState, RoundTiming } from "./events";
import { digestOf, PeerExchange } from "./exchange";
import { Notifier } from "./notify";
import { peerCapabilities, SLACK_MS, type PeerClientOptions } from "./options";
import type { SecureBox } from "./secure";

/** What a peer holds and how it talks with the server; `PeerClient` adds the run and its rounds. */
export abstract class PeerSession {
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
  protected readonly abort = new AbortController();
  private readonly traffic: Traffic = { bytesUp: 0, bytesDown: 0 };
  protected readonly exchange: PeerExchange;
  protected readonly control = new WaitQueue<RoundPlan | Resync>();
  protected readonly exchanges = new Map<number, Exchange>();
  protected readonly combines = new Map<number, Combine>();
  /** The server's messages of secure rounds, by round. */
  private readonly secureBoxes = new Map<number, SecureBox>();
  protected readonly changes = new Notifier();
  protected readonly slackMs: number;
  protected link: Link | null = null;
  protected connector: Connector | null = null;
  protected initial: Weights | null = null;
  protected initialDigest: string | null = null;
  protected welcome: Welcome | null = null;
  private refused: ErrorMessage | null = null;
  protected plan: RoundPlan | null = null;
  protected state: PeerState = "connecting";
  /** While waiting for the next round: when this peer gives up (ms since the epoch). */
  protected waitUntil: number | null = null;
  /** Rounds the model this peer holds has been trained for (the round it opens). */
  protected sharedRound = 0;
  protected started = false;
  protected finished = false;

  constructor(protected readonly options: PeerClientOptions) {
    this.url = wsUrl(options.serverUrl);
    this.slackMs = options.slackMs ?? SLACK_MS;
    checkWaitForOthers(options.waitForOthersMs);
    this.exchange = new PeerExchange(options.reference, (round) => this.updated(round), {
      maxFrame: DEFAULT_MAX_FRAME,
      onClosed: (peer, channel) => this.connector?.channelClosed(peer, channel),
      acceptable: (round, weights) => this.acceptable(round, weights),
      secure: Boolean(options.secureAggregation),
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

  protected emit(event: PeerClientEvent): void {
    deliver(this.options, event);
  }

  protected log(level: LogEvent["level"], message: string): void {
    this.emit({ kind: "log", level, message });
  }

  protected setState(state: PeerState, message?: string): void {
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
  protected waitingState(): PeerState {
    const s = this.status ?? this.welcome;
    return s !== null && s.participants < s.min_participants ? "waiting_for_participants" : "waiting";
  }

  /** Tell the display how the channels to the round's peers stand. */
  protected emitPeers(): void {
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
        if (this.exchange.holders(m.round).length > 0) this.updated(m.round); // updates that came before it
        break;
      case "secure_setup":
        if (this.secure) this.secureBox(m.round).setup = m;
        break;
      case "secure_inbox":
        if (this.secure) this.secureBox(m.round).inbox = m;
        break;
      case "secure_unmask":
        if (this.secure) this.secureBox(m.round).unmask = m;
        break;
      case "secure_reveals":
        if (this.secure) this.secureBox(m.round).reveals = m;
        break;
      case "secure_abort":
        if (this.secure) this.secureBox(m.round).abort = m;
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
        // a refusal of one of its secure round's messages: it sits that round out
        if (this.welcome !== null && this.secure && m.round !== undefined) this.secureBox(m.round).error = m;
        break;
      default:
        break; // a federated session's messages: a server keeping to the protocol sends none here
    }
    this.changes.notify();
  }

  protected send(message: ClientMessage): boolean {
    return this.link?.send(message) ?? false;
  }

  /** Whether the task uses secure aggregation (its rounds are secure ones, docs/protocol.md §19.1). */
  protected get secure(): boolean {
    return Boolean(this.options.secureAggregation);
  }

  /** The server's messages of secure round `round` (made empty when first asked for). */
  protected secureBox(round: number): SecureBox {
    let box = this.secureBoxes.get(round);
    if (box === undefined) {
      box = {};
      this.secureBoxes.set(round, box);
    }
    return box;
  }

  /** Drop what the server said about rounds up to `round`. */
  protected forgetOrders(round: number): void {
    for (const orders of [this.exchanges, this.combines, this.secureBoxes] as Map<number, unknown>[]) {
      for (const old of [...orders.keys()]) if (old <= round) orders.delete(old);
    }
  }

  /** A valid update (or masked input) of `round` arrived: tell the server whose this peer holds. */
  private updated(round: number): void {
    this.changes.notify();
    if (!this.exchanges.has(round)) return;
    this.send({ type: "received", round, peers: this.exchange.holders(round) });
  }

  /** Why the task's rule cannot take `weights` as an update of `round` (null: it can): the mean takes changes below 256. */
  private acceptable(round: number, weights: Weights): string | null {
    const base = this.exchange.models.get(round);
    if (base === undefined || this.options.aggregation.rule !== "mean") return null;
    const change = largestChange(base, weights);
    return change < MAX_CHANGE ? null : `a value changed by ${formatG(change)} in one round; the mean takes less than ${MAX_CHANGE}`;
  }

  protected get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * Wait until `done()`; `SessionError` saying `what` it waited for after `timeoutMs`,
   * `ServerUnreachable` if the connection to the server ends first.
   */
  protected async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
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
      const fatal = fatalClose(ended);
      if (fatal !== null) return fatal;
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
    return WebSocketChannel.open(this.url, webSocketClass(this.options.WebSocketImpl), timeoutMs, this.signal, DEFAULT_MAX_FRAME);
  }

  protected async join(): Promise<Welcome> {
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
    link.send(hello(this.options, this.participantKey, peerCapabilities(this.options)));
    try {
      await this.until(() => this.welcome !== null || this.refused !== null, timeout, "the server's welcome");
    } catch (exc) {
      if (this.refused === null) throw exc;
    }
    const refused = this.refused as ErrorMessage | null;
    if (refused !== null) throw refusal(refused);
    const welcome = this.welcome as Welcome | null;
    if (welcome === null) throw new ServerError("the server sent no welcome");
    if (!welcome.capabilities.includes("decentralized")) {
      throw new ServerError(`task ${welcome.task_id} is not trained between peers on this server; reload the page`);
    }
    if (this.secure && !welcome.capabilities.includes(SECURE_CAPABILITY)) {
      // never send an update in the clear to peers that should see only the sum
      throw new ServerError(
        `the server runs task ${welcome.task_id} without secure aggregation, though its settings here ask for it; ` +
          "nothing was sent: reload the page to see the task as it is now",
      );
    }
    return welcome;
  }

  /** The task's initial model, the only one the server keeps; checked against its digest. */
  protected async initialModel(): Promise<Weights> {
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
}
