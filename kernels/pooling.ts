/**
 * Sequence pooling of hidden states `h[B, T, H]` into one vector per sequence: the first token
 * (`<s>`, as the XLM-R pooler) or the mean over real tokens, forward and backward.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const DIMS = { b: "u32", t: "u32", h: "u32" } as const;
const POOLING = kernels("pooling.wgsl", {
  first: {
    entries: ["first", "first_backward"],
    uniforms: DIMS,
    bindings: { src: "read", dst: "read_write" },
  },
  mean: {
    entries: ["mean", "mean_backward"],
    uniforms: DIMS,
    bindings: { src: "read", dst: "read_write", mask: "read" },
  },
});

function checkF32(op: string, name: string, t: Tensor, rank: number, what: string): void {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  if (t.shape.length !== rank || t.size === 0) {
    throw new RangeError(`${op}: ${name} must be a non-empty ${what}, got ${t}`);
  }
}

function run(
  gpu: Gpu,
  entry: string,
  tensors: { src: Tensor; dst: Tensor; mask?: Tensor },
  b: number,
  t: number,
  h: number,
  n: number,
) {
  const k = tensors.mask ? POOLING.mean : POOLING.first;
  gpu.run(k, { entry }, tensors, { b, t, h }, Gpu.grid(Math.ceil(n / 256)));
}

/**
 * Token 0 of each sequence: `[B, T, H] → [B, H]`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { poolFirst } from "./pooling.ts";
 * const gpu = await Gpu.create();
 * const h = gpu.fromArray(new Float32Array([1, 2, 3, 4]), [1, 2, 2]);
 * console.log(await gpu.read(poolFirst(gpu, h))); // [1, 2]
 * ```
 */
export function poolFirst(gpu: Gpu, h: Tensor): Tensor {
  checkF32("poolFirst", "h", h, 3, "[B, T, H]");
  const [b, t, hidden] = h.shape;
  const out = gpu.alloc([b, hidden], "f32", "poolFirst.out");
  run(gpu, "first", { src: h, dst: out }, b, t, hidden, b * hidden);
  return out;
}

/**
 * Backward of {@linkcode poolFirst}: `[B, H] → [B, seq, H]`, zeros except token 0.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { poolFirstBackward } from "./pooling.ts";
 * const gpu = await Gpu.create();
 * const d = gpu.fromArray(new Float32Array([5, 6]), [1, 2]);
 * console.log(await gpu.read(poolFirstBackward(gpu, d, 2))); // [5, 6, 0, 0]
 * ```
 */
export function poolFirstBackward(gpu: Gpu, dPooled: Tensor, seq: number): Tensor {
  checkF32("poolFirstBackward", "dPooled", dPooled, 2, "[B, H]");
  if (!Number.isInteger(seq) || seq < 1) {
    throw new RangeError(`poolFirstBackward: seq must be an integer ≥ 1, got ${seq}`);
  }
  const [b, hidden] = dPooled.shape;
  const dh = gpu.alloc([b, seq, hidden], "f32", "poolFirstBackward.dh");
  run(gpu, "first_backward", { src: dPooled, dst: dh }, b, seq, hidden, b * seq * hidden);
  return dh;
}

function checkMask(op: string, mask: Tensor, b: number, t: number, other: Tensor): void {
  checkF32(op, "mask", mask, 2, "[B, T]");
  if (mask.shape[0] !== b || mask.shape[1] !== t) {
    throw new RangeError(`${op}: mask ${mask} must be [${b}, ${t}] to match ${other}`);
  }
}

/**
 * Masked mean over tokens: `out[b] = Σ_t mask[b,t]·h[b,t] / max(Σ_t mask[b,t], 1e-9)` with
 * `mask` f32 `[B, T]` (1 for real tokens, 0 for padding; a sequence with no real token gives 0).
 * Padding positions are skipped, so whatever they hold (even NaN) does not leak in.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { poolMean } from "./pooling.ts";
 * const gpu = await Gpu.create();
 * const h = gpu.fromArray(new Float32Array([2, 4, 9]), [1, 3, 1]);
 * const mask = gpu.fromArray(new Float32Array([1, 1, 0]), [1, 3]);
 * console.log(await gpu.read(poolMean(gpu, h, mask))); // [3]
 * ```
 */
export function poolMean(gpu: Gpu, h: Tensor, mask: Tensor): Tensor {
  checkF32("poolMean", "h", h, 3, "[B, T, H]");
  const [b, t, hidden] = h.shape;
  checkMask("poolMean", mask, b, t, h);
  const out = gpu.alloc([b, hidden], "f32", "poolMean.out");
  run(gpu, "mean", { src: h, dst: out, mask }, b, t, hidden, b * hidden);
  return out;
}

/**
 * Backward of {@linkcode poolMean} with respect to `h`: `dh[b,t] = mask[b,t]·dPooled[b] / count`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { poolMeanBackward } from "./pooling.ts";
 * const gpu = await Gpu.create();
 * const d = gpu.fromArray(new Float32Array([6]), [1, 1]);
 * const mask = gpu.fromArray(new Float32Array([1, 1, 0]), [1, 3]);
 * console.log(await gpu.read(poolMeanBackward(gpu, d, mask))); // [3, 3, 0]
 * ```
 */
export function poolMeanBackward(gpu: Gpu, dPooled: Tensor, mask: Tensor): Tensor {
  checkF32("poolMeanBackward", "dPooled", dPooled, 2, "[B, H]");
  const [b, hidden] = dPooled.shape;
  checkF32("poolMeanBackward", "mask", mask, 2, "[B, T]");
  const t = mask.shape[1];
  checkMask("poolMeanBackward", mask, b, t, dPooled);
  const dh = gpu.alloc([b, t, hidden], "f32", "poolMeanBackward.dh");
  run(gpu, "mean_backward", { src: dPooled, dst: dh, mask }, b, t, hidden, b * hidden);
  return dh;
}
