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
 * the server refuses one of its messages (`ErrorMessage`, "stale" for keys once the roster is
 * fixed), when the engine refuses what it was sent (`SecureAggregationError`: a roster it must not
 * accept, an envelope that does not open, a split that could expose an update; it reveals nothing
 * more), or when its connection dropped after the roster was fixed; reconnecting before that, it
 * sends fresh keys. An aborted round (`SecureAbort` r) opens round r + 1 with the same model. A
 * round that ends while it trains is taken once its training is done (training is never cut
 * short). Its wait for the others is bounded by `waitForOthersMs` from its masked input, as after a
 * plain update, and by that plus the server's keys and shares phases (`PHASES_MS`) before it.
 */

import { SessionError } from "../errors";
import type { SecureSetup, ServerMessage } from "../protocol";
import { clampWeight, quantize, SecureAggregationError, SecureParticipant, type RoundSetup } from "../secure";
import { subtract } from "../privacy";
import { LITTLE_ENDIAN, type Weights } from "../weights";
import { LinkClosed, WaitTimeout, type Link } from "./link";
import type { TrainOutput } from "./options";
import { fatalClose } from "./server";
import type { Model } from "./session";
import { prepareAndLog } from "./update";
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

/** `trained` − `received`, flat float32 in the model's tensor order (as Python's `_change`). */
export function changeOf(received: Weights, trained: Weights): Float32Array {
  return subtract(trained, received).flatten();
}

/** `words` as bytes, little-endian (the wire order of a masked input). */
export function wordBytes(words: Uint32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
  const bytes = new Uint8Array(4 * words.length);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(4 * i, words[i] as number, true);
  return bytes;
}

/** What a wait for the next message ended with while this participant trains: its training settled. */
class Trained extends Error {
  override name = "Trained";
}

/** The training of one round, started once: whether it ended, and how. */
class Training {
  private output: TrainOutput | null = null;
  private failure: { error: unknown } | null = null;
  /** Aborted (reason `Trained`) once training settles, or (its reason) once the client stops. */
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

  /** Aborts when training settles or the client stops: waits while it trains end with it. */
  get signal(): AbortSignal {
    return this.woken.signal;
  }

  /** The trained model once training succeeded; null while it runs; its error if it failed. */
  get done(): TrainOutput | null {
    if (this.failure !== null) throw this.failure.error;
    return this.output;
  }

  /** Wait for training to end (it is bounded by the client's stop, as every training). */
  async result(): Promise<TrainOutput> {
    await this.settled;
    return this.done as TrainOutput;
  }

  /** Stop listening for the client's stop. */
  close(): void {
    this.unlisten();
  }
}

/** The server's keys and shares phases at most (30 s each, docs/protocol.md §19), in ms. */
export const PHASES_MS = 60_000;

