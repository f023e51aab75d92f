/**
 * A federated participant's round under secure aggregation (docs/protocol.md §19), as Python's
 * `disco.client.secure.secure_round`: the round's four phases (docs/secure_aggregation.md §10) as
 * the participant lives them, on the same connection and with the same update pipeline as a plain
 * round (`./update.ts`). It never sends `update`.
 *
 * 1. as round r opens, fresh keys go to the server (`SecureKeys`) and training starts;
 * 2. the roster (`SecureSetup`) is answered at once with this participant's shares, even while it
 *    trains (`SecureShares`);
 * 3. with the envelopes addressed to it (`SecureInbox`) and its training done, the update goes
 *    through the pipeline (checks, privacy), its change from the round's model (flat float32, in
 *    the model's tensor order) is quantised with the weight min(sample count, weight cap) and the
 *    roster's clip and scale, and sent masked (`SecureInput`, words little-endian);
 * 4. asked to unmask (`SecureUnmask`), it reveals its shares (`SecureReveal`) and waits for the
 *    `RoundResult`, as any federated participant.
 *
 * It sits a round out — saying why, and waiting for the next `RoundResult` or `SecureAbort` — when
 * the server refuses one of its messages (`ErrorMessage` of the round: "stale" for keys once the
 * roster is fixed, "unexpected", or "unsupported", which only a refusal to join makes fatal), or
 * when the engine refuses what it was sent (`SecureAggregationError`: a roster it must not accept,
 * an envelope that does not open, a split that could expose an update; it reveals nothing more).
 * Reconnecting to the same server before the roster is fixed, it sends fresh keys; after, it keeps
 * its part in the round: the server sends again the phase's message it has not answered
 * (`SecureSetup`, its `SecureInbox` or `SecureUnmask`) and it answers with what it sent before
 * (the same shares, the same masked input, the reveal for the same split). A server that
 * restarted (it said so: `ErrorMessage` "restarting", or close code 1012) kept only the round and
 * its model: the member drops the round's roster and everything it sent in it, and starts the
 * round's phases afresh with new keys and a new participant, so nothing of the abandoned roster is
 * ever answered again; the update, already through the pipeline (privacy noise drawn once, one
 * `sent` event), is masked anew. Only if the member had been asked to unmask under the abandoned
 * roster — the server may then have read a sum with its update in it — it takes part in the new
 * roster without sending that update again (a second sum over other members would give it away),
 * and the round goes on without it. An aborted round (`SecureAbort` r) opens
 * round r + 1 with the same model, and does not count as training of the shared model. A round
 * that ends while it trains is taken once its training is done: training is never cut short. Its
 * wait for the others is bounded by `waitForOthersMs` from the end of its training, and again
 * from its masked input, as a plain update's. Each round has its own abort signal, aborted when the
 * client stops and when the round ends (a fatal error ends its training too); after a stop nothing
 * more happens: no message, no event, no reconnect.
 */

import { SessionError } from "../errors";
import type { RandomSource } from "../privacy";
import type { SecureInput, SecureSetup, SecureShares, ServerMessage } from "../protocol";
import { clampWeight, quantize, SecureAggregationError, SecureParticipant, type RoundSetup } from "../secure";
import type { PrivacyConfig } from "../task";
import { stopped } from "../transport/wait";
import { LITTLE_ENDIAN, type Weights } from "../weights";
import { LinkClosed, WaitTimeout, type Link } from "./link";
import type { TrainOutput } from "./options";
import { fatalClose } from "./server";
import type { Model } from "./session";
import { prepareAndLog, type PreparedUpdate } from "./update";
import { WaitingSession, type WaitExpired } from "./waiting";

/**
 * Throws a `SessionError` unless this page has WebCrypto (`crypto.subtle`), which secure
 * aggregation needs for its keys, shares and masks: browsers offer it only to pages served over
 * https:// or from localhost.
 */
export function checkWebCrypto(): void {
  if (globalThis.crypto?.subtle === undefined) {
    throw new SessionError(
      "this task uses secure aggregation, which needs the browser's cryptography (WebCrypto): browsers offer it " +
        "only to pages served over https:// or from localhost; open the server's https:// address",
    );
  }
}

/** A roster as the round engine takes it, from the server's `SecureSetup` for task `taskId`. */
export function roundSetupOf(taskId: string, message: SecureSetup): RoundSetup {
  return {
    taskId,
    round: message.round,
    members: message.members.map((m) => ({ id: m.id, position: m.position, cPublic: m.c_public, sPublic: m.s_public })),
    threshold: message.threshold,
    clip: message.clip,
    weightCap: message.weight_cap,
    bits: message.bits,
    length: message.length,
  };
}

