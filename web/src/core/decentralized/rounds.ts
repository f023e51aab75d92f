/**
 * One round of a decentralized session, as a peer lives it (docs/protocol.md §18.6; Python's
 * `disco.decentralized.rounds.PeerRounds`): `PeerRounds` is the part of `PeerClient` (./peer.ts,
 * whose docstring walks through a round) that takes part in a planned round. It gets the round's
 * model (held, initial, or fetched from a peer), trains while the channels to its neighbours open,
 * sends its update after the barrier, combines what `Combine` lists (./combine.ts) and reports the
 * new model's digest. A round of a task with secure aggregation sends fresh keys with the plan and
 * follows §19.1 from the barrier on (./secure.ts): masked inputs instead of updates, every peer
 * unmasking the sum. A peer that cannot get the round's model, or that the barrier left out, sits
 * the round out (in a secure round it still holds the round's model as the next one's). `resync`
 * fetches the agreed model from the peer a `Resync` names. Every wait is bounded by the plan's
 * deadlines plus the slack; where each round's time went is a `RoundTiming` (rounds it combined).
 */

import { AggregationError } from "../aggregation/errors";
import type { TrainOutput } from "../client/options";
import { prepareAndLog } from "../client/update";
import { DiscoError, ServerError } from "../errors";
import type { Combine, Exchange, PeerUpdate, Resync, RoundPlan } from "../protocol";
import type { SecureParticipant } from "../secure";
import type { SecureAggregationConfig } from "../task";
import { bounded, sleep } from "../transport/wait";
import type { Weights } from "../weights";
import { combineRound } from "./combine";
import type { Connector } from "./connector";
import type { RoundTiming } from "./events";
import { digestOf } from "./exchange";
import { sortedIds } from "./notify";
import { keepsBecause, secureKeys, securePeerRound, type SecureHost } from "./secure";
import { PeerSession } from "./session";

/** A peer's rounds; `PeerClient` adds the run from round to round. */
export abstract class PeerRounds extends PeerSession {
  /** Take part in the planned round; 1 if this peer combined it, 0 if it sat it out. */
  protected async round(plan: RoundPlan, k: number, rounds: number): Promise<number> {
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
    // a secure round: fresh keys right after the plan, before any `ready` (§19.1): the roster
    // takes only the keys that came before the barrier passed
    const participant = this.secure ? await secureKeys(this.secureHost(), r) : null;
    const stopRound = new AbortController();
    const onAbort = (): void => stopRound.abort(this.signal.reason);
    this.signal.addEventListener("abort", onAbort);
    const stopConnecting = new AbortController(); // with the round, or at a secure round's go-ahead
    stopRound.signal.addEventListener("abort", () => stopConnecting.abort(), { once: true });
    const connecting = this.connectAll(plan, neighbours, timing, t0, stopConnecting.signal);
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
      const goAhead = (): boolean => failed || this.exchanges.has(r) || (participant !== null && this.secureBox(r).abort !== undefined);
      await this.until(goAhead, plan.connect_s * 1000 + this.slackMs, `the server's go-ahead for round ${r}`);
      if (participant !== null) {
        stopConnecting.abort(); // the barrier is passed: no more channels to open this round
        return await this.secureRound(plan, participant, base, training, timing, t0, mine);
      }
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
    this.forgetOrders(r);
  }

  // -- a secure round (docs/protocol.md §19.1) ---------------------------------------------------

  /**
   * The planned secure round from the go-ahead on (training runs): its phases (./secure.ts), then
   * the model it ends with; 1 if this peer unmasked the sum, 0 otherwise. Whatever the ending, it
   * holds a model for round r + 1 afterwards: the new one, or the round's own (`base`) — sat out,
   * left out by the barrier, aborted, unmasked by none — since the server may count it among the
   * holders of G_r, and the next plan then names no peer to fetch from; that plan's digest says
   * whether to use it (`roundModel`). Only an abort or a sum that could not be unmasked report its
   * digest; a timing is kept only for a round it combined.
   */
  private async secureRound(
    plan: RoundPlan,
    participant: SecureParticipant,
    base: Weights,
    training: Promise<TrainOutput>,
    timing: RoundTiming,
    t0: number,
    mine: string,
  ): Promise<number> {
    const r = plan.round;
    this.exchange.models.set(r + 1, base); // until the round gives a new one
    if (this.secureBox(r).abort === undefined) {
      const exchange = this.exchanges.get(r);
      if (exchange === undefined) await training; // no go-ahead: training failed, and its error ends the run
      if (this.clientId === null || !exchange?.peers.includes(this.clientId)) {
        this.log("warn", `round ${r}: left out (channels to the peers did not open in time); waiting for the next round`);
        await training; // never cut short
        this.forget(r);
        return 0;
      }
    }
    const outcome = await securePeerRound(this.secureHost(), plan, participant, base, training, timing, mine);
    await training; // never cut short: the round ends with it
    if (outcome.kind === "combined") {
      const { weights, contributors } = outcome;
      this.weights = weights;
      this.sharedRound = r + 1;
      this.exchange.models.set(r + 1, weights);
      const digest = await digestOf(weights);
      this.send({ type: "digest", round: r, digest });
      Object.assign(timing, { totalMs: Date.now() - t0, contributors, digest });
      this.timings.push(timing);
      this.forget(r);
      const seconds = (timing.totalMs / 1000).toFixed(1);
      this.log("info", `${mine} done: unmasked the sum of ${contributors} masked update${contributors === 1 ? "" : "s"} in ${seconds} s (model ${digest.slice(0, 12)}…)`);
      this.emit({ kind: "round", round: r + 1, contributors, weights, digest, timing });
      return 1;
    }
    const why = keepsBecause(outcome);
    if (why !== null) {
      // it keeps the round's model, which opens the next round (held above), and says it holds it
      this.log("warn", `${mine}: ${why}; the next round starts from the round's model`);
      this.weights = base;
      this.send({ type: "digest", round: r, digest: await digestOf(base) });
    }
    this.forget(r);
    return 0;
  }

  /** What a secure round needs of this peer (./secure.ts). */
  private secureHost(): SecureHost {
    return {
      taskId: this.options.taskId,
      me: this.clientId as string,
      settings: this.options.secureAggregation as SecureAggregationConfig,
      privacy: this.options.privacy ?? null,
      random: this.options.random,
      slackMs: this.slackMs,
      exchange: this.exchange,
      signal: this.signal,
      box: (round) => this.secureBox(round),
      send: (message) => void this.send(message),
      until: (done, timeoutMs, what) => this.until(done, timeoutMs, what),
      channel: (peer) => this.connector?.channel(peer) ?? null,
      log: (level, message) => this.log(level, message),
      sent: (round, weight) => this.emit({ kind: "sent", round, numSamples: weight }),
      state: (state) => this.setState(state),
    };
  }

  /** Fetch the agreed model of `order.round` from `order.peer`. */
  protected async resync(order: Resync): Promise<void> {
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
