/**
 * Binary encoding of protocol messages (docs/protocol.md §2–§5), byte for byte as
 * `disco.protocol.codec` in Python: one msgpack map per frame with sorted keys, `v` the protocol
 * version, absent fields left out, float fields (metrics, mixing weights, deadlines, a secure
 * round's clip) as float64, nested maps (metrics, the peers of a round plan, a secure round's
 * members, envelopes and shares) with sorted keys too, binary fields (`Uint8Array`: keys,
 * envelopes, shares, masked words) as bin, weights as
 * `{data: bin (float32 LE, tensor after tensor), names: [str], shapes: [[int]]}`.
 */

import { ProtocolError, VersionError, WeightsError } from "../errors";
import { float32FromLE, float32LEBytes, shapeSize, Weights } from "../weights";
import { PROTOCOL_VERSION } from "./messages";
import { MsgBin, MsgFloat, readMsgpack, writeMsgpack, type MsgValue, type WireMap } from "./msgpack";
import { toWire, validateMessage } from "./schema";
import type { Message } from "./union";

/** Largest frame accepted by default (256 MiB), as the Python codec. */
export const DEFAULT_MAX_FRAME = 256 * 2 ** 20;
/** Most tensors in one weights map. */
export const MAX_TENSORS = 100_000;
/** Highest tensor rank. */
export const MAX_RANK = 8;

/** The msgpack-ready map of a `Weights` value (the values are not copied). */
export function encodeWeights(weights: Weights): WireMap {
  return {
    data: new MsgBin(weights.values.map(float32LEBytes)),
    names: [...weights.names],
    shapes: weights.shapes.map((s) => [...s]),
  };
}

/**
 * Encode a protocol message as one binary frame, in the canonical form (§3). The message is
 * validated first (a `ProtocolError` names any bad field); defaults (`name`, `kind`,
 * `capabilities`, `metrics`) are filled in and always written; absent optional fields are left
 * out; float fields (metrics, mixing weights, deadlines) are written as float64.
 */
export function encode(message: Message): Uint8Array<ArrayBuffer> {
  const clean = validateMessage(message, "cannot encode");
  return writeMsgpack({ ...toWire(clean, encodeWeights), v: PROTOCOL_VERSION });
}

/** A `Weights` value from its decoded map; throw `ProtocolError` on any inconsistency. */
export function decodeWeights(value: MsgValue): Weights {
  if (!(value instanceof Map) || value.size !== 3 || !["data", "names", "shapes"].every((k) => value.has(k))) {
    throw new ProtocolError("weights must be a map with exactly 'data', 'names' and 'shapes'");
  }
  const names = value.get("names");
  const shapes = value.get("shapes");
  const data = value.get("data");
  if (!Array.isArray(names) || !Array.isArray(shapes) || !(data instanceof Uint8Array)) {
    throw new ProtocolError("weights: 'names' and 'shapes' must be arrays, 'data' binary");
  }
  if (names.length > MAX_TENSORS) {
    throw new ProtocolError(`weights: ${names.length} tensors exceed the limit of ${MAX_TENSORS}`);
  }
  if (names.length !== shapes.length) {
    throw new ProtocolError(`weights: ${names.length} names but ${shapes.length} shapes`);
  }
  const sizes = names.map((name, i) => {
    const shape = shapes[i];
    const label = typeof name === "string" ? `'${name}'` : String(name);
    if (typeof name !== "string" || !Array.isArray(shape) || shape.length > MAX_RANK) {
      throw new ProtocolError(`weights: bad name or shape for tensor ${label}`);
    }
    if (!shape.every((d) => typeof d === "number" && d >= 0)) {
      const dims = shape.map((d) => (d instanceof MsgFloat ? d.value : d));
      throw new ProtocolError(`weights: tensor ${label} has invalid shape [${dims.join(", ")}]`);
    }
    return shapeSize(shape as number[]);
  });
  const need = 4 * sizes.reduce((a, b) => a + b, 0);
  if (need !== data.length) {
    throw new ProtocolError(`weights: shapes need ${need} bytes of data, the frame has ${data.length}`);
  }
  try {
    return Weights.fromFlat(names as string[], shapes as number[][], float32FromLE(data));
  } catch (exc) {
    if (exc instanceof WeightsError) throw new ProtocolError(`weights: ${exc.message}`, { cause: exc });
    throw exc;
  }
}

/**
 * Decode one binary frame into a message; throw `ProtocolError` (or its subclass `VersionError`
 * for a missing or other version) saying what is wrong. Tensor values are `Float32Array` views
 * of the frame where aligned, else of one copy of the data.
 */
export function decode(frame: Uint8Array | ArrayBuffer, maxSize = DEFAULT_MAX_FRAME): Message {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  if (bytes.length > maxSize) {
    throw new ProtocolError(`frame of ${bytes.length} bytes exceeds the limit of ${maxSize}`);
  }
  const obj = readMsgpack(bytes);
  if (!(obj instanceof Map)) throw new ProtocolError("frame must be a msgpack map");
  const version = obj.get("v");
  if (typeof version !== "number" || version !== PROTOCOL_VERSION) {
    const shown =
      version === undefined
        ? "(missing)"
        : version instanceof MsgFloat
          ? `${version.value} (a float)`
          : JSON.stringify(version);
    throw new VersionError(`protocol version ${shown} is not supported; this peer speaks ${PROTOCOL_VERSION}`);
  }
  const fields = new Map<string, unknown>(obj);
  fields.delete("v");
  const weights = obj.get("weights");
  if (weights !== undefined) fields.set("weights", decodeWeights(weights));
  return validateMessage(fields);
}
