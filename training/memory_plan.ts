/**
 * Device-memory plan of one contrastive training step, in bytes, from the model configuration and
 * the batch shape alone. It counts what the engine really allocates: the parameters, one gradient
 * and two AdamW moments per parameter ({@linkcode Trainer} makes them with `params.like`), and the
 * activations that `model/xlmr.ts` saves for the backward pass, for the query and the passage
 * encodings together (both forward states are alive until the first backward starts).
 *
 * What is saved per layer and per encoding comes from the model's own inventories
 * (`LAYER_SAVED` and `ENCODING_SAVED` in model/xlmr.ts, which the compiler holds to the structures
 * the forward really fills), so a new saved tensor changes the plan by itself.
 *
 * Two ways to shrink the activations are planned as well:
 * - activation checkpointing keeps only each layer's input and recomputes the layer's internals
 *   during its backward, so one layer's full set is alive at a time;
 * - GradCache-style chunking encodes the whole batch without saving anything, computes the loss
 *   gradient with respect to the embeddings, then re-encodes `gradCacheChunk` sequences at a time
 *   with saved activations and backpropagates each chunk on its own.
 *
 * Mixed precision (`fp16`, `train --fp16`) is planned too: the saved activations named in
 * `MIXED_HALF_SAVED` (every [R, H] and [R, I] tensor of a layer, and the embedding sum) take 2 bytes
 * per element, so does each layer's input kept by checkpointing, and the f16 copies of the encoder's
 * linear-layer weights (model/half_weights.ts) are alive for the whole run. Master weights,
 * gradients and AdamW moments stay f32.
 * @module
 */
import { parameterSchema } from "../model/parameter_shapes.ts";
import { presetConfig, type XlmrConfig } from "../model/config.ts";
import { ENCODING_SAVED, LAYER_SAVED, MIXED_HALF_SAVED, savedBytes } from "../model/xlmr.ts";

/** The batch shape and the memory-saving strategy to plan for. */
export interface MemoryPlanOptions {
  /** Queries per step (B); each has one positive passage. */
  batchSize: number;
  /** Padded query length in tokens (T). */
  maxLength: number;
  /** Padded passage length; defaults to `maxLength`. */
  passageLength?: number;
  /** Hard negatives per query (extra passages); default 0. */
  hardNegatives?: number;
  /** Keep only layer inputs and recompute each layer in the backward pass. */
  checkpointing?: boolean;
  /** Sequences per GradCache chunk (0 or absent: no chunking). */
  gradCacheChunk?: number;
  /** The word-embedding table is frozen: no gradient and no moments for it. */
  freezeEmbeddings?: boolean;
  /**
   * Mixed precision (`TrainerOptions.fp16`): f16 saved activations and layer inputs, plus the f16
   * copies of the encoder's linear-layer weights. Default false.
   */
  fp16?: boolean;
}

/** Activation bytes of one encoding (queries or passages). */
export interface SideActivations {
  sequences: number;
  length: number;
  /** Bytes of one layer's saved set (all fifteen tensors; the [R, H] and [R, I] ones f16 with fp16). */
  perLayer: number;
  /** Bytes saved once per encoding: ids, positions, mask, embedding sum and stats, last state. */
  embeddings: number;
  /** Bytes this encoding keeps alive between its forward and its backward. */
  saved: number;
}

/** Result of {@linkcode memoryPlan}: bytes by category, plus the details behind them. */
export interface MemoryPlan {
  /** Scalar parameters of the model (pooler included). */
  parameterCount: number;
  parameters: number;
  gradients: number;
  adamState: number;
  /**
   * The f16 copies of the encoder's linear-layer weights that mixed precision's products read
   * (model/half_weights.ts), alive for the whole run; 0 without fp16.
   */
  halfWeights: number;
  /** Saved activations alive at the peak (both encodings, or one chunk with GradCache). */
  activations: number;
  /**
   * Transient buffers at the peak (the start of the first backward): the gradient of the layer
   * output, of the FFN activation, the pooled embeddings and the loss. With fp16 also the f32
   * values one layer's forward computes before rounding or storing them in f16 (its input, q, k, v,
   * context, attention projection, sum1, LayerNorm output and sum2 [R, H]; the FFN pre-activation
   * and GELU output [R, I]), for the rows of one forward pass: the buffer pool keeps them, and the
   * backward's transient f32 widenings of f16 saved tensors (q, k, v, ctx, sum1 [R, H] and inter
   * [R, I], one layer at a time) reuse them. An estimate, not an exact count of the buffer pool.
   */
  workspace: number;
  total: number;
  queries: SideActivations;
  passages: SideActivations;
  options: Required<MemoryPlanOptions>;
}