/**
 * `trained` − `received`, flat float32 in the model's tensor order (as Python's `_change`),
 * written straight into one new vector (no per-tensor differences, no second copy).
 */
export function changeOf(received: Weights, trained: Weights): Float32Array {
  trained.checkLike(received, "trained weights");
  const out = new Float32Array(received.size);
  let offset = 0;
  received.values.forEach((before, i) => {
    const after = trained.values[i] as Float32Array;
    for (let k = 0; k < before.length; k++) out[offset + k] = (after[k] as number) - (before[k] as number);
    offset += before.length;
  });
  return out;
}

/**
 * `words` as bytes, little-endian (the wire order of a masked input): on a little-endian machine a
 * view of the same memory (no copy), else a new array.
 */
export function wordBytes(words: Uint32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const bytes = new Uint8Array(4 * words.length);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(4 * i, words[i] as number, true);
  return bytes;
}

/**
 * Error codes that end the run when they come during a secure round, as Python's `_next`: a
 * refusal to join. "unsupported" is fatal only before the Welcome (the server closes with 4426);
 * during the round it is a refusal of one message, and the participant sits the round out.
 */
const FATAL_IN_ROUND: ReadonlySet<string> = new Set(["version", "unknown_task", "forbidden"]);

/** What a wait for the next message ended with while this participant trains: its training settled. */
class Trained extends Error {
  override name = "Trained";
}

/** The training of one round, started once: whether it ended, and how. */
class Training {
  private output: TrainOutput | null = null;
  private failure: { error: unknown } | null = null;
  /** Aborted (reason `Trained`) once training settles, or (its reason) once the round's signal aborts. */
  private readonly woken = new AbortController();
  private readonly settled: Promise<void>;
  private readonly unlisten: () => void;

  constructor(running: Promise<TrainOutput>, stop: AbortSignal) {
    this.settled = running.then(
      (out) => void (this.output = out),
      (error: unknown) => void (this.failure = { error }),
    );
    void this.settled.then(() => this.woken.abort(new Trained("training settled")));
    const onStop = (): void => this.woken.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    this.unlisten = () => stop.removeEventListener("abort", onStop);
  }

  /** Aborts when training settles or the round's signal aborts: waits while it trains end with it. */
  get signal(): AbortSignal {
    return this.woken.signal;
  }

  /** The trained model once training succeeded; null while it runs; its error if it failed. */
  get done(): TrainOutput | null {
    if (this.failure !== null) throw this.failure.error;
    return this.output;
  }

  /** Wait for training to end (it is bounded by the round's signal, as every training). */
  async result(): Promise<TrainOutput> {
    await this.settled;
    return this.done as TrainOutput;
  }

  /** Stop listening for the round's signal. */
  close(): void {
    this.unlisten();
  }
}

/** The model the next round opens with, and whether this round combined anything (false after an abort). */
export interface SecureRoundEnd {
  model: Model;
  combined: boolean;
}

