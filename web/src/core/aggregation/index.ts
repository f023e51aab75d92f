/** Combining a round's updates in the browser, bit for bit as Python's `disco.aggregation`. */
export { AggregationError } from "./errors";
export type { AggregationErrorKind } from "./errors";
export {
  COUNT_LIMIT,
  COUNT_ROOM,
  FRACTION_BITS,
  MAX_CHANGE,
  MIN_MAX_SHARE,
  SCALE,
  combineMean,
} from "./mean";
export type { MeanOptions, TrainedUpdate } from "./mean";
export { cappedShares, comparePython } from "./shares";
