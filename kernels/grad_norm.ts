/**
 * The global L2 norm of many gradient tensors, computed on the GPU with a fixed summation order
 * (bit-identical from run to run), together with the clip scale that PyTorch's
 * `clip_grad_norm_` applies. The result stays on the GPU: {@linkcode adamwStep} reads the scale
 * there, so clipping costs no host round trip. Under mixed precision the gradients carry a loss
 * scale, and the same finishing dispatch unscales the result and updates the scale on the GPU (see
 * `loss_scale.ts`).
 * @module
 */
import type { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";
import { type LossScaleOptions, lossScaleOptions } from "./loss_scale.ts";

const GRAD_NORM = kernels("grad_norm.wgsl", {
  partial: {
    entries: ["partial"],
    uniforms: { count: "u32", slot: "u32" },
    params: "pp",
    bindings: {
      grad: { access: "read", wgsl: "pa_grad" },
      partials: { access: "read_write", wgsl: "pa_partials" },
    },
  },
  finish: {
    entries: ["finish"],
    uniforms: { count: "u32", max_norm: "f32" },
    params: "fp",
    bindings: {
      partials: { access: "read", wgsl: "fi_partials" },
      out: { access: "read_write", wgsl: "fi_out" },
    },
  },
  finishScaled: {
    entries: ["finish_scaled"],
    uniforms: {
      count: "u32",
      max_norm: "f32",
      growth_interval: "f32",
      growth_factor: "f32",
      backoff_factor: "f32",
    },
    params: "fs",
    bindings: {
      partials: { access: "read", wgsl: "fi_partials" },
      out: { access: "read_write", wgsl: "fi_out" },
      state: { access: "read_write", wgsl: "fs_state" },
    },
  },
});
const WG = 256;
/** Workgroups per tensor at most; a fixed cap keeps the partial layout (and the sum) stable. */
const MAX_PARTIALS = 512;

/**
 * `[norm, scale]` with `norm = sqrt(Σ over all tensors of Σ g²)` and
 * `scale = min(1, maxNorm / (norm + 1e-6))`, or 1 when `maxNorm` is 0 (no clipping).
 *
 * With `scaler` (mixed precision), the gradients are taken to carry the loss scale
 * `s = scaler.state[0]` (see {@linkcode createLossScaleState}), and the result is f32 `[3]`:
 * `[norm / s, scale / s, s]`, where `norm / s` is the norm of the unscaled gradients and `scale`
 * is computed from it, so {@linkcode adamwStep}'s `g · out[1]` is the clipped unscaled gradient.
 * The same dispatch then updates `scaler.state` in place as PyTorch's `GradScaler` does: a
 * non-finite norm (an inf/NaN gradient, which also makes AdamW skip the step) multiplies the scale
 * by `backoffFactor` and resets the clean-step counter; otherwise the counter grows, and when it
 * reaches `growthInterval` the scale is multiplied by `growthFactor` (unless that overflows f32)
 * and the counter resets.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { gradNorm } from "./grad_norm.ts";
 * const gpu = await Gpu.create();
 * const a = gpu.fromArray(new Float32Array([3]), [1]);
 * const b = gpu.fromArray(new Float32Array([4]), [1]);
 * const ns = gradNorm(gpu, [a, b], 1);
 * console.log(await gpu.read(ns)); // Float32Array [5, ~0.2]
 * gpu.release(a, b, ns);
 * ```
 *
 * @example With a loss scale
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { gradNorm } from "./grad_norm.ts";
 * import { createLossScaleState } from "./loss_scale.ts";
 * const gpu = await Gpu.create();
 * const state = createLossScaleState(gpu, 1024);
 * const g = gpu.fromArray(new Float32Array([3 * 1024, 4 * 1024]), [2]); // gradients · 1024
 * const out = gradNorm(gpu, [g], 0, { state, growthInterval: 1 });
 * console.log(await gpu.read(out)); // Float32Array [5, 1/1024, 1024]: norm, 1/s, s
 * console.log(await gpu.read(state)); // Float32Array [2048, 0]: one clean step grew the scale
 * gpu.release(state, g, out);
 * ```
 */
export function gradNorm(
  gpu: Gpu,
  grads: Tensor[],
  maxNorm: number,
  scaler?: LossScaleOptions & { state: Tensor },
): Tensor {
  if (!Array.isArray(grads) || grads.length === 0) {
    throw new RangeError("gradNorm: grads must be a non-empty array of tensors");
  }
  grads.forEach((g, i) => {
    if (g.dtype !== "f32") throw new TypeError(`gradNorm: grads[${i}] must be f32, got ${g}`);
  });
  if (!(maxNorm >= 0) || !Number.isFinite(maxNorm)) {
    throw new RangeError(`gradNorm: maxNorm must be finite and ≥ 0, got ${maxNorm}`);
  }
  const scaling = scaler ? lossScaleOptions(scaler, "gradNorm: scaler") : null;
  if (scaler && (scaler.state?.dtype !== "f32" || scaler.state.size !== 2)) {
    throw new TypeError(
      `gradNorm: scaler.state must be f32 [2] (scale, clean steps), got ${scaler.state}`,
    );
  }
  const counts = grads.map((g) => Math.min(Math.ceil(g.size / WG), MAX_PARTIALS));
  const total = counts.reduce((a, b) => a + b, 0);
  return gpu.scope(() => {
    const partials = gpu.alloc([Math.max(total, 1)], "f32", "gradNorm.partials");
    let slot = 0;
    grads.forEach((g, i) => {
      gpu.run(GRAD_NORM.partial, {}, { grad: g, partials }, { count: g.size, slot }, [counts[i]]);
      slot += counts[i];
    });
    if (scaler && scaling) {
      const out = gpu.alloc([3], "f32", "gradNorm.out");
      const uniforms = {
        count: total,
        max_norm: maxNorm,
        growth_interval: scaling.growthInterval,
        growth_factor: scaling.growthFactor,
        backoff_factor: scaling.backoffFactor,
      };
      gpu.run(GRAD_NORM.finishScaled, {}, { partials, out, state: scaler.state }, uniforms, [1]);
      return out;
    }
    const out = gpu.alloc([2], "f32", "gradNorm.out");
    gpu.run(GRAD_NORM.finish, {}, { partials, out }, { count: total, max_norm: maxNorm }, [1]);
    return out;
  }, "gradNorm");
}
