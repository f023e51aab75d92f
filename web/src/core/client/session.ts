/**
 * A federated participant's side of the session with the server (the groundwork of
 * `FederatedClient`, ./federated.ts): what it holds and counts, what it tells the display, the
 * server's messages as they arrive, and joining: one connection with `Hello`/`Welcome`, retried
 * with back-off — for `firstConnectTimeoutMs` when the server never answered, for
 * `reconnectTimeoutMs` after a lost connection — then `ServerUnreachable`. Every `Hello` carries
 * the same `participant_key`, so the server knows a reconnecting participant as the one it was,
 * announces `secure_aggregation` for a task that uses it (docs/protocol.md §16, §19) and presents
 * the `invitation` of a private instance's task when the options hold one.
 */

import { ServerError } from "../errors";
import { isDecentralizedMessage, isSecureMessage, type ModelUpdate, type ServerMessage, type SessionState } from "../protocol";
import type { Weights } from "../weights";
import { Link, LinkClosed, sleep, WaitTimeout, type Traffic } from "./link";
import { checkWaitForOthers, deliver, type ClientEvent, type ClientState, type FederatedClientOptions, type LogEvent, type StatusEvent } from "./options";
import {
  FATAL_CLOSE,
  fatalClose,
  hello,
  LIMITED_CLOSE,
  newParticipantKey,
  refusal,
  refusalAdvice,
  ServerUnreachable,
  webSocketClass,
  wsUrl,
} from "./server";

/** The capability of secure aggregation (docs/protocol.md §19). */
export const SECURE_CAPABILITY = "secure_aggregation";

/**
 * The optional parts of the protocol this client announces in `Hello.capabilities`:
 * `secure_aggregation` for a task that uses it, none otherwise (a decentralized task is joined by
 * `PeerClient`, core/decentralized/peer.ts, which announces `["decentralized"]`).
 */
export function clientCapabilities(options: Pick<FederatedClientOptions, "secureAggregation">): string[] {
  return options.secureAggregation ? [SECURE_CAPABILITY] : [];
}

/** Error codes the server closes the connection after (4400, 4404, 4426, 4403): reconnecting cannot help. */
const FATAL_ERRORS: ReadonlySet<string> = new Set(["version", "unknown_task", "unsupported", "forbidden"]);

/** A global model and the server round it opens. */
export interface Model {
  round: number;
  weights: Weights;
}

/** What a federated participant holds and how it talks with the server; `FederatedClient` adds the run and its rounds. */
export abstract class FederatedSession {
  /** This participant's identity in the session (from the last Welcome). */
  clientId: string | null = null;
  /** The secret sent in every Hello, made once per client: reconnecting with it keeps the identity. */
  private readonly participantKey = newParticipantKey();
  private readonly url: string;
  protected readonly abort = new AbortController();
  protected readonly traffic: Traffic = { bytesUp: 0, bytesDown: 0 };
  protected readonly status: Omit<StatusEvent, "kind" | "message"> = {
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
  protected link: Link | null = null;
  /** Whether the last Welcome agreed on secure aggregation (its rounds are secure rounds, ./secure.ts). */
  protected secure = false;
  protected started = false;
  protected finished = false;
  /**
   * Restart notices seen (`ErrorMessage` "restarting", close code 1012; one restart may count
   * twice): a secure round's state did not survive them (./secure.ts).
   */
  protected restarts = 0;

  constructor(protected readonly options: FederatedClientOptions) {
    this.url = wsUrl(options.serverUrl);
    checkWaitForOthers(options.waitForOthersMs);
  }

  // -- events ------------------------------------------------------------------------------
  protected emit(event: ClientEvent): void {
    deliver(this.options, event);
  }

  protected log(level: LogEvent["level"], message: string): void {
    this.emit({ kind: "log", level, message });
  }

  protected setState(state: ClientState, message?: string): void {
    this.status.state = state;
    this.emit({ kind: "status", ...this.status, ...(message === undefined ? {} : { message }) });
  }

  /** After this client's update: waiting for enough participants, or for the round to close. */
  protected waitingState(): ClientState {
    return this.sessionState === "waiting_for_participants" ? "waiting_for_participants" : "aggregating";
  }

  /** Track the session's counters from every server message as it arrives. */
  private observe(m: ServerMessage): void {
    const s = this.status;
    if (m.type === "error" && m.code === "restarting") this.restarts++;
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
    } else if (m.type === "secure_abort") {
      // nothing was combined: round m.round + 1 opens with the same model
      Object.assign(s, { round: m.round + 1, reported: 0 });
      this.emit({ kind: "aborted", round: m.round, reason: m.reason });
    } else return;
    if (m.type === "status" && (s.state === "aggregating" || s.state === "waiting_for_participants")) {
      s.state = this.waitingState();
    }
    this.emit({ kind: "status", ...s });
  }

