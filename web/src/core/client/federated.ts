/**
 * A browser participant of a federated session: trains locally, sends its update, adopts the
 * aggregate. Mirrors the Python `disco.client.federated.FederatedClient` (docs/protocol.md §9):
 *
 *     connecting → Welcome(round r, G_r) → training → ModelUpdate(r) → UpdateAck, Status… →
 *     RoundResult(r+1) → training … → after the last round: Leave.
 *
 * A dropped connection is retried with back-off; on reconnect a pending update is sent again if
 * the server is still in its round, and a newer global model is adopted otherwise. Every `Hello`
 * carries the same `participant_key` (a random secret made once per client), so the server knows a
 * reconnecting participant as the one it was: a resent update counts once, and aggregators that
 * remember participants keep its history. A server that
 * never answered is given up on sooner (`firstConnectTimeoutMs`) than one lost mid-session
 * (`reconnectTimeoutMs`); both end in `ServerUnreachable`. After its update the client waits at
 * most `waitForOthersMs` (the task's `wait_for_others_s`) for the round to close, saying every
 * 30 s how many participants are missing, then stops with `WaitExpired`, which carries the model
 * it keeps. Every wait is bounded; `stop()` leaves the session and makes `run()` reject with
 * `StoppedError` at once.
 *
 * What is sent after training comes from the one update pipeline (`./update.ts`: checks, the
 * task's privacy, metrics), as in Python.
 *
 * Numbering: "your round k of N" counts this client's rounds from 1; the server's round r
 * (0-based on the wire) is how many rounds the shared model has been trained for.
 */

import { ServerError, SessionError, StoppedError, UpdateRejected } from "../errors";
import type { RandomSource } from "../privacy";
import { isDecentralizedMessage, type Metrics, type ModelUpdate, type RoundResult, type ServerMessage, type SessionState } from "../protocol";
import type { PrivacyConfig } from "../task";
import type { Weights } from "../weights";
import { bounded, Link, LinkClosed, sleep, WaitTimeout, type Traffic } from "./link";
import { describePrivacy, prepareUpdate, type RawMetrics } from "./update";

/** While waiting for others, a log line this often. */
export const WAIT_LOG_MS = 30_000;

/** What the client is doing, for the UI. */
export type ClientState =
  | "connecting" // opening the connection, saying hello (also while reconnecting)
  | "waiting_for_participants" // update sent; fewer than min_participants connected
  | "training" // training locally on the global model of `round`
  | "sending_update" // sending the update (again, after a reconnect)
  | "aggregating" // update in; waiting for the round to close and the new model
  | "done" // all rounds done, left the session
  | "stopped" // stopped by `stop()`
  | "error"; // failed; `message` says why

/** The client's state and the session's counters (from the last Welcome/Status/Ack/Result). */
export interface StatusEvent {
  kind: "status";
  state: ClientState;
  /** The server's open round (0-based, as on the wire). */
  round: number;
  participants: number;
  minParticipants: number;
  /** Updates accepted in the open round. */
  reported: number;
  /** While `connecting`: which attempt of this (re)connection is under way (1, 2, …); else 0. */
  attempt: number;
  /** Whether this client joined the session before (a `connecting` state is then a reconnect). */
  joined: boolean;
  /** While waiting for the round to close after this client's update: when it gives up (ms since the epoch). */
  waitUntil: number | null;
  message?: string;
}
/** A round closed: `round` is the round its model opens (closed round + 1). */
export interface RoundEvent {
  kind: "round";
  round: number;
  contributors: number;
  numSamples: number;
  /** Sample-weighted mean metrics of the contributors. */
  metrics: Metrics;
  /** The new global model (the aggregate of the closed round). */
  weights: Weights;
}
/** A line for a human-readable log. */
export interface LogEvent {
  kind: "log";
  level: "info" | "warn" | "error";
  message: string;
}
/** An update left this client (once per round; resends after a reconnect are not counted). */
export interface SentEvent {
  kind: "sent";
  /** The server round it is for. */
  round: number;
  numSamples: number;
}
/** Everything `onEvent` receives. */
export type ClientEvent = StatusEvent | RoundEvent | LogEvent | SentEvent;

