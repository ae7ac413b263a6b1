/**
 * The model layer on its own, for people who work below the {@linkcode Encoder}: configs, the
 * declared parameter schema, safetensors, tokenizers, the GPU parameter store and the XLM-R/BERT
 * forward and backward passes, and the float64 reference they are tested against.
 *
 * @example The declared parameters of a tiny model
 * ```ts
 * import { parameterSchema, presetConfig } from "@xlmr-webgpu/engine/model";
 * const schema = parameterSchema(presetConfig("tiny"));
 * const decayed = schema.filter((p) => p.decay).length;
 * console.log(schema.length, decayed); // every parameter, and those AdamW decays
 * ```
 * @module
 */
export {
  configToJson,
  isBert,
  loadConfig,
  maxSequenceLength,
  parseConfig,
  presetConfig,
  type XlmrConfig,
} from "./config.ts";
export {
  type InitKind,
  ParamBuilder,
  parameterSchema,
  parameterShapes,
  type ParamSpec,
} from "./parameter_shapes.ts";
export { Checkpoint, SafetensorsFile, writeSafetensors } from "./safetensors.ts";
export { XlmrTokenizer } from "./tokenizer.ts";
export { WordPieceTokenizer } from "./wordpiece.ts";
export { loadTokenizer, type TextTokenizer } from "./text_tokenizer.ts";
export {
  newSentenceTransformers,
  readSentenceTransformers,
  type StFolder,
  writeSentenceTransformers,
} from "./sentence_transformers.ts";
export { type Param, XlmrParams } from "./params.ts";
export { initModelDir, randomWeights } from "./init.ts";
export {
  makeTokenBatch,
  MIXED_HALF_SAVED,
  type Pooling,
  type TokenBatch,
  XlmrModel,
} from "./xlmr.ts";
export { HalfWeights } from "./half_weights.ts";
export { type EmbedInput, type EmbedOptions, Encoder } from "./encoder.ts";
export {
  referenceForward,
  referenceLoss,
  type RefLossOptions,
  type RefWeights,
} from "./xlmr_reference.ts";
