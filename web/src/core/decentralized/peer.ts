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
 *
 * Here: the run and its rounds. What the peer holds, its server messages, waits and joining are
 * `PeerSession`'s (`./session.ts`); the combining arithmetic is `./combine.ts`; the options and
 * events are `./options.ts` and `./events.ts`.
 */

import { AggregationError } from "../aggregation/errors";
import { DiscoError, ServerError, SessionError, StoppedError } from "../errors";
import type { Combine, Exchange, PeerUpdate, Resync, RoundPlan } from "../protocol";
import { bounded, sleep, WaitTimeout } from "../transport/wait";
import type { Weights } from "../weights";
import type { TrainOutput } from "../client/options";
import { prepareAndLog } from "../client/update";
import { WaitExpired } from "../client/waiting";
import { combineRound } from "./combine";
import { RtcConnector, type Connector } from "./connector";
import type { RoundTiming } from "./events";
import { digestOf } from "./exchange";
import { sortedIds } from "./notify";
import type { ConnectorFactory, PeerResult } from "./options";
import { peerRefusal } from "./rules";
import { PeerSession } from "./session";

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
  type ConnectorFactory,
  type InitialModelFn,
  type PeerClientOptions,
  type PeerResult,
  type PeerTrainFn,
} from "./options";

/** Joins a decentralized task on a disco server and trains with its peers. */
export class PeerClient extends PeerSession {
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
    const prepared = prepareAndLog(base, out, privacy, this.options.random, mine, (level, message) => this.log(level, message));
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
