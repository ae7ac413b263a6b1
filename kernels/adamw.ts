/**
 * One AdamW step on one parameter tensor, with PyTorch's semantics (decoupled weight decay
 * applied before the Adam update, bias-corrected moments, eps outside the square root) and
 * optional gradient clipping by a scale that is read on the GPU.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

/** Hyper-parameters of one step; `lr` and `step` change every step (they travel as uniforms). */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay; the caller passes 0 for biases and LayerNorm. */
  weightDecay: number;
  /** 1-based step number (for the bias corrections). */
  step: number;
}

const HYPER = {
  count: "u32",
  decay: "f32",
  beta1: "f32",
  beta2: "f32",
  one_minus_beta1: "f32",
  one_minus_beta2: "f32",
  step_size: "f32",
  bc2_sqrt: "f32",
  eps: "f32",
} as const;
const STATE = {
  param: "read_write",
  grad: "read",
  m: { access: "read_write", wgsl: "m1" },
  v: { access: "read_write", wgsl: "m2" },
} as const;
const ADAMW = kernels("adamw.wgsl", {
  step: { entries: ["step"], uniforms: HYPER, bindings: STATE },
  stepScaled: {
    entries: ["step_scaled"],
    uniforms: HYPER,
    bindings: { ...STATE, norm_scale: "read" },
  },
});

function checkHyper(h: AdamWHyper): void {
  const op = "adamwStep";
  for (const k of ["lr", "beta1", "beta2", "eps", "weightDecay", "step"] as const) {
    if (!Number.isFinite(h[k])) throw new RangeError(`${op}: h.${k} must be finite, got ${h[k]}`);
  }
  if (!(h.beta1 >= 0 && h.beta1 < 1) || !(h.beta2 >= 0 && h.beta2 < 1)) {
    throw new RangeError(`${op}: betas must be in [0, 1), got ${h.beta1}, ${h.beta2}`);
  }
  if (!Number.isInteger(h.step) || h.step < 1) {
    throw new RangeError(`${op}: h.step must be a 1-based integer, got ${h.step}`);
  }
  if (h.eps < 0 || h.lr < 0 || h.weightDecay < 0) {
    throw new RangeError(`${op}: lr, eps and weightDecay must be ≥ 0`);
  }
}

/**
 * Updates `param`, `m` and `v` in place: `p ← p·(1 − lr·wd)`, `m ← b1·m + (1−b1)·g`,
 * `v ← b2·v + (1−b2)·g²`, `p ← p − lr·(m/(1−b1^t)) / (sqrt(v/(1−b2^t)) + eps)`, where
 * `g = grad · normAndScale[1]` when `normAndScale` (from {@linkcode gradNorm}) is given. With
 * `normAndScale`, a non-finite norm (`normAndScale[0]` NaN or ±Inf) skips the update entirely on
 * the GPU — `param`, `m` and `v` keep their values — so a poisoned step needs no read-back to be
 * harmless; the caller learns of it when it reads the norm.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { adamwStep } from "./adamw.ts";
 * const gpu = await Gpu.create();
 * const param = gpu.fromArray(new Float32Array([1, -1]), [2]);
 * const grad = gpu.fromArray(new Float32Array([0.5, -0.5]), [2]);
 * const m = gpu.zeros([2]), v = gpu.zeros([2]);
 * const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
 * adamwStep(gpu, param, grad, m, v, h);
 * console.log(await gpu.read(param)); // ≈ [0.9, -0.9]: the first step moves by lr·sign(g)
 * gpu.release(param, grad, m, v);
 * ```
 */
export function adamwStep(
  gpu: Gpu,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  h: AdamWHyper,
  normAndScale?: Tensor | null,
): void {
  const op = "adamwStep";
  const named = { param, grad, m, v };
  for (const [name, t] of Object.entries(named)) {
    if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
    if (t.size !== param.size) {
      throw new RangeError(`${op}: ${name} ${t} does not match param ${param}`);
    }
  }
  if (normAndScale) {
    if (normAndScale.dtype !== "f32" || normAndScale.size < 2) {
      throw new RangeError(
        `${op}: normAndScale must be f32 [2] (norm, scale), got ${normAndScale}`,
      );
    }
  }
  checkHyper(h);
  const params = {
    count: param.size,
    decay: 1 - h.lr * h.weightDecay,
    beta1: h.beta1,
    beta2: h.beta2,
    one_minus_beta1: 1 - h.beta1,
    one_minus_beta2: 1 - h.beta2,
    step_size: h.lr / (1 - h.beta1 ** h.step),
    bc2_sqrt: Math.sqrt(1 - h.beta2 ** h.step),
    eps: h.eps,
  };
  const grid = Gpu.grid(Math.ceil(param.size / 256));
  if (normAndScale) {
    const tensors = { param, grad, m, v, norm_scale: normAndScale };
    gpu.run(ADAMW.stepScaled, {}, tensors, params, grid);
  } else {
    gpu.run(ADAMW.step, {}, { param, grad, m, v }, params, grid);
  }
}
