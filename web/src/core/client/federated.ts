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
 * task's privacy, metrics), as in Python. In a task with secure aggregation (the option
 * `secureAggregation`) the client announces capability `secure_aggregation` and sends no update:
 * each round is a secure round (`./secure.ts`, docs/protocol.md §19) whose masked input carries
 * the pipeline's update, and the server learns only the round's sum.
 *
 * Numbering: "your round k of N" counts this client's rounds from 1; the server's round r
 * (0-based on the wire) is how many rounds the shared model has been trained for.
 *
 * Here: the run and its rounds. What the client holds, its server messages and joining are
 * `FederatedSession`'s (`./session.ts`); waiting for a round to close and `WaitExpired` are
 * `./waiting.ts`; reaching the server (`wsUrl`, `FATAL_CLOSE`, `ServerUnreachable`) is
 * `./server.ts`; a round under secure aggregation is `./secure.ts`; the options, events and
 * result are `./options.ts`.
 */

import { SessionError, StoppedError } from "../errors";
import type { ModelUpdate } from "../protocol";
import { stopped } from "../transport/wait";
import type { Weights } from "../weights";
import { bounded } from "./link";
import type { FederatedResult, TrainOutput } from "./options";
import { checkWebCrypto, SecureSession } from "./secure";
import type { Model } from "./session";
import { prepareAndLog } from "./update";
import { WaitExpired } from "./waiting";

export type {
  AbortedEvent,
  ClientEvent,
  ClientState,
  FederatedClientOptions,
  FederatedResult,
  LogEvent,
  RoundEvent,
  SentEvent,
  StatusEvent,
  TrainFn,
  TrainOutput,
} from "./options";
export { FATAL_CLOSE, newParticipantKey, ServerUnreachable, wsUrl } from "./server";
export { clientCapabilities, SECURE_CAPABILITY } from "./session";
export { WAIT_LOG_MS, WaitExpired } from "./waiting";

/** Joins a task on a disco server and trains with the others, round after round. */
export class FederatedClient extends SecureSession {
  /** Train on `model`; `signal` (by default the client's stop) ends the wait for it, and is handed to the training. */
  private async trainOnce(model: Model, signal: AbortSignal = this.signal): Promise<TrainOutput> {
    if (signal.aborted) throw stopped(signal); // stopped before training began: train nothing
    const running = this.options.train(model.round, model.weights, signal);
    running.catch(() => undefined); // stop() may leave it unawaited
    return bounded(running, signal);
  }

  /** The update to send after training `model` into `out` (the one update pipeline). */
  private prepare(model: Model, out: TrainOutput, mine: string): ModelUpdate {
    const privacy = this.options.privacy ?? null;
    const prepared = prepareAndLog(model.weights, out, privacy, this.options.random, mine, (level, message) => this.log(level, message));
    const { weights, numSamples, metrics } = prepared;
    return { type: "update", round: model.round, num_samples: numSamples, weights, metrics };
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
      if (this.options.secureAggregation) checkWebCrypto();
      let model = await this.join();
      // the last shared model: the Welcome's, then each round's result; an aborted secure round
      // combined nothing and leaves it as it was (what a participant keeps when it stops waiting)
      let shared = model;
      const plural = (n: number): string => `${n} round${n === 1 ? "" : "s"}`;
      for (let done = 0; done < rounds; done++) {
        if (this.signal.aborted) throw stopped(this.signal);
        const mine = `your round ${done + 1} of ${rounds}`;
        this.setState("training");
        this.log("info", `${mine}: training on the shared model (${plural(model.round)} so far)`);
        if (this.secure) {
          const from = model;
          const last = shared;
          const expired = (trained: Weights): WaitExpired => this.expired(done, rounds, trained, last);
          const end = await this.secureRound(from, mine, (signal) => this.trainOnce(from, signal), expired);
          model = end.model;
          if (end.combined) shared = model;
          this.log("info", `${mine} done: the shared model has been trained for ${plural(model.round)}`);
          continue;
        }
        const out = await this.trainOnce(model);
        const newer = this.queuedResult(model.round);
        if (newer !== null) {
          this.log("warn", `${mine}: the round closed while you trained; your update is dropped and you continue from the newer shared model`);
          model = newer;
          shared = model;
          continue;
        }
        const update = this.prepare(model, out, mine);
        this.send(update);
        this.emit({ kind: "sent", round: update.round, numSamples: update.num_samples });
        const last = shared;
        model = await this.waitResult(update, mine, () => this.expired(done, rounds, out.weights, last));
        shared = model;
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
}
