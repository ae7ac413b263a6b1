/**
 * Row-wise L2 normalisation of embeddings `x[B, H]` (before cosine similarities) and its backward.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const L2 = kernels("l2_norm.wgsl", {
  forward: {
    entries: ["forward"],
    uniforms: { rows: "u32", h: "u32" },
    bindings: { x: "read", y: "read_write", norm: "read_write" },
  },
  backward: {
    entries: ["backward"],
    uniforms: { rows: "u32", h: "u32" },
    bindings: {
      dy: { access: "read", wgsl: "x" },
      y: { access: "read", wgsl: "b_y" },
      norm: { access: "read", wgsl: "b_norm" },
      dx: { access: "read_write", wgsl: "b_dx" },
    },
  },
});

function workgroupFor(h: number): number {
  return h >= 512 ? 256 : h >= 128 ? 128 : 64;
}

function checkRows(op: string, name: string, t: Tensor): [number, number] {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  if (t.shape.length !== 2 || t.size === 0) {
    throw new RangeError(`${op}: ${name} must be a non-empty [B, H], got ${t}`);
  }
  return [t.shape[0], t.shape[1]];
}

/**
 * `y = x / max(‖x‖, 1e-12)` per row (as `torch.nn.functional.normalize`); `norm` `[B]` holds the
 * floored norms for the backward.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { l2Normalize } from "./l2_norm.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([3, 4]), [1, 2]);
 * const { y, norm } = l2Normalize(gpu, x);
 * console.log(await gpu.read(y), await gpu.read(norm)); // ≈ [0.6, 0.8] [5]
 * ```
 */
export function l2Normalize(gpu: Gpu, x: Tensor): { y: Tensor; norm: Tensor } {
  const [rows, h] = checkRows("l2Normalize", "x", x);
  const y = gpu.alloc(x.shape, "f32", "l2Normalize.y");
  const norm = gpu.alloc([rows], "f32", "l2Normalize.norm");
  const opts = { constants: { WG: workgroupFor(h) } };
  gpu.run(L2.forward, opts, { x, y, norm }, { rows, h }, Gpu.grid(rows));
  return { y, norm };
}

/**
 * Backward of {@linkcode l2Normalize} from its outputs: `dx = (dy − y·(dy·y)) / norm` per row
 * (exact wherever `‖x‖ ≥ 1e-12`).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { l2NormalizeBackward } from "./l2_norm.ts";
 * const gpu = await Gpu.create();
 * const y = gpu.fromArray(new Float32Array([1, 0]), [1, 2]);
 * const norm = gpu.fromArray(new Float32Array([2]), [1]);
 * const dy = gpu.fromArray(new Float32Array([1, 1]), [1, 2]);
 * console.log(await gpu.read(l2NormalizeBackward(gpu, dy, y, norm))); // [0, 0.5]
 * ```
 */
export function l2NormalizeBackward(gpu: Gpu, dy: Tensor, y: Tensor, norm: Tensor): Tensor {
  const op = "l2NormalizeBackward";
  const [rows, h] = checkRows(op, "y", y);
  checkRows(op, "dy", dy);
  if (dy.shape.join() !== y.shape.join()) throw new RangeError(`${op}: dy ${dy} must match y ${y}`);
  if (norm.dtype !== "f32") throw new TypeError(`${op}: norm must be f32, got ${norm}`);
  if (norm.shape.length !== 1 || norm.shape[0] !== rows) {
    throw new RangeError(`${op}: norm must be [${rows}] for y ${y}, got ${norm}`);
  }
  const dx = gpu.alloc(y.shape, "f32", "l2NormalizeBackward.dx");
  const opts = { constants: { WG: workgroupFor(h) } };
  gpu.run(L2.backward, opts, { dy, y, norm, dx }, { rows, h }, Gpu.grid(rows));
  return dx;
}
