/**
 * The GPU layer on its own: the WebGPU runtime ({@linkcode Gpu}, {@linkcode Tensor}) and every
 * forward/backward kernel the encoder and the trainer are built from (matmul, layer norm, GELU,
 * softmax, attention, embedding gather/scatter, pooling, L2 normalisation, reductions, InfoNCE,
 * AdamW, gradient norm, f16 casts, retrieval ranking). Each kernel is a WGSL file in `kernels/`
 * bundled into the module graph (`deno task assets`), so it runs the same from a checkout, an
 * `http:` URL or JSR.
 *
 * @example Add two tensors on the GPU
 * ```ts
 * import { add, Gpu } from "@xlmr-webgpu/engine/kernels";
 * const gpu = await Gpu.create();
 * const a = gpu.fromArray(new Float32Array([1, 2, 3]), [3]);
 * const b = gpu.fromArray(new Float32Array([10, 20, 30]), [3]);
 * console.log(await gpu.read(add(gpu, a, b))); // Float32Array [11, 22, 33]
 * ```
 * @module
 */

export {
  f16BitsToF32,
  f32,
  Gpu,
  type GpuOptions,
  type GpuSettings,
  i32,
  type KernelSpec,
  NO_ADAPTER_HELP,
  type ParamValue,
  type RunOptions,
  u32,
} from "./runtime.ts";
export {
  type Access,
  type BindingDecl,
  type BindingSpec,
  type Kernel,
  kernel,
  kernels,
  type ProgramDecl,
  type UniformType,
} from "./spec.ts";
export type { MatmulSwitches, MatmulTiles } from "./options.ts";
export { type DType, DTYPE_BYTES, shapeSize, Tensor } from "./tensor.ts";
export { loadShader } from "./shader.ts";
export { add } from "./elementwise.ts";
export { dropout, dropoutKeep, dropoutKey } from "./dropout.ts";
export {
  linear,
  linearBackward,
  linearGelu,
  matmul,
  type MatmulOptions,
  type MatmulPlan,
  matmulPlan,
} from "./matmul.ts";
export {
  addLayerNorm,
  type AddLayerNormResult,
  layerNorm,
  layerNormBackward,
  type LayerNormResult,
} from "./layer_norm.ts";
export { gelu, geluBackward, tanh, tanhBackward } from "./gelu.ts";
export { softmax, softmaxBackward } from "./softmax.ts";
export {
  attention,
  attentionBackward,
  attentionBackwardPacked,
  type AttentionDims,
  attentionPacked,
} from "./attention.ts";
export {
  buildScatterPlan,
  gatherRows,
  releaseScatterPlan,
  scatterAddRows,
  type ScatterPlan,
} from "./embedding.ts";
export { poolFirst, poolFirstBackward, poolMean, poolMeanBackward } from "./pooling.ts";
export { l2Normalize, l2NormalizeBackward } from "./l2_norm.ts";
export { mean, type ReduceOptions, sum, sumOfSquares } from "./reduce.ts";
export { infoNce, type InfoNceOptions } from "./info_nce.ts";
export { type AdamWHyper, adamwStep } from "./adamw.ts";
export { gradNorm } from "./grad_norm.ts";
export { castF16ToF32, castF32ToF16 } from "./cast.ts";
export {
  countAhead,
  type RankOptions,
  type RankPairs,
  rankRelevant,
  type RankResult,
  scoreBlock,
} from "./retrieval_rank.ts";
export {
  applyLossScale,
  createLossScaleState,
  LOSS_SCALE_DEFAULTS,
  type LossScaleOptions,
  lossScaleOptions,
} from "./loss_scale.ts";
