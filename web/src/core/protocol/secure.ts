/**
 * The messages of secure aggregation (capability "secure_aggregation", docs/protocol.md §19), as
 * Python's `disco.protocol.secure`. A secure round has four phases (docs/secure_aggregation.md
 * §10); in each, a participant sends one message and the server answers the round's members with
 * one:
 *
 * | phase | participant → server | server → participant |
 * |---|---|---|
 * | keys | `SecureKeys` | `SecureSetup` (the roster) |
 * | shares | `SecureShares` | `SecureInbox` (the envelopes addressed to it) |
 * | masked input | `SecureInput` | `SecureUnmask` (survivors and dropped) |
 * | unmasking | `SecureReveal` | `RoundResult`, as in every federated round |
 *
 * `SecureAbort` ends a round that has too few members left; the next round starts. Keys,
 * envelopes, commitments, shares and masked words travel as msgpack binary (`Uint8Array`; a
 * decoded one is a view of the frame). The browser's round: core/client/secure.ts.
 *
 * In a decentralized session (§19.1) every peer aggregates: the masked inputs go peer to peer
 * (`PeerMasked`, never through the server), and once the threshold of survivors revealed their
 * shares the server relays them to every member (`SecureReveals`) instead of unmasking anything.
 * The browser peer's round: core/decentralized/secure.ts.
 */

/** Bytes of a public key: a P-256 point, uncompressed SEC1. */
export const SECURE_PUBLIC_KEY_BYTES = 65;
/** Bytes of an envelope: AES-256-GCM of two 33-byte shares. */
export const SECURE_ENVELOPE_BYTES = 82;
/** Bytes of a commitment to a self-mask seed. */
export const SECURE_COMMITMENT_BYTES = 32;
/** Bytes of one revealed share. */
export const SECURE_SHARE_BYTES = 33;
/** Most words a masked input may carry, 2^29 (a frame stays under 2 GiB; servers limit frames lower). */
export const MAX_SECURE_WORDS = 2 ** 29;
/** Longest reason of a `SecureAbort` (code points). */
export const MAX_SECURE_REASON = 1000;
/** Largest `weight_cap` of a round. */
export const MAX_SECURE_WEIGHT_CAP = 65_536;
/** Largest `bits` of a round (the scale is 2^bits). */
export const MAX_SECURE_BITS = 64;
/** Largest `clip` of a round. */
export const MAX_SECURE_CLIP = 1e6;
/** How long the keys phase waits for the connected participants once enough have sent keys, in seconds. */
export const KEYS_S = 30;
/** How long the shares phase waits for the roster's members, in seconds. */
export const SHARES_S = 30;
/** How long the unmasking phase waits for the survivors' shares, in seconds. */
export const UNMASK_S = 30;

/** What a revealed share is of: a survivor's self-mask seed or a dropped member's `s` key. */
export type SecureShareKind = "self" | "key";

// -- participant → server --------------------------------------------------------------------

/** Phase 1: this participant's two fresh public keys for round `round` (C→S). */
export interface SecureKeys {
  type: "secure_keys";
  round: number;
  /** `SECURE_PUBLIC_KEY_BYTES` bytes. */
  c_public: Uint8Array;
  /** `SECURE_PUBLIC_KEY_BYTES` bytes. */
  s_public: Uint8Array;
}
/** An envelope of shares; `peer` is its recipient (in `SecureShares`) or its sender (in `SecureInbox`). */
export interface SecureEnvelope {
  /** 1–64 code points. */
  peer: string;
  /** `SECURE_ENVELOPE_BYTES` bytes. */
  data: Uint8Array;
}
/** Phase 2: a commitment to this member's self-mask seed and an envelope for every other (C→S). */
export interface SecureShares {
  type: "secure_shares";
  round: number;
  /** `SECURE_COMMITMENT_BYTES` bytes. */
  commitment: Uint8Array;
  /** At most `MAX_ROUND_PEERS`, one per recipient (distinct `peer`s). */
  envelopes: SecureEnvelope[];
}
/** Phase 3: this member's masked input (C→S). */
export interface SecureInput {
  type: "secure_input";
  round: number;
  /** `length` uint32 words, little-endian: 4 to 4 · `MAX_SECURE_WORDS` bytes. */
  words: Uint8Array;
}
/** This member's share of `of`'s self-mask seed (`self`) or `s` key (`key`). */
export interface SecureShare {
  /** 1–64 code points. */
  of: string;
  kind: SecureShareKind;
  /** `SECURE_SHARE_BYTES` bytes. */
  share: Uint8Array;
}
/** Phase 4's answer: one share per survivor (`self`) and per dropped member (`key`) (C→S). */
export interface SecureReveal {
  type: "secure_reveal";
  round: number;
  /** At most `MAX_ROUND_PEERS`. */
  shares: SecureShare[];
}

