/** The portable model realised in TF.js: build, compile, canonical weights in and out. */
export {
  ModelError,
  TF_LOSSES,
  buildModel,
  getWeights,
  getWeightsAsync,
  isTokenModel,
  makeOptimizer,
  nextTokenLoss,
  setWeights,
  takesTokens,
  weightSlots,
} from "./build";
export { LayerNorm, TiedOutput, TokenEmbedding, TransformerBlock } from "./gpt";
export type { OptimizerInfo, WeightSlot } from "./build";