/** A federated session whose rounds may be secure ones; `FederatedClient` adds the run. */
export abstract class SecureSession extends WaitingSession {
  /**
   * Take part in server round `model.round` (from `model.weights`) with secure aggregation:
   * `train(signal)` trains this round's model (`signal` aborts when the client stops or the round
   * ends), `expired(trained)` is the error to stop with when the wait for others runs out. Resolves
   * with the model the next round opens with: the round's result (combined), or after an abort
   * the same model, one round later (not combined).
   */
  protected async secureRound(
    model: Model,
    mine: string,
    train: (signal: AbortSignal) => Promise<TrainOutput>,
    expired: (trained: Weights) => WaitExpired,
  ): Promise<SecureRoundEnd> {
    const r = model.round;
    const settings = this.options.secureAggregation;
    const me = this.clientId;
    if (!settings || me === null) throw new SessionError("a secure round needs the task's settings and this participant's id");
    const waitMs = this.options.waitForOthersMs ?? 600_000;
    // the round's own signal: aborted when the client stops, and when the round ends (as Python
    // cancels its training task), so that an error ends the round's training too
    const round = new AbortController();
    const signal = round.signal;
    const onStop = (): void => round.abort(this.signal.reason);
    if (this.signal.aborted) throw stopped(this.signal);
    this.signal.addEventListener("abort", onStop, { once: true });
    /** After every wait: once stopped, nothing more happens in this round. */
    const live = (): void => {
      if (signal.aborted) throw stopped(signal);
    };
    let training: Training | null = null;
    try {
      const fresh = async (): Promise<SecureParticipant> => {
        const participant = await SecureParticipant.create(this.options.taskId, r, me, { threshold: settings.threshold });
        live(); // stopped while the keys were made: send nothing, train nothing
        const { cPublic, sPublic } = participant.keys();
        this.link?.send({ type: "secure_keys", round: r, c_public: cPublic, s_public: sPublic });
        return participant;
      };
      let participant = await fresh();
      const started = new Training(train(signal), signal);
      training = started;
      let setup: RoundSetup | null = null;
      // kept to answer again what the server sends again after a reconnect
      let sentShares: SecureShares | null = null;
      let sentInput: SecureInput | null = null;
      let takingPart = true;
      // the update through the pipeline, made once a round: after a restart it is masked anew
      let prepared: PreparedUpdate | null = null;
      let restarts = this.restarts; // restart notices seen when the link was last (re)opened
      let summed = false; // asked to unmask a sum with this update in it (the server may have read it)
      const sitOut = (why: string): void => {
        if (takingPart) this.log("warn", `${mine}: ${why}; this round goes on without you, you take part from the next one`);
        takingPart = false;
      };
      // the wait for the others ends here: no limit while training (it is never cut short), then
      // waitForOthersMs from its end, and again from the masked input, as a plain update's
      let deadline: number | null = null;
      /** The next round's model, once this round's training is done (it trains on this round's model either way). */
      const opens = async (next: Model, combined: boolean): Promise<SecureRoundEnd> => {
        await started.result();
        live();
        return { model: next, combined };
      };
      for (;;) {
        live();
        const trained = started.done; // (a training that failed throws here)
        if (trained !== null && deadline === null) {
          deadline = Date.now() + waitMs; // trained: the wait for the others starts
          this.status.waitUntil = deadline;
          this.setState(this.waitingState());
        }
        let m: ServerMessage;
        try {
          // while training, no time limit: the wait ends when training does
          m =
            trained === null || deadline === null
              ? await this.next(this.link as Link, Infinity, started.signal, FATAL_IN_ROUND)
              : await this.next(this.link as Link, deadline - Date.now(), signal, FATAL_IN_ROUND);
        } catch (exc) {
          live();
          if (exc instanceof Trained) continue;
          if (exc instanceof WaitTimeout) {
            if (trained === null) continue; // (no limit while training)
            throw expired(trained.weights);
          }
          if (!(exc instanceof LinkClosed)) throw exc;
          const fatal = fatalClose(exc);
          if (fatal !== null) throw fatal;
          this.log("warn", `connection lost (${exc.message}); reconnecting`);
          const joined = await this.join();
          live();
          const restarted = exc.code === 1012 || this.restarts !== restarts;
          restarts = this.restarts;
          if (joined.round > r) {
            this.log("info", `${mine}: the round closed meanwhile; continuing from the newer shared model`);
            return await opens(joined, true);
          }
          if (restarted && setup !== null) {
            this.log("warn", `${mine}: the server restarted and lost the secure round; it starts again with fresh keys`);
          }
          if (restarted) {
            // nothing of the abandoned roster is answered again
            [setup, sentShares, sentInput, takingPart] = [null, null, null, true];
          }
          // before the roster is fixed, or once it was lost: fresh keys; after, the same server
          // sends again the phase's message this member has not answered, and it answers with
          // what it sent before
          if (setup === null) participant = await fresh();
          this.setState(started.done === null ? "training" : this.waitingState());
          continue;
        }
        if (m.type === "error" && m.code === "restarting") {
          this.log("info", `${mine}: ${m.message}`); // the link closes next (1012): reconnect, then start afresh
          continue;
        }
        if (m.type === "result" && m.round > r) return await opens({ round: m.round, weights: m.weights }, true);
        if (m.type === "secure_abort" && m.round === r) {
          this.log("warn", `${mine}: the round was aborted (${m.reason}); the next one starts from the same shared model`);
          return await opens({ round: r + 1, weights: model.weights }, false);
        }
        if (m.type === "error" ? m.round !== r : "round" in m && m.round !== r) continue; // a late message of an earlier round
        try {
          if (m.type === "secure_setup" && takingPart && sentShares !== null) {
            this.link?.send(sentShares); // asked again after a reconnect: the same shares
          } else if (m.type === "secure_setup" && takingPart) {
            setup = roundSetupOf(this.options.taskId, m);
            if (setup.clip !== settings.clip || setup.weightCap !== settings.weight_cap) {
              throw new SecureAggregationError("roster", "the server's clip range and weight cap are not the task's");
            }
            const out = await participant.share(setup);
            live();
            const envelopes = [...out.envelopes].map(([peer, data]) => ({ peer, data }));
            sentShares = { type: "secure_shares", round: r, commitment: out.commitment, envelopes };
            this.link?.send(sentShares);
            this.log("info", `${mine}: secure round of ${setup.members.length} members; shares sent`);
          } else if (m.type === "secure_inbox" && takingPart && sentInput !== null) {
            this.link?.send(sentInput); // asked again after a reconnect: the same masked input
          } else if (m.type === "secure_inbox" && takingPart && summed) {
            // a second sum with it, over other members, would give the update away
            sitOut("before it restarted, the server asked to unmask a sum with your update in it; your update is not sent again in this round");
          } else if (m.type === "secure_inbox" && takingPart && setup !== null) {
            await participant.receive(new Map(m.envelopes.map((e) => [e.peer, e.data])));
            live();
            const out = await started.result();
            live();
            const first = prepared === null; // (after a restart: the same update, masked anew)
            prepared ??= this.prepared(model, out, mine);
            live(); // (the privacy noise's source may have stopped it)
            const { words, weight } = quantisedWords(model.weights, prepared, setup);
            const masked = await participant.mask(words, m.senders);
            live();
            sentInput = { type: "secure_input", round: r, words: wordBytes(masked) };
            deadline = Date.now() + waitMs; // again from the masked input, as after a plain update
            this.status.waitUntil = deadline;
            this.setState("sending_update");
            if (this.link?.send(sentInput)) this.setState(this.waitingState());
            if (first) this.emit({ kind: "sent", round: r, numSamples: weight }); // one update, one spend
            this.log("info", `${mine}: masked update sent; waiting for others`);
          } else if (m.type === "secure_unmask" && takingPart) {
            summed ||= sentInput !== null; // (kept across restarts)
            // (asked again after a reconnect, the same split is revealed again)
            const shares = participant.reveal(m.survivors, m.dropped);
            this.link?.send({ type: "secure_reveal", round: r, shares: shares.map((s) => ({ ...s })) });
          } else if (m.type === "error") {
            sitOut(`[${m.code}] ${m.message}`);
          }
        } catch (exc) {
          if (!(exc instanceof SecureAggregationError)) throw exc;
          sitOut(`secure aggregation refused the round: ${exc.message}`); // reveal nothing more
        }
      }
    } finally {
      training?.close();
      this.signal.removeEventListener("abort", onStop);
      round.abort(new SessionError("the secure round ended")); // a training still running ends with it
      this.status.waitUntil = null;
    }
  }

