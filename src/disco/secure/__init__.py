"""Secure aggregation's primitives: the aggregator learns the sum of the updates, not one of them.

Double masking after Bonawitz et al. (CCS 2017) over 32-bit words; the construction and every
encoding are in docs/secure_aggregation.md, and tests/vectors/secure_aggregation.json pins them
for Python and the browser alike.

- `quantize`: float32 updates as weighted fixed-point words, and the sum decoded;
- `keys`: P-256 key pairs, ECDH, the round salt and the keys HKDF derives;
- `shamir`: 32-byte secrets split into shares over GF(2^256 + 297);
- `envelope`: a participant's two shares for another, sealed with AES-256-GCM;
- `stream`: the AES-256-CTR mask stream of a key;
- `masking`: masked inputs, and the masks the aggregator removes from the sum;
- `roster`: who takes part in a round, the threshold, and the checks every member makes;
- `participant` and `aggregator`: one round's four phases for a participant (`SecureParticipant`)
  and for whoever aggregates (`SecureSum`), without I/O.
"""

from disco.secure.envelope import (
    ENVELOPE_BYTES,
    SHARE_PAIR_BYTES,
    open_shares,
    seal_shares,
)
from disco.secure.keys import (
    PUBLIC_KEY_BYTES,
    PrivateKey,
    PublicKey,
    derive_key,
    ecdh,
    generate_private_key,
    pairwise_mask_key,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    round_salt,
    self_mask_key,
    share_encryption_key,
)
from disco.secure.masking import (
    Roster,
    masked_input,
    pairwise_mask,
    pairwise_mask_of_dropped,
    self_mask,
)
from disco.secure.quantize import MIN_SCALE_BITS, decode, quantize, scale_bits
from disco.secure.shamir import PRIME, SHARE_BYTES, Share, reconstruct, split
from disco.secure.stream import Words, add_stream, mask_stream

__all__ = [
    "ENVELOPE_BYTES",
    "MIN_SCALE_BITS",
    "PRIME",
    "PUBLIC_KEY_BYTES",
    "SHARE_BYTES",
    "SHARE_PAIR_BYTES",
    "PrivateKey",
    "PublicKey",
    "Roster",
    "Share",
    "Words",
    "add_stream",
    "decode",
    "derive_key",
    "ecdh",
    "generate_private_key",
    "mask_stream",
    "masked_input",
    "open_shares",
    "pairwise_mask",
    "pairwise_mask_key",
    "pairwise_mask_of_dropped",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "quantize",
    "reconstruct",
    "round_salt",
    "scale_bits",
    "seal_shares",
    "self_mask",
    "self_mask_key",
    "share_encryption_key",
    "split",
]