/** What local training returns: the trained weights (not a difference) and its sample count. */
export interface TrainOutput {
  weights: Weights;
  /** Training samples behind the update: an integer from 1 to 2^40 (its FedAvg weight). */
  numSamples: number;
  /** Metrics of the last epoch; non-finite ones are left out of the update. */
  metrics: RawMetrics;
}
/** Local training on the global model of `round`; `signal` aborts when the client stops. */
export type TrainFn = (round: number, weights: Weights, signal: AbortSignal) => Promise<TrainOutput>;

/** Options of `FederatedClient`. */
export interface FederatedClientOptions {
  /** The server's http(s) base URL (e.g. `location.origin`), or its ws(s) URL. */
  serverUrl: string;
  taskId: string;
  /** Display name shown to others and in server logs (≤ 100 characters). */
  name?: string;
  train: TrainFn;
  onEvent?: (event: ClientEvent) => void;
  /** The task's privacy: updates are clipped and noised before they leave (default none). */
  privacy?: PrivacyConfig | null;
  /** Noise source for privacy (default `crypto.getRandomValues`); tests pass their own. */
  random?: RandomSource;
  /** Longest wait for a round to close after sending an update (the task's `wait_for_others_s`; default 600 s). */
  waitForOthersMs?: number;
  /** How long to keep trying to reconnect after the connection was lost (default 60 s). */
  reconnectTimeoutMs?: number;
  /** How long to keep trying when the very first connection does not succeed (default 15 s). */
  firstConnectTimeoutMs?: number;
  /** Longest wait for the connection to open, then for `Welcome` (default 30 s each). */
  joinTimeoutMs?: number;
  /** The WebSocket class (default: the global one); tests inject a fake. */
  WebSocketImpl?: typeof WebSocket;
  /** Names and shapes the global model must have (checked on Welcome), e.g. the local model's. */
  reference?: Weights;
}

/** What `run()` resolves with. */
export interface FederatedResult {
  /** The last global model. */
  weights: Weights;
  /** Rounds taken part in. */
  rounds: number;
  bytesUp: number;
  bytesDown: number;
}

interface Model {
  round: number;
  weights: Weights;
}

