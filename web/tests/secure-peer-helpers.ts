/**
 * `FakeSecureSession`: `FakeSession` (./peer-helpers.ts) with secure rounds, as Python's
 * `disco.server.peer_secure.SecurePeerSession` paces them (docs/protocol.md §19.1): the roster
 * after the barrier, the envelopes, the split from whose masked inputs most senders hold, the
 * threshold's reveals relayed with the survivors' commitments — the TypeScript `SecureSum` in
 * coordinator mode playing the coordinator. It never sees a masked input or a model. As the
 * server, it aborts a round of fewer than 3 senders or survivors (unless told not to, to see
 * the peers refuse such a round themselves); a test may also have it ignore a peer's keys, leave
 * a peer out at the barrier, or abort a round once the shares are in.
 */

import type { ClientMessage, SecureShare, ServerMessage } from "../src/core/protocol";
import { RoundAborted, SecureAggregationError, SecureSum, sortedIds, type RoundSetup } from "../src/core/secure";
import type { SecureAggregationConfig } from "../src/core/task";
import { FakeSession, type Peer, type Round, type SessionOptions } from "./peer-helpers";

/** A secure session's settings: the task's and its model's number of values. */
export interface SecureSessionOptions extends SessionOptions {
  taskId: string;
  values: number;
  settings: SecureAggregationConfig;
  sharesMs?: number;
  unmaskMs?: number;
  /** Rounds whose first relayed share the coordinator damages (one bit): the sum cannot be unmasked. */
  damage?: readonly number[];
  /** Go on with fewer than 3 senders or survivors (a server from before that rule): the peers must refuse. */
  fewerThanThree?: boolean;
  /** Peers whose keys the coordinator ignores in a round: the roster leaves them out. */
  ignoreKeys?: readonly { round: number; peer: string }[];
  /** Peers the barrier leaves out of a round (`exchange` without them), as if their channels had not opened. */
  leaveOut?: readonly { round: number; peer: string }[];
  /** Rounds the coordinator aborts once the shares are in. */
  abort?: readonly number[];
}

/** Whether `list` names `peer` in `round`. */
const names = (list: readonly { round: number; peer: string }[] | undefined, round: number, peer: string): boolean =>
  list?.some((x) => x.round === round && x.peer === peer) ?? false;

/** The server's rule: every peer reads the sum, so with two members each would read the other's update. */
const FEWEST = 3;

/** The coordinator's state of one secure round (`SecureSum` in coordinator mode: it never holds a masked input). */
interface SecureRound {
  number: number;
  sum: SecureSum;
  setup: RoundSetup | null;
}

/** A decentralized session whose rounds are secure ones. */
export class FakeSecureSession extends FakeSession {
  protected override capabilities: readonly string[] = ["decentralized", "secure_aggregation"];
  /** The rounds aborted, and why. */
  readonly aborted: { round: number; reason: string }[] = [];
  /** Each round's roster, as sent. */
  readonly setups: RoundSetup[] = [];
  /** Each round's split of survivors and dropped, as sent. */
  readonly splits: { round: number; survivors: string[]; dropped: string[] }[] = [];
  /** The rounds whose reveals were relayed. */
  readonly relayed: number[] = [];
  private secure: SecureRound | null = null;

  constructor(
    initialDigest: string,
    private readonly secureOptions: SecureSessionOptions,
  ) {
    super(initialDigest, secureOptions);
  }

  private get threshold(): number {
    return this.secure?.setup?.threshold ?? 0;
  }

  protected override receive(identity: string, message: ClientMessage): void {
    if (message.type !== "secure_keys" && message.type !== "secure_shares" && message.type !== "secure_reveal") {
      super.receive(identity, message);
      return;
    }
    const rnd = this.current;
    const peer = this.peers.get(identity) as Peer;
    const refuse = (code: "stale" | "unexpected", text: string): void =>
      this.send(peer, { type: "error", code, message: text, round: message.round });
    if (rnd === null || message.round !== rnd.number || !rnd.neighbours.has(identity)) {
      if (message.type !== "secure_reveal") refuse("stale", `round ${message.round} is not open to you`);
      return;
    }
    const secure = this.secureRound(rnd);
    try {
      if (message.type === "secure_keys" && rnd.phase === "connecting") {
        if (names(this.secureOptions.ignoreKeys, rnd.number, identity)) return;
        secure.sum.addKeys(identity, message.c_public, message.s_public, { replace: true });
      } else if (message.type === "secure_shares" && rnd.phase === "sharing") {
        secure.sum.addShares(identity, message.commitment, new Map(message.envelopes.map((e) => [e.peer, e.data])));
      } else if (message.type === "secure_reveal" && rnd.phase === "unmasking") {
        secure.sum.addReveal(identity, message.shares);
      } else if (message.type !== "secure_reveal") {
        refuse("stale", `round ${rnd.number} is ${rnd.phase}, not taking '${message.type}'`);
      }
    } catch (error) {
      if (!(error instanceof SecureAggregationError)) throw error;
      refuse("unexpected", error.message);
    }
    this.advance();
  }

