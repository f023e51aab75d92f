/**
 * The browser as a peer of a decentralized session (Python's `disco.decentralized`): the round
 * logic (`PeerClient`, on `PeerSession`), how a round's updates combine (`combineRound`), the peer
 * frames (`PeerExchange`) and the connections between peers (`RtcConnector` over WebRTC,
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
  type ConnectorFactory,
  type InitialModelFn,
  type PeerClientOptions,
  type PeerResult,
  type PeerTrainFn,
} from "./options";
export { PeerClient } from "./peer";
export { PEER_RULES, peerRefusal } from "./rules";
