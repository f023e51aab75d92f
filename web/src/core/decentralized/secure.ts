/**
 * A browser peer's round under secure aggregation (docs/protocol.md §19.1), as Python's
 * `disco.decentralized.secure`: the masked inputs go peer to peer and every peer unmasks the sum.
 * The same four phases as a federated participant's (docs/secure_aggregation.md §10,
 * core/client/secure.ts), the server relaying keys, envelopes and shares but never a masked input:
 *
 * 1. with the plan, fresh keys go to the server (`secureKeys`, before the round's model is even
 *    fetched); training starts and the channels open, as in every round (./rounds.ts);
 * 2. after `Exchange`, the roster (`SecureSetup`) is answered at once with this peer's shares,
 *    even while it trains (`SecureShares`);
 * 3. with its envelopes (`SecureInbox`) and its training done, its update goes through the one
 *    pipeline (checks, privacy) and is quantised as a federated participant's is
 *    (`quantisedUpdate`); the masked words go to every other sender over its channel
 *    (`PeerMasked`, with their SHA-256), and it reports whose it holds (`Received`, ./session.ts);
 * 4. asked to unmask (`SecureUnmask`, survivors only) it reveals its shares (`SecureReveal`),
 *    never for fewer than 3 survivors (with two, each could read the other's update from the sum);
 *    with `SecureReveals` it sums the survivors' masked inputs (its own among them), removes the
 *    masks (`SecureSum.following`) and ends the round with G + Σ w·x / Σ w (`secureMean`), the
 *    same bits on every peer.
 *
 * `securePeerRound` says how the round ended (`SecureOutcome`); the peer does the bookkeeping. A
 * roster without it, a refusal by the server (`ErrorMessage` of the round) or by the engine
 * (`SecureAggregationError`), or a phase whose message does not come in time make it sit the round
 * out, revealing nothing more. Shares that do not rebuild a secret, a sum out of bounds, or fewer
 * than 3 survivors make every peer keep the round's model (and report its digest); lacking a
 * survivor's masked input makes this peer alone keep it (the others agree on the unmasked model,
 * and the server resyncs it); `SecureAbort` opens the next round with the round's model. However the round ends without a
 * new model — sat out too — the peer holds the round's model as round r + 1's (./rounds.ts). Every
 * wait is bounded: the phase's deadline plus the peer's slack; only training is never cut short.
 */

import type { LogEvent } from "../client/options";
import type { TrainOutput } from "../client/options";
import { quantisedUpdate, roundSetupOf, wordBytes } from "../client/secure";
import { SessionError, StoppedError } from "../errors";
import type { RandomSource } from "../privacy";
import {
  SHARES_S,
  UNMASK_S,
  type ClientMessage,
  type ErrorMessage,
  type PeerMasked,
  type RoundPlan,
  type SecureAbort,
  type SecureInbox,
  type SecureReveals,
  type SecureSetup,
  type SecureUnmask,
} from "../protocol";
import { MIN_MEMBERS, SecureAggregationError, SecureParticipant, SecureSum, secureMean, sortedIds, type RoundSetup } from "../secure";
import type { PrivacyConfig, SecureAggregationConfig } from "../task";
import type { Channel } from "../transport/channel";
import { stopped } from "../transport/wait";
import { LITTLE_ENDIAN, sha256Hex, type Weights } from "../weights";
import type { RoundTiming } from "./events";
import type { PeerExchange } from "./exchange";

/** The server's messages of one secure round as they arrive (the latest of each kind; taken when read). */
export interface SecureBox {
  setup?: SecureSetup;
  inbox?: SecureInbox;
  unmask?: SecureUnmask;
  reveals?: SecureReveals;
  abort?: SecureAbort;
  /** The server refused one of this peer's messages of the round. */
  error?: ErrorMessage;
}

