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
 * With the task's secure aggregation (`secureAggregation`; it needs WebCrypto) the peer joins
 * with capability `secure_aggregation` and its rounds follow docs/protocol.md §19.1 from step 3
 * on: keys with the plan, shares, masked inputs to every other peer, reveals, and every peer
 * unmasking the sum (./secure.ts).
 *
 * A `Resync` makes it fetch the agreed model from the named peer. A peer sits a round out when it
 * cannot get the round's model, or when the barrier left it out. Every wait is bounded: by the
 * plan's deadlines plus `SLACK_MS`, or between rounds by the task's `wait_for_others_s` — never
 * less than a whole round of the others when the task's round deadline is given (`roundBoundMs`).
 * What is sent after training comes from the one update pipeline (`../client/update.ts`), as in a
 * federated session.
 *
 * Here: the run from round to round. A round is `PeerRounds`' (`./rounds.ts`, a secure one
 * `./secure.ts`); what the peer holds, its server messages, waits and joining are `PeerSession`'s
 * (`./session.ts`); the combining arithmetic is `./combine.ts`; the options and events are
 * `./options.ts` and `./events.ts`.
 */

import { checkWebCrypto } from "../client/secure";
import { WaitExpired } from "../client/waiting";
import { SessionError, StoppedError } from "../errors";
import type { Resync, RoundPlan } from "../protocol";
import { WaitTimeout } from "../transport/wait";
import type { Weights } from "../weights";
import { RtcConnector } from "./connector";
import { roundBoundMs, type ConnectorFactory, type PeerResult } from "./options";
import { PeerRounds } from "./rounds";
import { peerRefusal } from "./rules";

export { PEER_RULES, peerRefusal } from "./rules";
export { combineRound, largestChange } from "./combine";
export type {
  PeerClientEvent,
  PeerModelEvent,
  PeerRoundEvent,
  PeerState,
  PeerStatusEvent,
  PeersEvent,
  PeerView,
  RoundTiming,
} from "./events";
export {
  PEER_CAPABILITIES,
  SLACK_MS,
  peerCapabilities,
  roundBoundMs,
  type ConnectorFactory,
  type InitialModelFn,
  type PeerClientOptions,
  type PeerResult,
  type PeerTrainFn,
} from "./options";

/** Joins a decentralized task on a disco server and trains with its peers. */
export class PeerClient extends PeerRounds {
  // -- the run ---------------------------------------------------------------------------------

  /** Take part in `rounds` rounds, then leave; resolve with the model this peer holds. */
  async run(rounds: number): Promise<PeerResult> {
    if (this.started) throw new SessionError("this client already ran; create a new PeerClient");
    this.started = true;
    if (!Number.isInteger(rounds) || rounds < 0) throw new SessionError(`rounds must be a non-negative integer, got ${rounds}`);
    try {
      const refusal = peerRefusal(this.options.aggregation);
      if (refusal !== null) throw new SessionError(refusal); // before joining: nothing is sent
      if (this.secure) checkWebCrypto();
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

  /**
   * The next plan or resync order, waiting at most the task's `wait_for_others_s` — never less
   * than a whole round of the others (`roundBoundMs`) when the task's round deadline is given.
   */
  private async nextControl(): Promise<RoundPlan | Resync> {
    const deadline = this.options.roundDeadlineMs;
    const bound = deadline === undefined ? 0 : roundBoundMs(deadline, this.secure, this.slackMs);
    const waitMs = Math.max(this.options.waitForOthersMs ?? 600_000, bound);
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
}
