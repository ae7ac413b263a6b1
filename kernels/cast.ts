/**
 * Casts between f32 and f16 tensors (`cast.wgsl`): f16 storage halves the memory and bandwidth of
 * weights that products read through `linear` / `matmul`, which widen them back to f32 on load.
 * The kernels use WGSL's packing builtins, so they run with or without `shader-f16`.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const f16Words = { type: "u32", dtype: "f16" } as const;
const CAST = kernels("cast.wgsl", {
  toF16: {
    entries: ["to_f16"],
    uniforms: { count: "u32" },
    bindings: {
      src: { access: "read", wgsl: "src32" },
      dst: { access: "read_write", ...f16Words, wgsl: "dst16" },
    },
  },
  round: {
    entries: ["round_f16"],
    uniforms: { count: "u32" },
    bindings: {
      src: { access: "read_write", wgsl: "x32" },
      dst: { access: "read_write", ...f16Words, wgsl: "dst16" },
    },
  },
  toF32: {
    entries: ["to_f32"],
    uniforms: { count: "u32" },
    bindings: {
      src: { access: "read", ...f16Words, wgsl: "src16" },
      dst: { access: "read_write", wgsl: "dst32" },
    },
  },
});

function check(op: string, t: Tensor, want: "f32" | "f16", out: Tensor | undefined): void {
  if (t.dtype !== want) throw new TypeError(`${op}: input must be ${want}, got ${t}`);
  if (!out) return;
  const other = want === "f32" ? "f16" : "f32";
  if (out.dtype !== other) throw new TypeError(`${op}: out must be ${other}, got ${out}`);
  if (out.size !== t.size) {
    throw new RangeError(`${op}: out ${out} does not hold the ${t.size} elements of ${t}`);
  }
  if (out.buffer === t.buffer) {
    throw new RangeError(`${op}: out ${out} must not share a buffer with the input ${t}`);
  }
}

/**
 * One pass of a cast program over `t` (one thread per 32-bit word, as the WGSL packs two halves
 * per word) into `out` or a new tensor of the other dtype.
 */
function castPass(
  gpu: Gpu,
  program: typeof CAST.toF16,
  op: string,
  t: Tensor,
  from: "f32" | "f16",
  out: Tensor | undefined,
  label: string,
): Tensor {
  check(op, t, from, out);
  const y = out ?? gpu.alloc(t.shape, from === "f32" ? "f16" : "f32", label);
  const words = Math.ceil(t.size / 2);
  gpu.run(program, {}, { src: t, dst: y }, { count: t.size }, Gpu.grid(Math.ceil(words / 256)));
  return y;
}

/**
 * An f16 copy of an f32 tensor, same shape (into `out` when given). Values round to a
 * neighbouring f16 (round-to-nearest-even on lavapipe; WGSL leaves the choice of neighbour to the
 * adapter); finite values beyond ±65504 saturate to ±65504, and so do ±Infinity.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { castF32ToF16 } from "./cast.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 0.1, 1e6]), [3]);
 * const h = castF32ToF16(gpu, x);
 * console.log(h.dtype, await gpu.read(h)); // "f16" Float32Array [1, 0.0999755859375, 65504]
 * ```
 */
export function castF32ToF16(gpu: Gpu, t: Tensor, out?: Tensor): Tensor {
  return castPass(gpu, CAST.toF16, "castF32ToF16", t, "f32", out, "cast.f16");
}

/**
 * An f32 copy of an f16 tensor, same shape (into `out` when given); exact.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { castF16ToF32, castF32ToF16 } from "./cast.ts";
 * const gpu = await Gpu.create();
 * const h = castF32ToF16(gpu, gpu.fromArray(new Float32Array([0.5, -2]), [2]));
 * console.log(await gpu.read(castF16ToF32(gpu, h))); // Float32Array [0.5, -2]
 * ```
 */
export function castF16ToF32(gpu: Gpu, t: Tensor, out?: Tensor): Tensor {
  return castPass(gpu, CAST.toF32, "castF16ToF32", t, "f16", out, "cast.f32");
}

/**
 * Rounds an f32 tensor to f16 precision in place and returns the f16 copy (into `out` when given),
 * in one pass: afterwards `castF16ToF32(h)` gives exactly the values `x` holds. Mixed-precision
 * training uses it on activations it saves in f16, so the forward goes on with the very values its
 * backward will read (the gradient stays that of the computed forward). Values saturate at ±65504
 * as in {@linkcode castF32ToF16}.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { roundToF16 } from "./cast.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([0.1, 3]), [2]);
 * const h = roundToF16(gpu, x);
 * console.log(await gpu.read(x), h.dtype); // Float32Array [0.0999755859375, 3] "f16"
 * ```
 */
export function roundToF16(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  return castPass(gpu, CAST.round, "roundToF16", x, "f32", out, "round.f16");
}
