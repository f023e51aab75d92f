/**
 * The browser as a peer of a decentralized session (Python's `disco.decentralized`): the round
 * logic (`PeerClient`), the peer frames (`PeerExchange`) and the connections between peers
 * (`RtcConnector` over WebRTC, `MemoryConnector` in memory).
 */
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
export { ANSWER_TIMEOUT_MS, MODEL_TIMEOUT_MS, PeerExchange, digestOf, type PeerExchangeOptions, type PeerTraffic } from "./exchange";
export { compareIds, sortedIds } from "./notify";
export {
  PEER_CAPABILITIES,
  PEER_RULES,
  PeerClient,
  SLACK_MS,
  combineRound,
  peerRefusal,
  type ConnectorFactory,
  type InitialModelFn,
  type PeerClientEvent,
  type PeerClientOptions,
  type PeerResult,
  type PeerState,
  type PeerTrainFn,
  type RoundTiming,
} from "./peer";