const F32 = 4;
const F16 = 2;
const NO_HALF: ReadonlySet<string> = new Set();

function positiveInt(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`memoryPlan: ${field} must be a positive integer, got ${v}`);
  }
}

/**
 * Bytes one encoding of `seqs` sequences of `len` tokens saves for its backward pass.
 * With `checkpointing` only each layer's input is kept; with `fp16` the tensors of
 * `MIXED_HALF_SAVED` and the layer inputs are f16.
 */
function side(
  c: XlmrConfig,
  seqs: number,
  len: number,
  checkpointing: boolean,
  fp16: boolean,
): SideActivations {
  // Sized from the model's own inventories of what it saves (model/xlmr.ts).
  const half = fp16 ? MIXED_HALF_SAVED : NO_HALF;
  const perLayer = savedBytes(LAYER_SAVED, c, seqs, len, half);
  const embeddings = savedBytes(ENCODING_SAVED, c, seqs, len, half);
  const layerInput = (fp16 ? F16 : F32) * seqs * len * c.hiddenSize;
  const saved = embeddings + c.numLayers * (checkpointing ? layerInput : perLayer);
  return { sequences: seqs, length: len, perLayer, embeddings, saved };
}

/**
 * The memory plan of one training step.
 *
 * @example
 * ```ts
 * import { presetConfig } from "../model/config.ts";
 * import { memoryPlan } from "./memory_plan.ts";
 * const plan = memoryPlan(presetConfig("base"), { batchSize: 100, maxLength: 128 });
 * console.log(plan.parameterCount); // 278043648
 * console.log((plan.total / 2 ** 30).toFixed(1), "GiB");
 * ```
 */