/** A federated session whose rounds may be secure ones; `FederatedClient` adds the run. */
export abstract class SecureSession extends WaitingSession {
  /**
   * Take part in server round `model.round` (from `model.weights`) with secure aggregation:
   * `train()` trains this round's model, `expired(trained)` is the error to stop with when the
   * wait for others runs out. Resolves with the model the next round opens with: the round's
   * result, or after an abort the same model (one round later).
   */
  protected async secureRound(
    model: Model,
    mine: string,
    train: () => Promise<TrainOutput>,
    expired: (trained: Weights) => WaitExpired,
  ): Promise<Model> {
    const r = model.round;
    const settings = this.options.secureAggregation;
    const me = this.clientId;
    if (!settings || me === null) throw new SessionError("a secure round needs the task's settings and this participant's id");
    const fresh = async (): Promise<SecureParticipant> => {
      const participant = await SecureParticipant.create(this.options.taskId, r, me, { threshold: settings.threshold });
      const { cPublic, sPublic } = participant.keys();
      this.link?.send({ type: "secure_keys", round: r, c_public: cPublic, s_public: sPublic });
      return participant;
    };
    let participant = await fresh();
    const training = new Training(train(), this.signal);
    let setup: RoundSetup | null = null;
    let takingPart = true;
    const sitOut = (why: string): void => {
      if (takingPart) this.log("warn", `${mine}: ${why}; this round goes on without you, you take part from the next one`);
      takingPart = false;
    };
    // the keys and shares phases take at most a minute on the server; the wait for the others
    // proper starts once the masked input is sent, as a plain update's does
    let deadline = Date.now() + (this.options.waitForOthersMs ?? 600_000) + PHASES_MS;
    /** The next round's model, once this round's training is done (it trains on this round's model either way). */
    const opens = async (next: Model): Promise<Model> => {
      await training.result();
      return next;
    };
    let waiting = false; // trained, waiting for the others
    try {
      for (;;) {
        const trained = training.done; // (a training that failed throws here)
        if (trained !== null && !waiting) {
          waiting = true;
          this.status.waitUntil = deadline;
          this.setState(this.waitingState());
        }
        let m: ServerMessage;
        try {
          // while training, the wait also ends when it does
          m = await this.next(this.link as Link, deadline - Date.now(), trained === null ? training.signal : this.signal);
        } catch (exc) {
          if (exc instanceof Trained) continue;
          if (exc instanceof WaitTimeout) {
            if (trained === null) {
              await training.result(); // training is never cut short: then what came meanwhile, or the end
              continue;
            }
            throw expired(trained.weights);
          }
          if (!(exc instanceof LinkClosed)) throw exc;
          const fatal = fatalClose(exc);
          if (fatal !== null) throw fatal;
          this.log("warn", `connection lost (${exc.message}); reconnecting`);
          const joined = await this.join();
          if (joined.round > r) {
            this.log("info", `${mine}: the round closed meanwhile; continuing from the newer shared model`);
            return await opens(joined);
          }
          if (setup === null) participant = await fresh(); // the roster may not be fixed yet: fresh keys
          else sitOut("the connection dropped during the round");
          this.setState(training.done === null ? "training" : this.waitingState());
          continue;
        }
        if (m.type === "result" && m.round > r) return await opens({ round: m.round, weights: m.weights });
        if (m.type === "secure_abort" && m.round === r) {
          this.log("warn", `${mine}: the round was aborted (${m.reason}); the next one starts from the same shared model`);
          return await opens({ round: r + 1, weights: model.weights });
        }
        if (m.type === "error" ? m.round !== r : "round" in m && m.round !== r) continue; // a late message of an earlier round
        try {
          if (m.type === "secure_setup" && takingPart) {
            setup = roundSetupOf(this.options.taskId, m);
            if (setup.clip !== settings.clip || setup.weightCap !== settings.weight_cap) {
              throw new SecureAggregationError("roster", "the server's clip range and weight cap are not the task's");
            }
            const out = await participant.share(setup);
            const envelopes = [...out.envelopes].map(([peer, data]) => ({ peer, data }));
            this.link?.send({ type: "secure_shares", round: r, commitment: out.commitment, envelopes });
            this.log("info", `${mine}: secure round of ${setup.members.length} members; shares sent`);
          } else if (m.type === "secure_inbox" && takingPart && setup !== null) {
            await participant.receive(new Map(m.envelopes.map((e) => [e.peer, e.data])));
            const out = await training.result();
            const { words, weight } = this.quantised(model, out, setup, mine);
            const masked = await participant.mask(words, m.senders);
            deadline = Date.now() + (this.options.waitForOthersMs ?? 600_000); // as after a plain update
            this.status.waitUntil = deadline;
            this.setState("sending_update");
            if (this.link?.send({ type: "secure_input", round: r, words: wordBytes(masked) })) this.setState(this.waitingState());
            this.emit({ kind: "sent", round: r, numSamples: weight });
            this.log("info", `${mine}: masked update sent; waiting for others`);
          } else if (m.type === "secure_unmask" && takingPart) {
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
      training.close();
      this.status.waitUntil = null;
    }
  }

  /**
   * The trained update through the one pipeline (checks, privacy: clipping and noise before
   * masking), as the round's words: its change from the round's model quantised with weight
   * min(sample count, weight cap) and the roster's clip range and scale.
   */
  private quantised(model: Model, out: TrainOutput, setup: RoundSetup, mine: string): { words: Uint32Array; weight: number } {
    const privacy = this.options.privacy ?? null;
    // no metrics leave in a secure round: only the masked words
    const trained = { weights: out.weights, numSamples: out.numSamples, metrics: {} };
    const prepared = prepareAndLog(model.weights, trained, privacy, this.options.random, mine, (level, message) => this.log(level, message));
    const weight = clampWeight(prepared.numSamples, setup.weightCap);
    return { words: quantize(changeOf(model.weights, prepared.weights), weight, setup.clip, setup.bits), weight };
  }
}
