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

// GPU runtime (the kernels themselves: the "./kernels" sub-path)
export { Gpu, type GpuOptions, NO_ADAPTER_HELP } from "./kernels/runtime.ts";
export { type DType, Tensor } from "./kernels/tensor.ts";

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
export { initModelDir } from "./model/init.ts";
export type { Pooling } from "./model/xlmr.ts";
// Parameters, the XLM-R/BERT passes and the float64 reference: the "./model" sub-path.
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
