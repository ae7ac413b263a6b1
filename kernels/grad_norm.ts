/**
 * The global L2 norm of many gradient tensors, computed on the GPU with a fixed summation order
 * (bit-identical from run to run), together with the clip scale that PyTorch's
 * `clip_grad_norm_` applies. The result stays on the GPU: {@linkcode adamwStep} reads the scale
 * there, so clipping costs no host round trip.
 * @module
 */
import { f32, type Gpu, u32 } from "./runtime.ts";
import type { Tensor } from "./tensor.ts";

const SHADER = "grad_norm.wgsl";
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
  const partials = gpu.alloc([Math.max(total, 1)], "f32", "gradNorm.partials");
  let slot = 0;
  grads.forEach((g, i) => {
    gpu.dispatch({ shader: SHADER, entry: "partial" }, [g, partials], [u32(g.size), u32(slot)], [
      counts[i],
    ]);
    slot += counts[i];
  });
  const out = gpu.alloc([2], "f32", "gradNorm.out");
  gpu.dispatch({ shader: SHADER, entry: "finish" }, [partials, out], [u32(total), f32(maxNorm)], [
    1,
  ]);
  gpu.release(partials);
  return out;
}