/** What a secure round needs of the peer that lives it (`PeerRounds`, ./rounds.ts). */
export interface SecureHost {
  readonly taskId: string;
  /** This peer's id in the session. */
  readonly me: string;
  readonly settings: SecureAggregationConfig;
  readonly privacy: PrivacyConfig | null;
  readonly random: RandomSource | undefined;
  /** Added to each phase's deadline before this peer gives up on it (ms). */
  readonly slackMs: number;
  readonly exchange: PeerExchange;
  /** Aborts when the peer stops. */
  readonly signal: AbortSignal;
  /** The server's messages of `round`. */
  box(round: number): SecureBox;
  send(message: ClientMessage): void;
  /** Wait until `done()`, at most `timeoutMs` (`SessionError` then). */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** The open channel to `peer`, if any. */
  channel(peer: string): Channel | null;
  log(level: LogEvent["level"], message: string): void;
  /** The masked update of `round` left, weighing `weight` (for the display's "sent"). */
  sent(round: number, weight: number): void;
  /** What the peer is doing now. */
  state(state: "exchanging" | "combining"): void;
}

/** How a secure round ended for this peer. */
export type SecureOutcome =
  /** The sum was unmasked: the new model, G_r + Σ w·x / Σ w, and the survivors behind it. */
  | { kind: "combined"; weights: Weights; contributors: number }
  /** The sum could not be unmasked (wrong shares, Σ w out of bounds, fewer than 3 survivors): every peer keeps G_r. */
  | { kind: "kept"; why: string }
  /** `SecureAbort`: round r + 1 opens with G_r. */
  | { kind: "aborted"; reason: string }
  /** This peer lacks these survivors' masked inputs: it keeps G_r alone (and is resynced to the agreed model). */
  | { kind: "lacking"; lacking: string[] }
  /** This peer took no further part (the reason is logged). */
  | { kind: "sat_out" };

/**
 * Why this peer ends the round with the round's model, for the log; null when it does not (it
 * combined, or sat out). After an abort, or shares that rebuild no secret, every member keeps it;
 * lacking a survivor's masked input, this peer alone does (the others agree on the unmasked
 * model, and it is resynced to it, docs/protocol.md §19.1).
 */
export function keepsBecause(outcome: SecureOutcome): string | null {
  switch (outcome.kind) {
    case "kept":
      return `the sum could not be unmasked (${outcome.why})`;
    case "aborted":
      return `the round was aborted (${outcome.reason})`;
    case "lacking":
      return `the masked inputs of ${outcome.lacking.join(", ")} never arrived`;
    default:
      return null;
  }
}

/** This peer takes no further part in the round (the reason is the message). */
class SitOut extends Error {
  override name = "SitOut";
}

/** The round was aborted: every member keeps the round's model. */
class Aborted extends Error {
  override name = "Aborted";
}

/** A fresh participant for round `round`, its keys sent to the server (right after the plan). */
export async function secureKeys(host: SecureHost, round: number): Promise<SecureParticipant> {
  const participant = await SecureParticipant.create(host.taskId, round, host.me, { threshold: host.settings.threshold });
  if (host.signal.aborted) throw stopped(host.signal); // stopped while the keys were made: send nothing
  const { cPublic, sPublic } = participant.keys();
  host.send({ type: "secure_keys", round, c_public: cPublic, s_public: sPublic });
  return participant;
}

/**
 * Take part in the planned secure round from the barrier on (this peer passed it; training
 * runs): shares, masked input, reveal, unmasking. `mine` names the round for the log.
 */
export async function securePeerRound(
  host: SecureHost,
  plan: RoundPlan,
  participant: SecureParticipant,
  base: Weights,
  training: Promise<TrainOutput>,
  timing: RoundTiming,
  mine: string,
): Promise<SecureOutcome> {
  try {
    return await phases(host, plan, participant, base, training, timing, mine);
  } catch (exc) {
    if (exc instanceof Aborted) return { kind: "aborted", reason: exc.message };
    if (exc instanceof SitOut) {
      host.log("warn", `${mine}: ${exc.message}; this round goes on without you, you take part from the next one`);
      return { kind: "sat_out" };
    }
    if (exc instanceof SecureAggregationError) {
      // the engine refused: reveal nothing more
      host.log("warn", `${mine}: secure aggregation refused the round (${exc.message}); sitting it out`);
      return { kind: "sat_out" };
    }
    throw exc;
  }
}

