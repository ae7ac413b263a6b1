/**
 * A WebGPU compute engine for multilingual dense retrieval: XLM-RoBERTa written from scratch as
 * WGSL compute shaders on Deno's native WebGPU. Load Hugging Face safetensors checkpoints,
 * tokenise with XLM-R's SentencePiece vocabulary, embed text, fine-tune with a contrastive loss on
 * hybrid (monolingual X-X + cross-lingual X-Y) batches, and evaluate retrieval by mAP on
 * XQuAD-R / MLQA-R in monolingual, cross-lingual and multilingual settings, with language bias.
 *
 * @example Embed two sentences with a Hugging Face checkpoint
 * ```ts ignore
 * import { Encoder, Gpu } from "./mod.ts";
 * const gpu = await Gpu.create();
 * const encoder = await Encoder.load(gpu, "xlm-roberta-base");
 * const emb = await encoder.embed([{ text: "Where is Paris?" }, { text: "Wo ist Paris?" }], {
 *   pooling: "mean",
 * });
 * ```
 *
 * @example Train with hybrid batches, then evaluate
 * ```ts ignore
 * import { evaluateLareqa, Gpu, loadLareqa, train } from "./mod.ts";
 * const gpu = await Gpu.create();
 * await train(gpu, { model: "xlm-roberta-base", train: "train.jsonl", out: "run", sampler: "hybrid", alpha: 0.5 });
 * ```
 * @module
 */

// GPU runtime and kernels
export {
  f32,
  Gpu,
  type GpuOptions,
  i32,
  type KernelSpec,
  NO_ADAPTER_HELP,
  u32,
} from "./kernels/runtime.ts";
export { type DType, Tensor } from "./kernels/tensor.ts";
export { add } from "./kernels/elementwise.ts";
export { linear, linearBackward, matmul, type MatmulOptions } from "./kernels/matmul.ts";
export { addLayerNorm, layerNorm, layerNormBackward } from "./kernels/layer_norm.ts";
export { gelu, geluBackward, tanh, tanhBackward } from "./kernels/gelu.ts";
export { softmax, softmaxBackward } from "./kernels/softmax.ts";
export { attention, attentionBackward, type AttentionDims } from "./kernels/attention.ts";
export {
  buildScatterPlan,
  gatherRows,
  releaseScatterPlan,
  scatterAddRows,
} from "./kernels/embedding.ts";
export { poolFirst, poolFirstBackward, poolMean, poolMeanBackward } from "./kernels/pooling.ts";
export { l2Normalize, l2NormalizeBackward } from "./kernels/l2_norm.ts";
export { mean, sum, sumOfSquares } from "./kernels/reduce.ts";
export { infoNce } from "./kernels/info_nce.ts";
export { type AdamWHyper, adamwStep } from "./kernels/adamw.ts";
export { gradNorm } from "./kernels/grad_norm.ts";

// Model
export {
  configToJson,
  isBert,
  loadConfig,
  maxSequenceLength,
  parseConfig,
  presetConfig,
  type XlmrConfig,
} from "./model/config.ts";
export { Checkpoint, SafetensorsFile, writeSafetensors } from "./model/safetensors.ts";
export { XlmrTokenizer } from "./model/tokenizer.ts";
export { WordPieceTokenizer } from "./model/wordpiece.ts";
export { loadTokenizer, type TextTokenizer } from "./model/text_tokenizer.ts";
export {
  newSentenceTransformers,
  readSentenceTransformers,
  type StFolder,
  writeSentenceTransformers,
} from "./model/sentence_transformers.ts";
export { XlmrParams } from "./model/params.ts";
export { initModelDir, randomWeights } from "./model/init.ts";
export { makeTokenBatch, type Pooling, type TokenBatch, XlmrModel } from "./model/xlmr.ts";
export { type EmbedInput, type EmbedOptions, Encoder } from "./model/encoder.ts";

// Training
export { loadQaData, type QaDataset, type QaItem } from "./training/data.ts";
export {
  type Batch,
  BatchSampler,
  type SamplerKind,
  type SamplerOptions,
} from "./training/sampler.ts";
export { learningRate } from "./training/schedule.ts";
export {
  DEFAULT_TRAINER_OPTIONS,
  type StepStats,
  Trainer,
  type TrainerOptions,
} from "./training/trainer.ts";
export { train, type TrainOptions, type TrainResult } from "./training/train.ts";
export { runSweep, type SweepVariant } from "./training/sweep.ts";

// Evaluation
export { type EmbedFn, evaluateBeir, evaluateLareqa, type LareqaReport } from "./eval/retrieval.ts";
export { type LareqaOptions, type LareqaSet, loadLareqa } from "./eval/lareqa.ts";
export { type BeirSet, loadBeir } from "./eval/beir.ts";
export { renderComparison, renderReport, writeReportDir } from "./eval/report.ts";
export { evaluateTatoeba, loadTatoeba, type TatoebaReport } from "./eval/tatoeba.ts";
export { compareRuns, type Comparison } from "./eval/compare.ts";
export { mineHardNegatives, type MineOptions } from "./training/mine.ts";

// Demo
export { runDemo } from "./demo/run.ts";
export { buildSyntheticCorpus } from "./demo/synthetic.ts";
