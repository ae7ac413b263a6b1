/**
 * The training layer on its own: parallel QA data ({@linkcode loadQaData}), the batch samplers
 * (monolingual X-X, cross-lingual X-Y, hybrid and language-similarity batches), the
 * learning-rate schedule, the contrastive {@linkcode Trainer} (InfoNCE with in-batch negatives,
 * AdamW, gradient clipping), the whole-run driver {@linkcode train} with checkpoints and resume,
 * α sweeps, and the device-memory planner.
 *
 * @example Draw hybrid batches from a two-language dataset
 * ```ts
 * import { BatchSampler, type QaDataset } from "@xlmr-webgpu/engine/training";
 * const data: QaDataset = {
 *   source: "inline",
 *   languages: ["de", "en"],
 *   items: ["1", "2", "3", "4"].map((id) => ({
 *     id,
 *     question: { en: `question ${id}`, de: `Frage ${id}` },
 *     answer: { en: `answer ${id}`, de: `Antwort ${id}` },
 *   })),
 * };
 * const sampler = new BatchSampler(data, { kind: "hybrid", alpha: 0.5, batchSize: 2, seed: 1 });
 * const batch = sampler.next();
 * console.log(batch.kind, batch.pairs.map((p) => `${p.queryLang}→${p.passageLang}`));
 * ```
 *
 * @example Fine-tune a checkpoint directory on a JSONL file
 * ```ts ignore
 * import { Gpu } from "@xlmr-webgpu/engine/kernels";
 * import { train } from "@xlmr-webgpu/engine/training";
 * const gpu = await Gpu.create();
 * await train(gpu, { model: "model/", train: "train.jsonl", out: "run/", sampler: "hybrid" });
 * ```
 * @module
 */

export { loadQaData, type QaDataset, type QaItem, writeQaJsonl } from "./data.ts";
export {
  alphaAt,
  type AlphaSchedule,
  type Batch,
  type BatchPair,
  BatchSampler,
  parseAlphaSchedule,
  type SamplerKind,
  type SamplerOptions,
} from "./sampler.ts";
export { learningRate, type ScheduleOptions, warmupFromRatio } from "./schedule.ts";
export {
  DEFAULT_TRAINER_OPTIONS,
  type StepStats,
  Trainer,
  type TrainerOptions,
} from "./trainer.ts";
export {
  findCheckpoint,
  listCheckpoints,
  type StepCallback,
  train,
  type TrainOptions,
  type TrainResult,
} from "./train.ts";
export { type AutoResumeOptions, trainWithAutoResume } from "./auto_resume.ts";
export { runSweep, type SweepResult, type SweepVariant } from "./sweep.ts";
export {
  findLeakage,
  type Leakage,
  LeakageError,
  normaliseText,
  type SelectBy,
  splitByFraction,
  validationBatches,
} from "./validation.ts";
export { languageSimilarity } from "./language_similarity.ts";
export {
  largestBatch,
  type MemoryPlan,
  memoryPlan,
  type MemoryPlanOptions,
  planConfig,
  type PlanConfigName,
  type SideActivations,
} from "./memory_plan.ts";
export {
  type LangsFrom,
  mineHardNegatives,
  type MineOptions,
  type MineResult,
  type MineStats,
} from "./mine.ts";