  /** The trained update through the one pipeline (checks, privacy), as `quantisedUpdate` makes it. */
  private prepared(model: Model, out: TrainOutput, mine: string): PreparedUpdate {
    const log: LogFn = (level, message) => this.log(level, message);
    return prepareSecure(model.weights, out, this.options.privacy ?? null, this.options.random, mine, log);
  }
}

/** A line for the log, as `prepareAndLog` writes them. */
type LogFn = (level: "info" | "warn", message: string) => void;

/**
 * The update of `base` trained into `out`, through the one pipeline (checks, and privacy: clipping
 * and noise before masking), as a secure round's words: its change from `base` (flat float32, in
 * the model's tensor order) quantised with weight min(sample count, weight cap) and the roster's
 * clip range and scale. Python's `disco.client.secure.quantized_update`: federated participants
 * and decentralized peers mask these words. No metrics leave in a secure round.
 */
export function quantisedUpdate(
  base: Weights,
  out: TrainOutput,
  setup: RoundSetup,
  privacy: PrivacyConfig | null,
  random: RandomSource | undefined,
  mine: string,
  log: LogFn,
): { words: Uint32Array<ArrayBuffer>; weight: number } {
  return quantisedWords(base, prepareSecure(base, out, privacy, random, mine, log), setup);
}

/** The update of `base` trained into `out` through the one pipeline; no metrics leave in a secure round. */
function prepareSecure(
  base: Weights,
  out: TrainOutput,
  privacy: PrivacyConfig | null,
  random: RandomSource | undefined,
  mine: string,
  log: LogFn,
): PreparedUpdate {
  const trained = { weights: out.weights, numSamples: out.numSamples, metrics: {} };
  return prepareAndLog(base, trained, privacy, random, mine, log);
}

/**
 * The `prepared` update of `base` as the round's words: its change from `base` with weight
 * min(sample count, weight cap), in the roster's clip range and scale (Python's
 * `disco.client.secure.quantized_words`).
 */
export function quantisedWords(
  base: Weights,
  prepared: Pick<PreparedUpdate, "weights" | "numSamples">,
  setup: RoundSetup,
): { words: Uint32Array<ArrayBuffer>; weight: number } {
  const weight = clampWeight(prepared.numSamples, setup.weightCap);
  return { words: quantize(changeOf(base, prepared.weights), weight, setup.clip, setup.bits), weight };
}
