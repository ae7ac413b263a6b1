/**
 * Row softmax over the last dimension with an optional additive mask, and its backward.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const forward = { rows: "u32", cols: "u32", rows_per_mask: "u32" } as const;
const SOFTMAX = kernels("softmax.wgsl", {
  forward: { entries: ["forward"], uniforms: forward, bindings: { x: "read", y: "read_write" } },
  forwardMasked: {
    entries: ["forward_masked"],
    uniforms: forward,
    bindings: { x: "read", y: "read_write", mask: "read" },
  },
  backward: {
    entries: ["backward"],
    uniforms: { rows: "u32", cols: "u32" },
    params: "bp",
    bindings: {
      dy: { access: "read", wgsl: "b_dy" },
      y: { access: "read", wgsl: "b_y" },
      dx: { access: "read_write", wgsl: "b_dx" },
    },
  },
});

/** Workgroup size for rows of `cols` values (a power of two). */
function workgroupFor(cols: number): number {
  return cols >= 512 ? 256 : cols >= 128 ? 128 : 64;
}

function rowsCols(op: string, name: string, t: Tensor): [number, number] {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  if (t.shape.length < 1 || t.size === 0) {
    throw new RangeError(`${op}: ${name} must be non-empty [rows, cols], got ${t}`);
  }
  const cols = t.shape[t.shape.length - 1];
  return [t.size / cols, cols];
}

/**
 * Softmax of each row of `x[rows, cols]` (leading dimensions are flattened into rows), after
 * adding `mask[maskRows, cols]` when given: row `r` uses mask row `floor(r / rowsPerMask)`, and
 * `maskRows·rowsPerMask` must equal `rows` (`rowsPerMask` defaults to `rows / maskRows`). Mask
 * values must be finite: use a large negative number such as −1e9 for "masked", not −Infinity.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { softmax } from "./softmax.ts";
 * const gpu = await Gpu.create();
 * const scores = gpu.fromArray(new Float32Array([1, 1, 1, 1, 2, 3]), [2, 3]);
 * const mask = gpu.fromArray(new Float32Array([0, 0, -1e9]), [1, 3]);
 * console.log(await gpu.read(softmax(gpu, scores, mask, 2))); // ≈ [0.5, 0.5, 0, 0.27, 0.73, 0]
 * ```
 */
export function softmax(gpu: Gpu, x: Tensor, mask?: Tensor, rowsPerMask?: number): Tensor {
  const [rows, cols] = rowsCols("softmax", "x", x);
  let perMask = 1;
  if (mask) {
    const [maskRows, maskCols] = rowsCols("softmax", "mask", mask);
    if (maskCols !== cols) {
      throw new RangeError(`softmax: mask ${mask} must have ${cols} columns like x ${x}`);
    }
    perMask = rowsPerMask ?? rows / maskRows;
    if (!Number.isInteger(perMask) || perMask < 1 || maskRows * perMask !== rows) {
      throw new RangeError(
        `softmax: ${maskRows} mask rows × rowsPerMask ${rowsPerMask ?? perMask} must equal the ` +
          `${rows} rows of x ${x}`,
      );
    }
  } else if (rowsPerMask !== undefined) {
    throw new TypeError(`softmax: rowsPerMask (${rowsPerMask}) given without a mask`);
  }
  const y = gpu.alloc(x.shape, "f32", "softmax.y");
  const wg = workgroupFor(cols);
  const uniforms = { rows, cols, rows_per_mask: perMask };
  const opts = { constants: { WG: wg } };
  if (mask) gpu.run(SOFTMAX.forwardMasked, opts, { x, y, mask }, uniforms, Gpu.grid(rows));
  else gpu.run(SOFTMAX.forward, opts, { x, y }, uniforms, Gpu.grid(rows));
  return y;
}

/**
 * Softmax backward from the forward's OUTPUT: `dx = y·(dy − Σ_row dy·y)`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { softmaxBackward } from "./softmax.ts";
 * const gpu = await Gpu.create();
 * const y = gpu.fromArray(new Float32Array([0.25, 0.75]), [1, 2]);
 * const dy = gpu.fromArray(new Float32Array([1, 0]), [1, 2]);
 * console.log(await gpu.read(softmaxBackward(gpu, dy, y))); // [0.1875, -0.1875]
 * ```
 */
export function softmaxBackward(gpu: Gpu, dy: Tensor, y: Tensor): Tensor {
  const [rows, cols] = rowsCols("softmaxBackward", "y", y);
  rowsCols("softmaxBackward", "dy", dy);
  if (dy.shape.join() !== y.shape.join()) {
    throw new RangeError(`softmaxBackward: dy ${dy} must match y ${y}`);
  }
  const dx = gpu.alloc(y.shape, "f32", "softmaxBackward.dx");
  gpu.run(
    SOFTMAX.backward,
    { constants: { WG: workgroupFor(cols) } },
    { dy, y, dx },
    { rows, cols },
    Gpu.grid(rows),
  );
  return dx;
}
