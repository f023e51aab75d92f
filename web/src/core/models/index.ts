/** The portable model realised in TF.js: build, compile, canonical weights in and out. */
export {
  ModelError,
  TF_LOSSES,
  buildModel,
  getWeights,
  getWeightsAsync,
  makeOptimizer,
  setWeights,
  weightSlots,
} from "./build";
export type { OptimizerInfo, WeightSlot } from "./build";
