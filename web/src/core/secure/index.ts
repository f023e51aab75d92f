/**
 * Secure aggregation in the browser (docs/secure_aggregation.md), byte for byte as Python's
 * `disco.secure`: quantisation into 32-bit words, P-256 keys and ECDH, HKDF, AES-CTR mask streams,
 * Shamir shares over 2^256 + 297, AES-GCM share envelopes, and double masking; and one round's four
 * phases (§6, §10) for a participant (`SecureParticipant`) and for the aggregator (`SecureSum`, which
 * a peer of a decentralized round starts with `SecureSum.following`), ending with the new model
 * (`secureMean`).
 */
export { RoundAborted, SecureAggregationError } from "./errors";
export type { SecureAggregationErrorKind } from "./errors";
export { bigintToBytes, bytesToBigint, concat, fromHex, toHex, u32be, u64be, utf8 } from "./bytes";
export { DEFAULT_WEIGHT_CAP, MIN_SCALE_BITS, clampWeight, decode, quantize, scaleBits } from "./quantize";
export type { DecodedSum } from "./quantize";
export {
  CURVE_ORDER,
  PUBLIC_KEY_BYTES,
  SCALAR_BYTES,
  checkPublicKey,
  ecdh,
  generateKeyPair,
  importPrivateKey,
  importPublicKey,
  publicKeyOf,
} from "./keys";
export type { KeyPair } from "./keys";
export { INFO, SALT_LABEL, hkdf, roundSalt } from "./kdf";
export type { HkdfInfo } from "./kdf";
export { CHUNK_WORDS, applyStream, maskStream } from "./stream";
export {
  FIELD_PRIME,
  SECRET_BYTES,
  SHARE_BYTES,
  decodeShare,
  encodeShare,
  randomFieldElement,
  reconstruct,
  split,
} from "./shamir";
export type { Share } from "./shamir";
export {
  CIPHERTEXT_BYTES,
  PLAINTEXT_BYTES,
  openShares,
  packShares,
  sealShares,
  unpackShares,
} from "./envelope";
export type { EnvelopeContext, SharePair } from "./envelope";
export {
  addWords,
  maskedInput,
  pairwiseKey,
  pairwiseMaskOfDropped,
  selfMask,
  subtractWords,
  unmaskSum,
} from "./masking";
export type { RosterEntry, Unmasking } from "./masking";
export {
  COMMITMENT_BYTES,
  MIN_MEMBERS,
  checkRoster,
  commitment,
  compareIds,
  memberIds,
  memberOf,
  positions,
  sortedIds,
  thresholdFor,
} from "./roster";
export type { Member, RoundSetup } from "./roster";
export { SecureParticipant } from "./participant";
export type { ParticipantOptions, PublicKeys, RevealedShare, ShareKind, SharesOut } from "./participant";
export { SecureSum } from "./aggregator";
export type { RoundPhase, RoundSplit, SecureSumOptions } from "./aggregator";
export { addChange, meanChange, secureMean } from "./mean";
export type { MeanChange, SecureMean } from "./mean";