// -- server → participant --------------------------------------------------------------------

/** One member of the round's roster. */
export interface SecureMember {
  /** 1–64 code points. */
  id: string;
  /** 1 to `MAX_ROUND_PEERS`. */
  position: number;
  /** `SECURE_PUBLIC_KEY_BYTES` bytes. */
  c_public: Uint8Array;
  /** `SECURE_PUBLIC_KEY_BYTES` bytes. */
  s_public: Uint8Array;
}
/** The roster of round `round` and its quantisation (docs/secure_aggregation.md §3, §6) (S→C). */
export interface SecureSetup {
  type: "secure_setup";
  round: number;
  /** 1 to `MAX_ROUND_PEERS` members, in order of id. */
  members: SecureMember[];
  /** 1 to `MAX_ROUND_PEERS`. */
  threshold: number;
  /** In (0, `MAX_SECURE_CLIP`] (a float64 on the wire). */
  clip: number;
  /** 1 to `MAX_SECURE_WEIGHT_CAP`. */
  weight_cap: number;
  /** 0 to `MAX_SECURE_BITS`: the scale is 2^bits. */
  bits: number;
  /** Words of a masked input, 1 to `MAX_SECURE_WORDS`. */
  length: number;
}
/** The members that shared (`senders`, each masks with exactly these) and the envelopes addressed to this member (S→C). */
export interface SecureInbox {
  type: "secure_inbox";
  round: number;
  /** At most `MAX_ROUND_PEERS`, distinct. */
  senders: string[];
  /** At most `MAX_ROUND_PEERS`; `peer` is each one's sender. */
  envelopes: SecureEnvelope[];
}
/** Phase 4: reveal the shares of `survivors`' seeds and of `dropped`'s keys (S→C). */
export interface SecureUnmask {
  type: "secure_unmask";
  round: number;
  /** At most `MAX_ROUND_PEERS`, distinct. */
  survivors: string[];
  /** At most `MAX_ROUND_PEERS`, distinct. */
  dropped: string[];
}
/** A member's commitment to its self-mask seed, as it sent it in `SecureShares`. */
export interface SecureCommitment {
  /** 1–64 code points. */
  peer: string;
  /** `SECURE_COMMITMENT_BYTES` bytes. */
  commitment: Uint8Array;
}
/** One survivor's `SecureReveal` shares, as the server relays them. */
export interface SecureRevealed {
  /** 1–64 code points: the survivor that revealed them. */
  peer: string;
  /** At most `MAX_ROUND_PEERS`. */
  shares: SecureShare[];
}
/**
 * Decentralized sessions: the split of round `round`, the survivors' commitments and the shares
 * of exactly `threshold` survivors — each peer unmasks the sum itself (S→C).
 */
export interface SecureReveals {
  type: "secure_reveals";
  round: number;
  /** At most `MAX_ROUND_PEERS`, distinct. */
  survivors: string[];
  /** At most `MAX_ROUND_PEERS`, distinct. */
  dropped: string[];
  /** At most `MAX_ROUND_PEERS`, one per survivor (distinct `peer`s). */
  commitments: SecureCommitment[];
  /** At most `MAX_ROUND_PEERS`, in the order they arrived (distinct `peer`s). */
  reveals: SecureRevealed[];
}
/** Round `round` ended without a result: too few members were left (`reason` says where) (S→C). */
export interface SecureAbort {
  type: "secure_abort";
  round: number;
  /** At most `MAX_SECURE_REASON` code points. */
  reason: string;
}

// -- peer ↔ peer -----------------------------------------------------------------------------

/**
 * Decentralized sessions, peer to peer: the sender's masked input of round `round` (`length`
 * uint32 words, little-endian) and the SHA-256 of those bytes (lowercase hex).
 */
export interface PeerMasked {
  type: "peer_masked";
  round: number;
  /** 4 to 4 · `MAX_SECURE_WORDS` bytes. */
  words: Uint8Array;
  /** 64 lowercase hex digits. */
  digest: string;
}

/** Messages that belong to capability `secure_aggregation` (`PeerMasked` travels between peers). */
export type SecureMessage =
  | SecureKeys
  | SecureSetup
  | SecureShares
  | SecureInbox
  | SecureInput
  | SecureUnmask
  | SecureReveal
  | SecureAbort
  | SecureReveals
  | PeerMasked;

/** Message types that belong to capability `secure_aggregation` (sorted), as Python's `SECURE_TYPES`. */
export const SECURE_TYPES = [
  "peer_masked",
  "secure_abort",
  "secure_inbox",
  "secure_input",
  "secure_keys",
  "secure_reveal",
  "secure_reveals",
  "secure_setup",
  "secure_shares",
  "secure_unmask",
] as const satisfies readonly SecureMessage["type"][];