/** The server could not be reached within the connection budget; the session was not (re)joined. */
export class ServerUnreachable extends ServerError {
  override name = "ServerUnreachable";
  constructor(
    message: string,
    /** Connection attempts made. */
    readonly attempts: number,
    /** Whether the session had been joined before (the connection was lost mid-session). */
    readonly joined: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The client waited `waitForOthersMs` for the others after its update and stopped (mirrors
 * Python's `disco.errors.WaitExpired`). It keeps `weights`: the last global model the server
 * combined (`kept === "global"`, trained for `sharedRounds` rounds), or its own locally trained
 * model when nothing was combined since it joined (`kept === "local"`).
 */
export class WaitExpired extends SessionError {
  override name = "WaitExpired";
  constructor(
    message: string,
    readonly weights: Weights,
    readonly kept: "global" | "local",
    /** Rounds this client completed. */
    readonly roundsDone: number,
    /** Rounds the shared model had been trained for when this client stopped. */
    readonly sharedRounds: number,
  ) {
    super(message);
  }
}

/**
 * The optional parts of the protocol this client announces in `Hello.capabilities`: none (a
 * decentralized task is joined by `PeerClient`, core/decentralized/peer.ts, which announces
 * `["decentralized"]`).
 */
export const CLIENT_CAPABILITIES: readonly string[] = [];

/**
 * Close codes after which reconnecting cannot help (Python's `disco.client.link.FATAL_CLOSE`, in
 * this page's words).
 */
export const FATAL_CLOSE: Readonly<Record<number, string>> = {
  1003: "the server sent a frame this page cannot read; reload the page",
  1009: "the update is larger than the server accepts",
  4400: "this page speaks another protocol version than the server; reload the page",
  4404: "the server does not know this task",
  4426: "this task needs a newer client: update the page/app",
};

/** Error codes the server closes the connection after (4400, 4404, 4426): reconnecting cannot help. */
const FATAL_ERRORS: ReadonlySet<string> = new Set(["version", "unknown_task", "unsupported"]);

/** The WebSocket endpoint (`ws(s)://host/ws`) of a server given by its http(s) base URL. */
export function wsUrl(server: string): string {
  const base = server.replace(/\/+$/, "");
  if (base.startsWith("https://")) return `wss://${base.slice(8)}/ws`;
  if (base.startsWith("http://")) return `ws://${base.slice(7)}/ws`;
  return base.endsWith("/ws") ? base : `${base}/ws`;
}

/** A fresh `participant_key`: 24 random bytes (`crypto.getRandomValues`) in base64url, 32 characters. */
export function newParticipantKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Joins a task on a disco server and trains with the others, round after round. */
export class FederatedClient {
  /** This participant's identity in the session (from the last Welcome). */
  clientId: string | null = null;
  /** The secret sent in every Hello, made once per client: reconnecting with it keeps the identity. */
  private readonly participantKey = newParticipantKey();
  private readonly url: string;
  private readonly abort = new AbortController();
  private readonly traffic: Traffic = { bytesUp: 0, bytesDown: 0 };
  private readonly status: Omit<StatusEvent, "kind" | "message"> = {
    state: "connecting",
    round: 0,
    participants: 0,
    minParticipants: 1,
    reported: 0,
    attempt: 0,
    joined: false,
    waitUntil: null,
  };
  private sessionState: SessionState = "waiting_for_participants";
  private link: Link | null = null;
  private started = false;
  private finished = false;

  constructor(private readonly options: FederatedClientOptions) {
    this.url = wsUrl(options.serverUrl);
    const wait = options.waitForOthersMs;
    if (wait !== undefined && !(Number.isFinite(wait) && wait > 0)) {
      throw new SessionError(`waitForOthersMs must be a finite number of milliseconds > 0, got ${wait}`);
    }
  }

  // -- events ------------------------------------------------------------------------------
  private emit(event: ClientEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (exc) {
      console.warn("disco: onEvent handler failed", exc);
    }
  }

  private log(level: LogEvent["level"], message: string): void {
    this.emit({ kind: "log", level, message });
  }

  private setState(state: ClientState, message?: string): void {
    this.status.state = state;
    this.emit({ kind: "status", ...this.status, ...(message === undefined ? {} : { message }) });
  }

  private waitingState(): ClientState {
    return this.sessionState === "waiting_for_participants" ? "waiting_for_participants" : "aggregating";
  }

  /** Track the session's counters from every server message as it arrives. */
  private observe(m: ServerMessage): void {
    const s = this.status;
    if (m.type === "welcome" || m.type === "status") {
      Object.assign(s, { round: m.round, participants: m.participants, minParticipants: m.min_participants });
      if (m.type === "welcome") Object.assign(s, { joined: true, attempt: 0, reported: 0 });
      this.sessionState = m.state;
      if (m.type === "status") s.reported = m.reported;
    } else if (m.type === "ack") {
      Object.assign(s, { round: m.round, participants: m.participants, reported: m.reported });
    } else if (m.type === "result") {
      Object.assign(s, { round: m.round, reported: 0 });
      const { round, contributors, num_samples: numSamples, metrics, weights } = m;
      this.emit({ kind: "round", round, contributors, numSamples, metrics, weights });
      // the closed round is m.round - 1 on the wire: round m.round counted from 1
      this.log("info", `a round closed with ${m.contributors} contributor(s), ${m.num_samples} samples`);
    } else return;
    if (m.type === "status" && (s.state === "aggregating" || s.state === "waiting_for_participants")) {
      s.state = this.waitingState();
    }
    this.emit({ kind: "status", ...s });
  }

  // -- connection ----------------------------------------------------------------------------
  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  private async next(link: Link, timeoutMs: number): Promise<ServerMessage> {
    const message = await link.next(timeoutMs, this.signal);
    if (message.type === "error" && FATAL_ERRORS.has(message.code)) {
      const advice = message.code === "unsupported" ? ` (${FATAL_CLOSE[4426]})` : "";
      throw new ServerError(`server refused to join: ${message.message}${advice}`);
    }
    if (isDecentralizedMessage(message)) {
      // this client announced no capability: a server that keeps to the protocol never sends these
      throw new ServerError(
        `the server sent a '${message.type}' message of a decentralized session, which this page did not ask for ` +
          `and cannot take part in (${FATAL_CLOSE[4426]})`,
      );
    }
    return message;
  }

  /** The error to raise for a closed link, or null when reconnecting may help. */
  private fatalClose(exc: LinkClosed): ServerError | null {
    const why = FATAL_CLOSE[exc.code];
    return why === undefined ? null : new ServerError(`${why} (${exc.message})`);
  }

  /** Open one connection (giving up on opening at `deadline`) and say hello; resolve with the Welcome's model. */
  private async connectOnce(deadline: number): Promise<Model> {
    this.link?.close();
    const WebSocketImpl = this.options.WebSocketImpl ?? globalThis.WebSocket;
    if (WebSocketImpl === undefined) throw new SessionError("this environment has no WebSocket");
    const timeout = this.options.joinTimeoutMs ?? 30_000;
    const opening = Math.max(1, Math.min(timeout, deadline - Date.now()));
    const link = await Link.connect(this.url, WebSocketImpl, this.traffic, (m) => this.observe(m), opening, this.signal);
    this.link = link;
    const { taskId, name } = this.options;
    link.send({
      type: "hello",
      task_id: taskId,
      name: name ?? "",
      kind: "browser",
      participant_key: this.participantKey,
      capabilities: [...CLIENT_CAPABILITIES],
    });
    for (;;) {
      // the Welcome must come before the join deadline too (a server that accepts but never answers)
      const m = await this.next(link, Math.max(1, Math.min(timeout, deadline - Date.now())));
      if (m.type === "error") throw new ServerError(`server refused to join: [${m.code}] ${m.message}`);
      if (m.type !== "welcome") continue;
      if (m.weights === undefined) {
        // a decentralized session: its models travel between peers only, never through the server
        throw new ServerError(
          `the server's Welcome to task ${m.task_id} carries no model, as in a decentralized session; ` +
            `this page takes part in federated sessions only (${FATAL_CLOSE[4426]})`,
        );
      }
      this.clientId = m.client_id;
      if (this.options.reference) m.weights.checkLike(this.options.reference, "the server's global model");
      const who = `${m.participants} of ${m.min_participants} participants needed are connected`;
      const trained = `${m.round} round${m.round === 1 ? "" : "s"}`;
      this.log("info", `joined task ${m.task_id} as ${m.client_id}: the shared model has been trained for ${trained} (${who})`);
      return { round: m.round, weights: m.weights };
    }
  }

  /**
   * Connect and say hello, retrying with back-off: for `firstConnectTimeoutMs` when this client
   * never joined, for `reconnectTimeoutMs` after a lost connection; then `ServerUnreachable`.
   */
  private async join(): Promise<Model> {
    const joined = this.status.joined;
    const budget = joined
      ? (this.options.reconnectTimeoutMs ?? 60_000)
      : (this.options.firstConnectTimeoutMs ?? 15_000);
    const started = Date.now();
    const deadline = started + budget;
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      this.status.attempt = attempt;
      this.setState("connecting");
      try {
        return await this.connectOnce(deadline);
      } catch (exc) {
        if (exc instanceof LinkClosed) {
          const fatal = this.fatalClose(exc);
          if (fatal !== null) throw fatal;
        } else if (!(exc instanceof WaitTimeout)) throw exc;
        if (Date.now() + delay > deadline) {
          const seconds = Math.round((Date.now() - started) / 1000);
          throw new ServerUnreachable(
            `cannot reach the server at ${this.url}: ${attempt} attempt(s) in ${seconds} s failed (last: ${exc.message})`,
            attempt,
            joined,
            { cause: exc },
          );
        }
        this.log("warn", `attempt ${attempt} to reach ${this.url} failed (${exc.message}); trying again in ${(delay / 1000).toFixed(1)} s`);
        await sleep(delay, this.signal);
        delay = Math.min(2 * delay, 5_000);
      }
    }
  }

  private send(update: ModelUpdate): void {
    this.setState("sending_update");
    if (this.link?.send(update)) this.setState(this.waitingState());
  }

  /** Who the round waits for, in words, from the last status. */
  private missing(): string {
    const s = this.status;
    const more = (n: number): string => `${n} more participant${n === 1 ? "" : "s"}`;
    if (s.participants < s.minParticipants) {
      return `${more(s.minParticipants - s.participants)} needed (${s.participants} of ${s.minParticipants} connected)`;
    }
    if (s.reported < s.minParticipants) {
      return `${s.reported} of ${s.minParticipants} required updates in (${s.participants} connected)`;
    }
    return `${s.reported} updates in (${s.participants} connected); the round closes at its deadline`;
  }

  /**
   * Wait for the round after `pending.round`; reconnect and resend if the link drops. Throws
   * `expired()` (a `WaitExpired`) after `waitForOthersMs` without a new round.
   */
  private async waitResult(pending: ModelUpdate, mine: string, expired: () => WaitExpired): Promise<Model> {
    const deadline = Date.now() + (this.options.waitForOthersMs ?? 600_000);
    this.status.waitUntil = deadline;
    try {
      return await this.waitLoop(pending, mine, expired, deadline);
    } finally {
      this.status.waitUntil = null;
    }
  }

  private async waitLoop(pending: ModelUpdate, mine: string, expired: () => WaitExpired, deadline: number): Promise<Model> {
    const seconds = Math.round((deadline - Date.now()) / 1000);
    this.log("info", `${mine}: update sent; waiting for others: ${this.missing()}; stopping in ${seconds} s`);
    let nextLog = Date.now() + WAIT_LOG_MS;
    for (;;) {
      const now = Date.now();
      if (now >= deadline) {
        const newer = this.queuedResult(pending.round); // arrived just in time
        if (newer !== null) return newer;
        throw expired();
      }
      if (now >= nextLog) {
        this.log("info", `${mine}: waiting for others: ${this.missing()}; stopping in ${Math.round((deadline - now) / 1000)} s`);
        nextLog = now + WAIT_LOG_MS;
      }
      let m: ServerMessage;
      try {
        m = await this.next(this.link as Link, Math.min(deadline, nextLog) - now);
      } catch (exc) {
        if (exc instanceof WaitTimeout) continue;
        if (!(exc instanceof LinkClosed)) throw exc;
        const fatal = this.fatalClose(exc);
        if (fatal !== null) throw fatal;
        this.log("warn", `connection lost (${exc.message}); reconnecting`);
        const model = await this.join();
        if (model.round > pending.round) {
          this.log("info", `${mine}: the round closed meanwhile; continuing from the newer shared model`);
          return model;
        }
        pending = { ...pending, round: model.round };
        this.log("info", `${mine}: sending the update again`);
        this.send(pending);
        continue;
      }
      if (m.type === "result" && m.round > pending.round) return { round: m.round, weights: m.weights };
      if (m.type === "ack" && m.round === pending.round) {
        this.log("info", `${mine}: update accepted (${m.reported} of ${m.participants} reported)`);
        this.setState(this.waitingState());
      } else if (m.type === "error") {
        // stale: the round closed without it; duplicate: a copy resent after a reconnect
        if (m.code !== "stale" && m.code !== "duplicate") throw new UpdateRejected(`[${m.code}] ${m.message}`);
        this.log("info", `${mine}: ${m.message}`);
        this.setState(this.waitingState());
      }
    }
  }

  // -- the round loop ------------------------------------------------------------------------
  /** Train on `model`. */
  private async trainOnce(model: Model): Promise<TrainOutput> {
    const running = this.options.train(model.round, model.weights, this.signal);
    running.catch(() => undefined); // stop() may leave it unawaited
    return bounded(running, this.signal);
  }

  /** The update to send after training `model` into `out` (the one update pipeline). */
  private prepare(model: Model, out: TrainOutput, mine: string): ModelUpdate {
    const privacy = this.options.privacy ?? null;
    const prepared = prepareUpdate(model.weights, out.weights, out.numSamples, out.metrics, privacy, this.options.random);
    if (prepared.droppedMetrics.length > 0) {
      this.log("warn", `${mine}: metrics ${prepared.droppedMetrics.join(", ")} are not finite; they are not reported`);
    }
    if (privacy !== null) this.log("info", describePrivacy(prepared, privacy));
    const { weights, numSamples, metrics } = prepared;
    return { type: "update", round: model.round, num_samples: numSamples, weights, metrics };
  }

  /** The error to stop with when the wait expires: the last shared model if it has training behind it, else the model trained here (as in Python). */
  private expired(done: number, rounds: number, trained: Weights, model: Model): WaitExpired {
    const kept = model.round > 0 ? "global" : "local";
    const plural = (n: number): string => `${n} round${n === 1 ? "" : "s"}`;
    const which =
      kept === "global"
        ? `the last shared model (${plural(model.round)} of training)`
        : "the model trained on your data (nothing was combined yet)";
    const seconds = Math.round((this.options.waitForOthersMs ?? 600_000) / 1000);
    const message =
      `stopped waiting for the others after ${seconds} s: no round closed; ${this.missing()}. ` +
      `You completed ${done} of ${rounds} rounds with the others and keep ${which}.`;
    this.log("warn", message);
    return new WaitExpired(message, kept === "global" ? model.weights : trained, kept, done, model.round);
  }

  /** The newest RoundResult already received for a round after `round`, if any. */
  private queuedResult(round: number): Model | null {
    const taken = this.link?.take((m) => m.type === "result" && m.round > round) ?? [];
    const results = taken.filter((m): m is RoundResult => m.type === "result");
    const last = results.at(-1);
    return last === undefined ? null : { round: last.round, weights: last.weights };
  }

  /** Take part in `rounds` rounds, then leave; resolve with the last global model. */
  async run(rounds: number): Promise<FederatedResult> {
    if (this.started) throw new SessionError("this client already ran; create a new FederatedClient");
    this.started = true;
    if (!Number.isInteger(rounds) || rounds < 0) {
      throw new SessionError(`rounds must be a non-negative integer, got ${rounds}`);
    }
    try {
      if (this.signal.aborted) throw this.signal.reason;
      let model = await this.join();
      const plural = (n: number): string => `${n} round${n === 1 ? "" : "s"}`;
      for (let done = 0; done < rounds; done++) {
        const mine = `your round ${done + 1} of ${rounds}`;
        this.setState("training");
        this.log("info", `${mine}: training on the shared model (${plural(model.round)} so far)`);
        const out = await this.trainOnce(model);
        const newer = this.queuedResult(model.round);
        if (newer !== null) {
          this.log("warn", `${mine}: the round closed while you trained; your update is dropped and you continue from the newer shared model`);
          model = newer;
          continue;
        }
        const update = this.prepare(model, out, mine);
        this.send(update);
        this.emit({ kind: "sent", round: update.round, numSamples: update.num_samples });
        const from = model;
        model = await this.waitResult(update, mine, () => this.expired(done, rounds, out.weights, from));
        this.log("info", `${mine} done: the shared model has been trained for ${plural(model.round)}`);
      }
      this.link?.send({ type: "leave" });
      this.finished = true;
      this.setState("done");
      this.log("info", `done: ${rounds} round(s); left the session`);
      return { weights: model.weights, rounds, ...this.traffic };
    } catch (exc) {
      this.finished = true;
      const error = this.signal.aborted ? this.signal.reason : exc;
      if (!(error instanceof StoppedError)) {
        const text = error instanceof Error ? error.message : String(error);
        this.setState("error", text);
        if (!(error instanceof WaitExpired)) this.log("error", text); // (already said as a warning)
      }
      throw error;
    } finally {
      this.link?.close(1000, this.signal.aborted ? "stopped" : "done");
    }
  }

  /** Leave the session now: send Leave, close, and make `run()` reject with `StoppedError`. */
  stop(): void {
    if (this.finished || this.signal.aborted) return;
    if (this.clientId !== null) this.link?.send({ type: "leave" });
    this.link?.close(1000, "stopped");
    this.abort.abort(new StoppedError("stopped: left the session"));
    this.setState("stopped");
    this.log("info", "stopped; left the session");
  }

  /** Bytes sent and received so far (frames only). */
  get bytes(): Readonly<Traffic> {
    return { ...this.traffic };
  }
}
