/**
 * Element-wise activations: exact GELU `x·½·(1 + erf(x/√2))` (XLM-R's feed-forward) and tanh
 * (the pooler), forward and backward. Both are computed with relative accuracy near 1e-7 in f32.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const GELU = kernels("gelu.wgsl", {
  unary: {
    entries: ["gelu", "tanh_forward"],
    uniforms: { count: "u32" },
    bindings: { x: { access: "read", wgsl: "in0" }, y: { access: "read_write", wgsl: "out1" } },
  },
  binary: {
    entries: ["gelu_backward", "tanh_backward"],
    uniforms: { count: "u32" },
    bindings: {
      dy: { access: "read", wgsl: "in0" },
      saved: { access: "read", wgsl: "in1" }, // x for gelu_backward, y for tanh_backward
      dx: { access: "read_write", wgsl: "out2" },
    },
  },
});

function checkF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
}

function unary(gpu: Gpu, op: string, entry: string, x: Tensor): Tensor {
  checkF32(op, "x", x);
  const y = gpu.alloc(x.shape, "f32", `${op}.y`);
  const grid = Gpu.grid(Math.ceil(x.size / 256));
  gpu.run(GELU.unary, { entry }, { x, y }, { count: x.size }, grid);
  return y;
}

function binary(gpu: Gpu, op: string, entry: string, dy: Tensor, name: string, v: Tensor): Tensor {
  checkF32(op, "dy", dy);
  checkF32(op, name, v);
  if (dy.shape.join() !== v.shape.join()) {
    throw new RangeError(`${op}: dy ${dy} must match ${name} ${v}`);
  }
  const dx = gpu.alloc(v.shape, "f32", `${op}.dx`);
  const grid = Gpu.grid(Math.ceil(v.size / 256));
  gpu.run(GELU.binary, { entry }, { dy, saved: v, dx }, { count: v.size }, grid);
  return dx;
}

/**
 * Exact GELU, element-wise: `x·Φ(x)` with `Φ` the standard normal CDF (not the tanh
 * approximation).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { gelu } from "./gelu.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([-1, 0, 1]), [3]);
 * console.log(await gpu.read(gelu(gpu, x))); // ≈ [-0.158655, 0, 0.841345]
 * ```
 */
export function gelu(gpu: Gpu, x: Tensor): Tensor {
  return unary(gpu, "gelu", "gelu", x);
}

/**
 * GELU backward: `dx = dy·(Φ(x) + x·φ(x))`, from the forward's input `x`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { geluBackward } from "./gelu.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([0]), [1]);
 * const dy = gpu.fromArray(new Float32Array([2]), [1]);
 * console.log(await gpu.read(geluBackward(gpu, dy, x))); // [1]
 * ```
 */
export function geluBackward(gpu: Gpu, dy: Tensor, x: Tensor): Tensor {
  return binary(gpu, "geluBackward", "gelu_backward", dy, "x", x);
}

/**
 * Element-wise tanh (the pooler's activation).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { tanh } from "./gelu.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([0, 100]), [2]);
 * console.log(await gpu.read(tanh(gpu, x))); // [0, 1]
 * ```
 */
export function tanh(gpu: Gpu, x: Tensor): Tensor {
  return unary(gpu, "tanh", "tanh_forward", x);
}

/**
 * tanh backward from the forward's OUTPUT `y`: `dx = dy·(1 − y²)`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { tanhBackward } from "./gelu.ts";
 * const gpu = await Gpu.create();
 * const y = gpu.fromArray(new Float32Array([0.5]), [1]);
 * const dy = gpu.fromArray(new Float32Array([4]), [1]);
 * console.log(await gpu.read(tanhBackward(gpu, dy, y))); // [3]
 * ```
 */
export function tanhBackward(gpu: Gpu, dy: Tensor, y: Tensor): Tensor {
  return binary(gpu, "tanhBackward", "tanh_backward", dy, "y", y);
}