  private secureRound(rnd: Round): SecureRound {
    if (this.secure === null || this.secure.number !== rnd.number) {
      const { taskId, values, settings } = this.secureOptions;
      const sum = new SecureSum(taskId, rnd.number, { values, clip: settings.clip, weightCap: settings.weight_cap, threshold: settings.threshold });
      this.secure = { number: rnd.number, sum, setup: null };
    }
    return this.secure;
  }

  private timer(rnd: Round, phase: Round["phase"], ms: number): void {
    if (rnd.timer !== null) clearTimeout(rnd.timer);
    rnd.phase = phase;
    rnd.timer = setTimeout(() => this.expire(rnd, phase), ms);
  }

  private to(ids: Iterable<string>, message: ServerMessage): void {
    for (const id of sortedIds(ids)) {
      const peer = this.peers.get(id);
      if (peer !== undefined) this.send(peer, message);
    }
  }

  /** The barrier passed: `exchange` as usual, then the roster to the members that passed. */
  protected override startExchange(rnd: Round, excluded: string[]): void {
    const out = [...this.live(rnd)].filter((m) => names(this.secureOptions.leaveOut, rnd.number, m));
    super.startExchange(rnd, [...new Set([...excluded, ...out])]);
    const secure = this.secureRound(rnd);
    let setup: RoundSetup;
    try {
      setup = secure.sum.setup(this.live(rnd, rnd.exchange));
    } catch (error) {
      if (!(error instanceof RoundAborted)) throw error;
      this.abort(rnd, error.message);
      return;
    }
    secure.setup = setup;
    this.setups.push(setup);
    this.timer(rnd, "sharing", this.secureOptions.sharesMs ?? 5_000);
    this.to(rnd.exchange, {
      type: "secure_setup",
      round: rnd.number,
      members: setup.members.map((m) => ({ id: m.id, position: m.position, c_public: m.cPublic, s_public: m.sPublic })),
      threshold: setup.threshold,
      clip: setup.clip,
      weight_cap: setup.weightCap,
      bits: setup.bits,
      length: setup.length,
    });
    rnd.exchange = new Set(setup.members.map((m) => m.id));
  }

  protected override step(rnd: Round): boolean {
    const secure = this.secure;
    if (secure === null || secure.number !== rnd.number) return false;
    if (rnd.phase === "sharing" && [...this.live(rnd, rnd.exchange)].every((m) => secure.sum.shared.includes(m))) {
      this.startMasking(rnd);
      return true;
    }
    if (rnd.phase === "unmasking") {
      const pending = [...this.live(rnd, secure.sum.split.survivors)].filter((m) => !secure.sum.revealers.has(m));
      if (secure.sum.revealed >= this.threshold || pending.length === 0) {
        this.relayReveals(rnd);
        return true;
      }
    }
    return false;
  }

  /** The shares are in: each sender gets its envelopes; masked inputs go peer to peer. */
  private startMasking(rnd: Round): void {
    const secure = this.secure as SecureRound;
    let senders: readonly string[];
    try {
      senders = secure.sum.closeShares();
      this.atLeastThree(senders, "senders");
    } catch (error) {
      if (!(error instanceof RoundAborted)) throw error;
      this.abort(rnd, error.message);
      return;
    }
    if (this.secureOptions.abort?.includes(rnd.number)) {
      this.abort(rnd, "the test aborts this round");
      return;
    }
    rnd.exchange = new Set(senders);
    this.timer(rnd, "exchanging", this.exchangeMs);
    for (const m of senders) {
      const envelopes = [...secure.sum.inbox(m)].map(([peer, data]) => ({ peer, data }));
      this.to([m], { type: "secure_inbox", round: rnd.number, senders: [...senders], envelopes });
    }
  }

