/** The wire protocol: message types, validation and the binary codec (docs/protocol.md). */

export * from "./messages";
export {
  DEFAULT_MAX_FRAME,
  MAX_RANK,
  MAX_TENSORS,
  decode,
  decodeWeights,
  encode,
  encodeWeights,
} from "./codec";
export { MsgBin, MsgFloat, readMsgpack, writeMsgpack } from "./msgpack";
export type { MsgValue, WireMap, WireValue } from "./msgpack";
