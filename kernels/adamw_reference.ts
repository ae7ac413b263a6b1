/**
 * Float64 CPU references for AdamW (PyTorch semantics) and the global gradient norm with
 * `clip_grad_norm_`'s scale.
 * @module
 */
import type { AdamWHyper } from "./adamw.ts";

/**
 * One AdamW step in float64, updating `param`, `m` and `v` in place; the gradient is multiplied
 * by `scale` first (clipping).
 *
 * @example
 * ```ts
 * import { adamwReference } from "./adamw_reference.ts";
 * const p = new Float64Array([1]), m = new Float64Array(1), v = new Float64Array(1);
 * const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0, step: 1 };
 * adamwReference(p, [2], m, v, h);
 * console.log(p[0]); // 0.9
 * ```
 */
export function adamwReference(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  h: AdamWHyper,
  scale = 1,
): void {
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * scale;
    param[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    param[i] -= (h.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + h.eps);
  }
}

/**
 * Global L2 norm over several gradient arrays and the clip scale
 * `min(1, maxNorm / (norm + 1e-6))` (1 when `maxNorm` is 0), in float64.
 *
 * @example
 * ```ts
 * import { gradNormReference } from "./adamw_reference.ts";
 * console.log(gradNormReference([[3], [4]], 10)); // { norm: 5, scale: 1 }
 * ```
 */
export function gradNormReference(
  grads: ArrayLike<number>[],
  maxNorm: number,
): { norm: number; scale: number } {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  const norm = Math.sqrt(sum);
  return { norm, scale: maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1 };
}