export function memoryPlan(config: XlmrConfig, options: MemoryPlanOptions): MemoryPlan {
  const o: Required<MemoryPlanOptions> = {
    passageLength: options.maxLength,
    hardNegatives: 0,
    checkpointing: false,
    gradCacheChunk: 0,
    freezeEmbeddings: false,
    fp16: false,
    ...options,
  };
  positiveInt("batchSize", o.batchSize);
  positiveInt("maxLength", o.maxLength);
  positiveInt("passageLength", o.passageLength);
  if (!Number.isInteger(o.hardNegatives) || o.hardNegatives < 0) {
    throw new RangeError(
      `memoryPlan: hardNegatives must be an integer ≥ 0, got ${o.hardNegatives}`,
    );
  }
  if (!Number.isInteger(o.gradCacheChunk) || o.gradCacheChunk < 0) {
    throw new RangeError(
      `memoryPlan: gradCacheChunk must be an integer ≥ 0, got ${o.gradCacheChunk}`,
    );
  }
  const H = config.hiddenSize, I = config.intermediateSize;
  let parameterCount = 0, wordTable = 0, halfWeightCount = 0;
  for (const { name, shape, f16 } of parameterSchema(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    parameterCount += n;
    if (name === "embeddings.word_embeddings.weight") wordTable = n;
    // The weights model/half_weights.ts copies to f16.
    if (f16 && name.startsWith("encoder.")) halfWeightCount += n;
  }
  const trained = o.freezeEmbeddings ? parameterCount - wordTable : parameterCount;
  const B = o.batchSize, P = o.batchSize * (1 + o.hardNegatives);
  const chunk = o.gradCacheChunk;
  // With GradCache only one chunk of one encoding holds saved activations at a time.
  const queries = side(
    config,
    chunk ? Math.min(chunk, B) : B,
    o.maxLength,
    o.checkpointing,
    o.fp16,
  );
  const passages = side(
    config,
    chunk ? Math.min(chunk, P) : P,
    o.passageLength,
    o.checkpointing,
    o.fp16,
  );
  const recompute = o.checkpointing
    ? Math.max(queries.perLayer, passages.perLayer) // one layer rebuilt at a time
    : 0;
  const saved = chunk ? Math.max(queries.saved, passages.saved) : queries.saved + passages.saved;
  const activations = saved + recompute;
  // At the start of the first backward: dh and dSum2 ([R, H]) and dAct ([R, I]) of the widest
  // encoding in flight, plus pooled/normalised embeddings and their gradients ([B+P, H] × 4, kept
  // whole by GradCache too) and the [B, P] logits.
  const R = Math.max(queries.sequences * queries.length, passages.sequences * passages.length);
  // With fp16, one layer's forward computes nine [R, H] and two [R, I] values in f32 before they
  // are rounded or stored in f16 (or released); the pool keeps those buffers, and the backward's
  // f32 widenings of saved f16 tensors (q, k, v, ctx, sum1, inter: at most 5 [R, H] + 1 [R, I] at
  // once) are served from them. One forward pass holds queries and passages together (the
  // trainer's joint encode, padded to the longer length), or one chunk with GradCache. Measured
  // with gpu.poolStats() at the start of the backward (tiny 32 × 64 tokens: 13.07 MiB free in the
  // pool under fp16 against 13.0 MiB here).
  const forwardRows = chunk ? R : (B + P) * Math.max(o.maxLength, o.passageLength);
  const widened = o.fp16 ? F32 * forwardRows * (9 * H + 2 * I) : 0;
  const workspace = F32 * (R * (2 * H + I) + 4 * (B + P) * H + B * P) + widened;
  const parameters = F32 * parameterCount;
  const halfWeights = o.fp16 ? F16 * halfWeightCount : 0;
  const gradients = F32 * trained;
  const adamState = 2 * F32 * trained;
  return {
    parameterCount,
    parameters,
    gradients,
    adamState,
    halfWeights,
    activations,
    workspace,
    total: parameters + gradients + adamState + halfWeights + activations + workspace,
    queries,
    passages,
    options: o,
  };
}

/** Configuration names the plan and step benchmarks accept. */
export type PlanConfigName = "tiny" | "small" | "base" | "large";

/**
 * A named configuration: the presets of model/config.ts plus "small" (hidden 256, 4 layers,
 * 4 heads, intermediate 1024, tiny's 16001-word vocabulary, 514 positions), the mid-size model the
 * step benchmark uses. `overrides` apply last (e.g. a smaller vocabulary).
 *
 * @example
 * ```ts
 * import { planConfig } from "./memory_plan.ts";
 * console.log(planConfig("small").hiddenSize); // 256
 * ```
 */
export function planConfig(name: PlanConfigName, overrides: Partial<XlmrConfig> = {}): XlmrConfig {
  if (name === "small") {
    return presetConfig("tiny", {
      hiddenSize: 256,
      numLayers: 4,
      numHeads: 4,
      intermediateSize: 1024,
      maxPositions: 514,
      ...overrides,
    });
  }
  if (name !== "tiny" && name !== "base" && name !== "large") {
    throw new TypeError(
      `planConfig: unknown configuration ${JSON.stringify(name)} (tiny|small|base|large)`,
    );
  }
  return presetConfig(name, overrides);
}

/**
 * The largest batch size whose plan total stays within `budgetBytes` (0 when even one query does
 * not fit), searching up to `limit`.
 *
 * @example
 * ```ts
 * import { presetConfig } from "../model/config.ts";
 * import { largestBatch } from "./memory_plan.ts";
 * const b = largestBatch(presetConfig("base"), { maxLength: 128 }, 16 * 2 ** 30);
 * console.log(b > 0);
 * ```
 */
export function largestBatch(
  config: XlmrConfig,
  options: Omit<MemoryPlanOptions, "batchSize">,
  budgetBytes: number,
  limit = 1 << 16,
): number {
  const fits = (b: number) => memoryPlan(config, { ...options, batchSize: b }).total <= budgetBytes;
  if (!fits(1)) return 0;
  let lo = 1, hi = limit;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
