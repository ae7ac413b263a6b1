/**
 * The global L2 norm of many gradient tensors, computed on the GPU with a fixed summation order
 * (bit-identical from run to run), together with the clip scale that PyTorch's
 * `clip_grad_norm_` applies. The result stays on the GPU: {@linkcode adamwStep} reads the scale
 * there, so clipping costs no host round trip.
 * @module
 */
import type { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

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
});
const WG = 256;
/** Workgroups per tensor at most; a fixed cap keeps the partial layout (and the sum) stable. */
const MAX_PARTIALS = 512;

/**
 * `[norm, scale]` with `norm = sqrt(Σ over all tensors of Σ g²)` and
 * `scale = min(1, maxNorm / (norm + 1e-6))`, or 1 when `maxNorm` is 0 (no clipping).
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
 */
export function gradNorm(gpu: Gpu, grads: Tensor[], maxNorm: number): Tensor {
  if (!Array.isArray(grads) || grads.length === 0) {
    throw new RangeError("gradNorm: grads must be a non-empty array of tensors");
  }
  grads.forEach((g, i) => {
    if (g.dtype !== "f32") throw new TypeError(`gradNorm: grads[${i}] must be f32, got ${g}`);
  });
  if (!(maxNorm >= 0) || !Number.isFinite(maxNorm)) {
    throw new RangeError(`gradNorm: maxNorm must be finite and ≥ 0, got ${maxNorm}`);
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
    const out = gpu.alloc([2], "f32", "gradNorm.out");
    gpu.run(GRAD_NORM.finish, {}, { partials, out }, { count: total, max_norm: maxNorm }, [1]);
    return out;
  }, "gradNorm");
}