async function phases(
  host: SecureHost,
  plan: RoundPlan,
  participant: SecureParticipant,
  base: Weights,
  training: Promise<TrainOutput>,
  timing: RoundTiming,
  mine: string,
): Promise<SecureOutcome> {
  const r = plan.round;
  const live = (): void => {
    if (host.signal.aborted) throw stopped(host.signal);
  };
  // 2. shares, at once, even while training
  const setup = roundSetupOf(host.taskId, await next(host, r, ["setup"], SHARES_S, "the round's roster"));
  checkSetup(host, setup, base);
  const shares = await participant.share(setup);
  live();
  const envelopes = [...shares.envelopes].map(([peer, data]) => ({ peer, data }));
  host.send({ type: "secure_shares", round: r, commitment: shares.commitment, envelopes });
  host.log("info", `${mine}: secure round of ${setup.members.length} peers; shares sent`);
  // 3. the masked input, once trained, to every other sender
  const inbox = await next(host, r, ["inbox"], SHARES_S, "the shares of the others");
  await participant.receive(new Map(inbox.envelopes.map((e) => [e.peer, e.data])));
  const trained = await training; // never cut short
  live();
  const tExchange = Date.now();
  const box = host.box(r);
  if (box.abort !== undefined) throw new Aborted(box.abort.reason);
  let own: PeerMasked | null = null;
  if (box.reveals === undefined) {
    // (with the reveals already here, this peer was dropped: its masked input would serve no one)
    const log = (level: LogEvent["level"], message: string): void => host.log(level, message);
    const { words, weight } = quantisedUpdate(base, trained, setup, host.privacy, host.random, mine, log);
    live(); // (the privacy noise's source may have stopped it)
    const bytes = wordBytes(await participant.mask(words, inbox.senders));
    live();
    own = { type: "peer_masked", round: r, words: bytes, digest: await sha256Hex(bytes) };
    const others = inbox.senders.filter((s) => s !== host.me);
    host.state("exchanging");
    host.sent(r, weight);
    host.log("info", `round ${r}: sending the masked update to ${others.length} peer${others.length === 1 ? "" : "s"}`);
    await Promise.all(others.map((p) => sendMasked(host, p, own as PeerMasked, plan.exchange_s * 1000)));
  }
  // 4. reveal (survivors only), then unmask with the relayed shares
  let ask = await next(host, r, ["unmask", "reveals"], plan.exchange_s + UNMASK_S, "the round's survivors");
  if (ask.type === "secure_unmask") {
    enough(ask.survivors); // else nothing is revealed
    const revealed = participant.reveal(ask.survivors, ask.dropped);
    host.send({ type: "secure_reveal", round: r, shares: revealed.map((s) => ({ ...s })) });
    ask = await next(host, r, ["reveals"], UNMASK_S, "the survivors' shares");
  }
  timing.exchangeMs = Date.now() - tExchange;
  host.state("combining");
  const tCombine = Date.now();
  const held = new Map(host.exchange.masked.get(r) ?? []);
  if (own !== null) held.set(host.me, own);
  const outcome = await unmask(setup, inbox.senders, held, ask, base);
  timing.combineMs = Date.now() - tCombine;
  return outcome;
}

/** Refuse a roster this peer cannot take part in: one without it, or not the task's. */
function checkSetup(host: SecureHost, setup: RoundSetup, base: Weights): void {
  if (!setup.members.some((m) => m.id === host.me)) {
    throw new SitOut("the roster does not list this peer (its keys came late or were unusable)");
  }
  if (setup.clip !== host.settings.clip || setup.weightCap !== host.settings.weight_cap) {
    throw new SecureAggregationError("roster", "the roster's clip range and weight cap are not the task's");
  }
  if (setup.length !== 1 + base.size) {
    throw new SecureAggregationError("roster", `the roster's inputs are ${setup.length} words, not 1 + the model's ${base.size} values`);
  }
}

/**
 * The round's new model from the survivors' masked inputs (`held`, by sender) and the relayed
 * shares; `kept` if the sum cannot be unmasked (fewer than 3 survivors, or the shares or the sum
 * refused: every peer fails alike), `lacking` if this peer does not hold every survivor's masked
 * input.
 */
