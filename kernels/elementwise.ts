/**
 * Element-wise kernels: residual add. Its backward is the identity on both inputs, so the model
 * passes the upstream gradient through without a kernel.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernel } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const ADD = kernel({
  shader: "elementwise.wgsl",
  entries: ["add"],
  uniforms: { count: "u32" },
  bindings: { a: "read", b: "read", out: "read_write" },
});

/**
 * `out = a + b` for same-shaped f32 tensors.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { add } from "./elementwise.ts";
 * const gpu = await Gpu.create();
 * const a = gpu.fromArray(new Float32Array([1, 2]), [2]);
 * const b = gpu.fromArray(new Float32Array([3, 4]), [2]);
 * console.log(await gpu.read(add(gpu, a, b))); // Float32Array [4, 6]
 * ```
 */
export function add(gpu: Gpu, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (a.dtype !== "f32" || b.dtype !== "f32") throw new TypeError(`add: f32 only, got ${a}, ${b}`);
  if (a.size !== b.size) throw new RangeError(`add: shapes differ: ${a} vs ${b}`);
  const y = out ?? gpu.alloc(a.shape, "f32", "add.out");
  if (y.size !== a.size) throw new RangeError(`add: out ${y} does not match ${a}`);
  gpu.run(ADD, {}, { a, b, out: y }, { count: a.size }, Gpu.grid(Math.ceil(a.size / 256)));
  return y;
}
