/**
 * The browser as a peer of a decentralized session (Python's `disco.decentralized`): the run
 * (`PeerClient`) and its rounds (`PeerRounds`, on `PeerSession`), a secure round's phases
 * (`securePeerRound`), how a round's updates combine (`combineRound`), the peer frames
 * (`PeerExchange`) and the connections between peers (`RtcConnector` over WebRTC,
 * `MemoryConnector` in memory).
 */
export { combineRound } from "./combine";
export {
  Connector,
  MemoryConnector,
  MemoryHub,
  RtcConnector,
  iceGathered,
  type ConnectOptions,
  type OnChannel,
  type PeerConnectionFactory,
  type PeerConnectionLike,
  type PeerConnectionState,
  type RtcConnectorOptions,
  type SendSignal,
} from "./connector";
export type { PeerClientEvent, PeerState, RoundTiming } from "./events";
export { ANSWER_TIMEOUT_MS, MODEL_TIMEOUT_MS, PeerExchange, digestOf, type PeerExchangeOptions, type PeerTraffic } from "./exchange";
export { compareIds, sortedIds } from "./notify";
export {
  PEER_CAPABILITIES,
  SLACK_MS,
  peerCapabilities,
  roundBoundMs,
  type ConnectorFactory,
  type InitialModelFn,
  type PeerClientOptions,
  type PeerResult,
  type PeerTrainFn,
} from "./options";
export { PeerClient } from "./peer";
export { PeerRounds } from "./rounds";
export { keepsBecause, secureKeys, securePeerRound, wordsOf, type SecureBox, type SecureHost, type SecureOutcome } from "./secure";
export { PEER_RULES, peerRefusal } from "./rules";
