/**
 * The wire protocol: message types, validation and the binary codec (docs/protocol.md), as
 * `disco.protocol` in Python: the messages of every session (`./messages.ts`,
 * `disco.protocol.messages`), those of decentralized sessions and the peer-to-peer frames
 * (`./peers.ts`, `disco.protocol.peers`), those of secure aggregation (`./secure.ts`,
 * `disco.protocol.secure`), which travel where (`./union.ts`, `disco.protocol.union`), and the
 * field rules that validate them (`./schema.ts`).
 */

export * from "./messages";
export * from "./peers";
export * from "./schema";
export * from "./secure";
export * from "./union";
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