  // -- connection ----------------------------------------------------------------------------
  protected get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * The next server message on `link` (the wait also ends when `signal` aborts: by default when
   * the client stops); a refusal (an error whose code is in `fatal`), a decentralized session's
   * message, or one of secure aggregation that the Welcome did not agree on ends the session.
   */
  protected async next(
    link: Link,
    timeoutMs: number,
    signal: AbortSignal = this.signal,
    fatal: ReadonlySet<string> = FATAL_ERRORS,
  ): Promise<ServerMessage> {
    const message = await link.next(timeoutMs, signal);
    if (message.type === "error" && fatal.has(message.code)) {
      if (message.code === "forbidden") throw refusal(message);
      throw new ServerError(`server refused to join: ${message.message}${refusalAdvice(message.code)}`);
    }
    if (isDecentralizedMessage(message)) {
      // this client announced no capability: a server that keeps to the protocol never sends these
      throw new ServerError(
        `the server sent a '${message.type}' message of a decentralized session, which this page did not ask for ` +
          `and cannot take part in (${FATAL_CLOSE[4426]})`,
      );
    }
    if (isSecureMessage(message) && !this.secure) {
      throw new ServerError(
        `the server sent a '${message.type}' message of secure aggregation, which it did not agree on when this page joined`,
      );
    }
    return message;
  }

  /** Open one connection (giving up on opening at `deadline`) and say hello; resolve with the Welcome's model. */
  private async connectOnce(deadline: number): Promise<Model> {
    this.link?.close();
    const WebSocketImpl = webSocketClass(this.options.WebSocketImpl);
    const timeout = this.options.joinTimeoutMs ?? 30_000;
    const opening = Math.max(1, Math.min(timeout, deadline - Date.now()));
    const link = await Link.connect(this.url, WebSocketImpl, this.traffic, (m) => this.observe(m), opening, this.signal);
    this.link = link;
    link.send(hello(this.options, this.participantKey, clientCapabilities(this.options)));
    for (;;) {
      // the Welcome must come before the join deadline too (a server that accepts but never answers)
      const m = await this.next(link, Math.max(1, Math.min(timeout, deadline - Date.now())));
      if (m.type === "error") {
        // a limit of the server (e.g. participants of the task): it closes with 4429, and trying
        // again later may succeed, as after that close
        if (m.code === "limited") throw new LinkClosed(LIMITED_CLOSE, m.message);
        // a server shutting down says so, then closes with 1012: try again, as after a drop
        if (m.code === "restarting") throw new LinkClosed(1012, m.message);
        throw refusal(m);
      }
      if (m.type !== "welcome") continue;
      if (m.weights === undefined) {
        // a decentralized session: its models travel between peers only, never through the server
        throw new ServerError(
          `the server's Welcome to task ${m.task_id} carries no model, as in a decentralized session; ` +
            `this page takes part in federated sessions only (${FATAL_CLOSE[4426]})`,
        );
      }
      // agreed only if announced (a Welcome lists a subset of the Hello's capabilities)
      this.secure = Boolean(this.options.secureAggregation) && m.capabilities.includes(SECURE_CAPABILITY);
      if (this.options.secureAggregation && !this.secure) {
        // never send the update in the clear to a session that should see only the sum
        throw new ServerError(
          `the server runs task ${m.task_id} without secure aggregation, though its settings here ask for it; ` +
            "nothing was sent: reload the page to see the task as it is now",
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
  protected async join(): Promise<Model> {
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
          const fatal = fatalClose(exc);
          if (fatal !== null) throw fatal;
          if (exc.code === 1012) this.restarts++;
          // a server at its limit is asked again no sooner than in 2 s
          if (exc.code === LIMITED_CLOSE) delay = Math.max(delay, 2_000);
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

  /** Send `update` (again, after a reconnect); then wait as the session stands. */
  protected send(update: ModelUpdate): void {
    this.setState("sending_update");
    if (this.link?.send(update)) this.setState(this.waitingState());
  }

  /** Bytes sent and received so far (frames only). */
  get bytes(): Readonly<Traffic> {
    return { ...this.traffic };
  }
}
