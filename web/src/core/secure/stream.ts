/**
 * The mask stream of a 32-byte key (docs/secure_aggregation.md §8): AES-256-CTR with an all-zero
 * initial counter block, encrypting 4L zero bytes, the keystream read as L little-endian uint32
 * words.
 *
 * WebCrypto's `AES-CTR` with `length` 64 increments the last 8 bytes of the counter block as a
 * big-endian integer, so block i of the stream has counter block `0⁸ ‖ u64be(i)`: the stream is
 * produced in chunks of `CHUNK_WORDS` words (a whole number of 16-byte blocks), chunk k starting
 * at block k · CHUNK_WORDS / 4, and added to or subtracted from a word vector as it comes, so a
 * mask never needs more than one chunk of extra memory.
 */

import { own } from "./bytes";
import { SecureAggregationError } from "./errors";

/** Words of keystream per WebCrypto call: 1 MiB, a whole number of AES blocks. */
export const CHUNK_WORDS = 1 << 18;

const BLOCK_WORDS = 4;

/** Whether this machine stores words little-endian (then the keystream's bytes are its words). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

async function importKey(key: Uint8Array): Promise<CryptoKey> {
  if (key.length !== 32) {
    throw new SecureAggregationError("key", `a mask key is 32 bytes, got ${key.length}`);
  }
  return crypto.subtle.importKey("raw", own(key), "AES-CTR", false, ["encrypt"]);
}

/** The counter block of AES block `block`: 8 zero bytes ‖ u64be(block). */
function counterBlock(block: number): Uint8Array<ArrayBuffer> {
  const counter = new Uint8Array(16);
  new DataView(counter.buffer).setBigUint64(8, BigInt(block), false);
  return counter;
}

/**
 * `target ± stream(key, target.length)`, word-wise mod 2^32, in place: `sign` 1 adds the stream,
 * −1 subtracts it. Returns `target`.
 */
export async function applyStream(target: Uint32Array, key: Uint8Array, sign: 1 | -1): Promise<Uint32Array> {
  const aesKey = await importKey(key);
  const zeros = new Uint8Array(4 * Math.min(CHUNK_WORDS, target.length));
  for (let start = 0; start < target.length; start += CHUNK_WORDS) {
    const count = Math.min(CHUNK_WORDS, target.length - start);
    const keystream = await crypto.subtle.encrypt(
      { name: "AES-CTR", counter: counterBlock(start / BLOCK_WORDS), length: 64 },
      aesKey,
      zeros.subarray(0, 4 * count),
    );
    const part = target.subarray(start, start + count);
    if (LITTLE_ENDIAN) {
      const words = new Uint32Array(keystream, 0, count);
      if (sign === 1) for (let i = 0; i < count; i++) part[i] = ((part[i] as number) + (words[i] as number)) >>> 0;
      else for (let i = 0; i < count; i++) part[i] = ((part[i] as number) - (words[i] as number)) >>> 0;
    } else {
      const view = new DataView(keystream);
      for (let i = 0; i < count; i++) part[i] = ((part[i] as number) + sign * view.getUint32(4 * i, true)) >>> 0;
    }
  }
  return target;
}

/** The mask stream of `key`: `words` uint32 words. */
export async function maskStream(key: Uint8Array, words: number): Promise<Uint32Array<ArrayBuffer>> {
  if (!Number.isSafeInteger(words) || words < 0) {
    throw new SecureAggregationError("value", `a mask has a whole number of words ≥ 0, got ${words}`);
  }
  const out = new Uint32Array(words);
  await applyStream(out, key, 1);
  return out;
}
