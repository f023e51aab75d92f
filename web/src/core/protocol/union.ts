/**
 * Which messages travel where — client → server, server → client, peer ↔ peer — as Python's
 * `disco.protocol.union`, and which belong to a capability (`decentralized`,
 * `secure_aggregation`).
 */

import type { ErrorMessage, Hello, Leave, ModelUpdate, RoundResult, Status, UpdateAck, Welcome } from "./messages";
import type {
  Combine,
  DigestReport,
  Exchange,
  ModelRequest,
  PeerAck,
  PeerModel,
  PeerUpdate,
  Ready,
  Received,
  Resync,
  RoundPlan,
  Signal,
} from "./peers";
import type {
  PeerMasked,
  SecureAbort,
  SecureInbox,
  SecureInput,
  SecureKeys,
  SecureMessage,
  SecureReveal,
  SecureReveals,
  SecureSetup,
  SecureShares,
  SecureUnmask,
} from "./secure";

// -- which messages travel where -------------------------------------------------------------

/** Messages a participant sends to the server. */
export type ClientMessage =
  | Hello
  | ModelUpdate
  | Leave
  | Signal
  | Ready
  | Received
  | DigestReport
  | SecureKeys
  | SecureShares
  | SecureInput
  | SecureReveal;
/** Messages a server sends to a participant. */
export type ServerMessage =
  | Welcome
  | Status
  | UpdateAck
  | RoundResult
  | ErrorMessage
  | RoundPlan
  | Signal
  | Exchange
  | Combine
  | Resync
  | SecureSetup
  | SecureInbox
  | SecureUnmask
  | SecureAbort
  | SecureReveals;
/** Messages between two peers, on their own channel (never through the server). */
export type PeerMessage = PeerUpdate | PeerAck | ModelRequest | PeerModel | PeerMasked | ErrorMessage;
/** Messages between server and client that belong to capability `decentralized`. */
export type DecentralizedMessage = RoundPlan | Signal | Ready | Exchange | Received | Combine | DigestReport | Resync;
/** Every protocol message. */
export type Message = ClientMessage | ServerMessage | PeerMessage;
/** The wire `type` of a message. */
export type MessageType = Message["type"];

/** Message types between server and client that belong to capability `decentralized` (sorted). */
export const DECENTRALIZED_TYPES = [
  "combine",
  "digest",
  "exchange",
  "plan",
  "ready",
  "received",
  "resync",
  "signal",
] as const satisfies readonly DecentralizedMessage["type"][];
/** Message types that travel only between two peers, sorted (`error` may too). */
export const PEER_TYPES = ["model", "model_request", "peer_ack", "peer_masked", "peer_update"] as const satisfies readonly Exclude<
  PeerMessage["type"],
  "error"
>[];

// Each set is checked against its union type: a missing or extra type does not compile.
const CLIENT_SENDS: Record<ClientMessage["type"], true> = {
  hello: true,
  update: true,
  leave: true,
  signal: true,
  ready: true,
  received: true,
  digest: true,
  secure_keys: true,
  secure_shares: true,
  secure_input: true,
  secure_reveal: true,
};
const SERVER_SENDS: Record<ServerMessage["type"], true> = {
  welcome: true,
  status: true,
  ack: true,
  result: true,
  error: true,
  plan: true,
  signal: true,
  exchange: true,
  combine: true,
  resync: true,
  secure_setup: true,
  secure_inbox: true,
  secure_unmask: true,
  secure_abort: true,
  secure_reveals: true,
};
const PEER_SENDS: Record<PeerMessage["type"], true> = {
  peer_update: true,
  peer_ack: true,
  model_request: true,
  model: true,
  peer_masked: true,
  error: true,
};
const DECENTRALIZED: Record<DecentralizedMessage["type"], true> = {
  plan: true,
  signal: true,
  ready: true,
  exchange: true,
  received: true,
  combine: true,
  digest: true,
  resync: true,
};
const SECURE: Record<SecureMessage["type"], true> = {
  secure_keys: true,
  secure_setup: true,
  secure_shares: true,
  secure_inbox: true,
  secure_input: true,
  secure_unmask: true,
  secure_reveal: true,
  secure_abort: true,
  secure_reveals: true,
  peer_masked: true,
};

// -- where messages travel -----------------------------------------------------------------

/** Whether `message` is one a server sends (the messages a client must accept). */
export function isServerMessage(message: Message): message is ServerMessage {
  return Object.hasOwn(SERVER_SENDS, message.type);
}
/** Whether `message` is one a client sends to the server (the messages a server must accept). */
export function isClientMessage(message: Message): message is ClientMessage {
  return Object.hasOwn(CLIENT_SENDS, message.type);
}
/** Whether `message` is one that travels between two peers (`error` included). */
export function isPeerMessage(message: Message): message is PeerMessage {
  return Object.hasOwn(PEER_SENDS, message.type);
}
/** Whether `message` belongs to capability `decentralized` (between server and client). */
export function isDecentralizedMessage(message: Message): message is DecentralizedMessage {
  return Object.hasOwn(DECENTRALIZED, message.type);
}
/** Whether `message` belongs to capability `secure_aggregation` (`peer_masked` travels between peers). */
export function isSecureMessage(message: Message): message is SecureMessage {
  return Object.hasOwn(SECURE, message.type);
}
