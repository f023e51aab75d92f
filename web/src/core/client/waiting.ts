/**
 * Waiting for a round to close after this client's update, and when to stop waiting. The wait
 * is bounded by `waitForOthersMs` (the task's `wait_for_others_s`); every `WAIT_LOG_MS` it says
 * how many participants are missing; a dropped connection is rejoined, and the pending update is
 * sent again if the server is still in its round, or the newer global model adopted otherwise.
 * When the wait expires the client stops with `WaitExpired`, which carries the model it keeps
 * (a decentralized peer stops with it too, ../decentralized/peer.ts).
 */

import { SessionError, UpdateRejected } from "../errors";
import type { ModelUpdate, RoundResult, ServerMessage } from "../protocol";
import type { Weights } from "../weights";
import { LinkClosed, WaitTimeout, type Link } from "./link";
import { fatalClose } from "./server";
import { FederatedSession, type Model } from "./session";

/** While waiting for others, a log line this often. */
export const WAIT_LOG_MS = 30_000;

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

/** A federated session that waits for its rounds to close; `FederatedClient` adds the run. */
export abstract class WaitingSession extends FederatedSession {
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
  protected async waitResult(pending: ModelUpdate, mine: string, expired: () => WaitExpired): Promise<Model> {
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
        const fatal = fatalClose(exc);
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
        // stale: the round closed without it; duplicate: a copy resent after a reconnect;
        // restarting: the server closes next (1012), and the update is sent again once back
        const benign = m.code === "stale" || m.code === "duplicate" || m.code === "restarting";
        if (!benign) throw new UpdateRejected(`[${m.code}] ${m.message}`);
        this.log("info", `${mine}: ${m.message}`);
        this.setState(this.waitingState());
      }
    }
  }

  /**
   * The error to stop with when the wait expires: the last shared model (`model`: the Welcome's or
   * a round's result; an aborted secure round leaves it as it was) if it has training behind it,
   * else the model trained here (as in Python).
   */
  protected expired(done: number, rounds: number, trained: Weights, model: Model): WaitExpired {
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
  protected queuedResult(round: number): Model | null {
    const taken = this.link?.take((m) => m.type === "result" && m.round > round) ?? [];
    const results = taken.filter((m): m is RoundResult => m.type === "result");
    const last = results.at(-1);
    return last === undefined ? null : { round: last.round, weights: last.weights };
  }
}