async function unmask(
  setup: RoundSetup,
  senders: readonly string[],
  held: ReadonlyMap<string, PeerMasked>,
  reveals: SecureReveals,
  base: Weights,
): Promise<SecureOutcome> {
  try {
    enough(reveals.survivors);
  } catch (exc) {
    if (!(exc instanceof SecureAggregationError)) throw exc;
    return { kind: "kept", why: exc.message };
  }
  const lacking = reveals.survivors.filter((s) => !held.has(s));
  if (lacking.length > 0) return { kind: "lacking", lacking };
  try {
    const commitments = new Map(reveals.commitments.map((c) => [c.peer, c.commitment]));
    const sum = SecureSum.following(setup, senders, commitments);
    for (const s of reveals.survivors) sum.addMasked(s, wordsOf((held.get(s) as PeerMasked).words));
    const split = sum.closeMasked();
    if (!sameList(split.survivors, sortedIds(reveals.survivors)) || !sameList(split.dropped, sortedIds(reveals.dropped))) {
      throw new SecureAggregationError("round", "the relayed split is not the members that shared");
    }
    for (const revealed of reveals.reveals) sum.addReveal(revealed.peer, revealed.shares);
    const { weights } = secureMean(base, await sum.result(), setup.bits, reveals.survivors.length, setup.weightCap);
    return { kind: "combined", weights, contributors: reveals.survivors.length };
  } catch (exc) {
    if (!(exc instanceof SecureAggregationError)) throw exc;
    return { kind: "kept", why: exc.message };
  }
}

/**
 * Refuse to unmask the sum of fewer than 3 survivors (`MIN_MEMBERS`): every peer reads the sum,
 * so with two each could subtract its own input from it and read the other's update.
 */
function enough(survivors: readonly string[]): void {
  if (survivors.length < MIN_MEMBERS) {
    throw new SecureAggregationError(
      "round",
      `only ${survivors.length} survivors: with fewer than ${MIN_MEMBERS}, each could read another's update from the sum; nothing is revealed`,
    );
  }
}

type Asked = "setup" | "inbox" | "unmask" | "reveals";

/**
 * The server's next message of round `r` among `kinds`, waiting at most `withinS` plus the slack
 * (taken out of the box); `SecureAbort` throws `Aborted`, a refusal of the round or a deadline
 * passed `SitOut`.
 */
async function next<K extends Asked>(
  host: SecureHost,
  r: number,
  kinds: readonly K[],
  withinS: number,
  what: string,
): Promise<NonNullable<SecureBox[K]>> {
  const box = host.box(r);
  const arrived = (): boolean => box.abort !== undefined || box.error !== undefined || kinds.some((k) => box[k] !== undefined);
  try {
    await host.until(arrived, withinS * 1000 + host.slackMs, `${what} (round ${r})`);
  } catch (exc) {
    // a deadline passed: sit out (a closed connection, a ServerError, ends the run instead)
    if (exc instanceof SessionError && !(exc instanceof StoppedError) && !host.signal.aborted) throw new SitOut(exc.message);
    throw exc;
  }
  if (box.abort !== undefined) throw new Aborted(box.abort.reason);
  if (box.error !== undefined) {
    const error = box.error;
    delete box.error;
    throw new SitOut(`the server refused: [${error.code}] ${error.message}`);
  }
  const kind = kinds.find((k) => box[k] !== undefined) as K;
  const message = box[kind] as NonNullable<SecureBox[K]>;
  delete box[kind];
  return message;
}

/** Send this peer's masked input to `to` (a failure is logged: the split decides what counts). */
async function sendMasked(host: SecureHost, to: string, masked: PeerMasked, timeoutMs: number): Promise<void> {
  const channel = host.channel(to);
  if (channel === null) {
    host.log("info", `round ${masked.round}: no channel to peer ${to}; its masked input is not sent`);
    return;
  }
  try {
    await host.exchange.send(channel, masked, timeoutMs, host.signal);
  } catch (exc) {
    if (host.signal.aborted) throw exc;
    const why = exc instanceof Error ? exc.message : String(exc);
    host.log("info", `round ${masked.round}: sending the masked input to peer ${to} failed (${why})`);
  }
}

/** The uint32 words of little-endian `bytes` (a whole number of words), in a new aligned array. */
export function wordsOf(bytes: Uint8Array): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(bytes.length / 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(words.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < words.length; i++) words[i] = view.getUint32(4 * i, true);
  }
  return words;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
