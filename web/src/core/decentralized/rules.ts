/** Which aggregation rules a browser peer can combine with (kept apart: the app's pages read it without the peer code). */
import type { AggregationConfig } from "../aggregationTask";

/** The aggregation rules a browser peer can combine with. */
export const PEER_RULES: readonly string[] = ["mean"];

/**
 * Why this browser cannot take part in a decentralized task combined with `aggregation`, in
 * plain words; null when it can.
 */
export function peerRefusal(aggregation: Pick<AggregationConfig, "rule">): string | null {
  return PEER_RULES.includes(aggregation.rule)
    ? null
    : `this task combines with ${aggregation.rule}, which the browser cannot do yet; join it with disco train`;
}