  /** The masked inputs are exchanged: the survivors are those most senders hold; they are asked to unmask. */
  protected override startCombining(rnd: Round): void {
    const secure = this.secure as SecureRound;
    const live = this.live(rnd, rnd.exchange);
    let split: { survivors: readonly string[]; dropped: readonly string[] };
    try {
      split = secure.sum.closeMasked([...rnd.exchange].filter((s) => this.heldWidely(rnd, s, live)));
      this.atLeastThree(split.survivors, "survivors");
    } catch (error) {
      if (!(error instanceof RoundAborted)) throw error;
      this.abort(rnd, error.message);
      return;
    }
    const survivors = [...split.survivors];
    const dropped = [...split.dropped];
    this.splits.push({ round: rnd.number, survivors, dropped });
    rnd.contributors = survivors;
    this.timer(rnd, "unmasking", this.secureOptions.unmaskMs ?? 5_000);
    this.to([...live].filter((m) => survivors.includes(m)), { type: "secure_unmask", round: rnd.number, survivors, dropped });
  }

  /** The server's `_at_least_three` (unless `fewerThanThree`): `RoundAborted` for fewer than 3 `members`. */
  private atLeastThree(members: readonly string[], what: string): void {
    if (members.length < FEWEST && !this.secureOptions.fewerThanThree) {
      throw new RoundAborted(`only ${members.length} ${what}: with fewer than ${FEWEST} every peer could read another's update from the sum`);
    }
  }

  /** Python's `held_widely`: more than half of the live members that should hold `sender`'s input do. */
  private heldWidely(rnd: Round, sender: string, live: Set<string>): boolean {
    const expected = [...live].filter((m) => m === sender || (rnd.neighbours.get(m) as string[]).includes(sender));
    const held = expected.filter((m) => m === sender || (rnd.received.get(m) ?? new Set()).has(sender));
    if (live.has(sender) && expected.length <= 2) return true;
    return 2 * held.length > expected.length;
  }

  /** Every live sender gets the split, the survivors' commitments and the threshold's shares. */
  private relayReveals(rnd: Round): void {
    const secure = this.secure as SecureRound;
    if (secure.sum.revealed < this.threshold) {
      this.abort(rnd, `only ${secure.sum.revealed} survivors revealed their shares; unmasking needs ${this.threshold}`);
      return;
    }
    const { survivors, dropped } = secure.sum.split;
    this.timer(rnd, "combining", this.options.combineMs ?? 5_000);
    this.relayed.push(rnd.number);
    this.to(this.live(rnd, rnd.exchange), {
      type: "secure_reveals",
      round: rnd.number,
      survivors: [...survivors],
      dropped: [...dropped],
      commitments: [...secure.sum.commitments(survivors)].map(([peer, commitment]) => ({ peer, commitment })),
      reveals: secure.sum.reveals.slice(0, this.threshold).map(([peer, shares], i) => ({
        peer,
        shares: i === 0 && this.secureOptions.damage?.includes(rnd.number) ? damaged(shares) : shares,
      })),
    });
  }

  /** End `rnd` without a result: its members keep the round's model, the next round opens. */
  private abort(rnd: Round, reason: string): void {
    if (rnd.timer !== null) clearTimeout(rnd.timer);
    const members = this.live(rnd);
    for (const m of members) {
      const peer = this.peers.get(m) as Peer;
      if (this.holdsModel(peer)) peer.holds = [rnd.number + 1, peer.holds?.[1] ?? ""];
    }
    this.roundNo = rnd.number + 1;
    this.current = null;
    this.aborted.push({ round: rnd.number, reason });
    this.to(members, { type: "secure_abort", round: rnd.number, reason });
    this.broadcast(this.status());
  }

  protected override expire(rnd: Round, phase: Round["phase"]): void {
    if (this.current !== rnd || rnd.phase !== phase) return;
    if (phase === "sharing") this.startMasking(rnd);
    else if (phase === "unmasking") this.relayReveals(rnd);
    else {
      super.expire(rnd, phase);
      return;
    }
    this.advance();
  }
}

/** `shares` with one bit of the first one's last byte flipped. */
function damaged(shares: readonly SecureShare[]): SecureShare[] {
  return shares.map((s, i) => {
    if (i !== 0) return s;
    const share = new Uint8Array(s.share);
    share[share.length - 1] = (share[share.length - 1] as number) ^ 1;
    return { ...s, share };
  });
}
