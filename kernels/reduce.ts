/**
 * Deterministic full reductions of an f32 tensor to one value: sum, mean and sum of squares (loss
 * totals, gradient norms). The summation order is fixed by constants in the shader, so the result
 * is bit-identical whatever the workgroup size, run to run.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const REDUCE = kernels("reduce.wgsl", {
  level: {
    entries: ["level"],
    uniforms: { n: "u32", n_out: "u32", square: "u32" },
    params: "lp",
    bindings: { x: "read", out: "read_write" },
  },
  tree: {
    entries: ["tree"],
    uniforms: { n: "u32", square: "u32", divisor: "f32" },
    params: "tp",
    bindings: { x: "read", out: "read_write" },
  },
});
/** Must match CHUNK, LANES and TREE in the shader. */
const CHUNK = 64, LANES = 256, TREE = 1024;

/** Options of the reductions. */
export interface ReduceOptions {
  /** Invocations per workgroup (1 … the device limit); changes speed, never the result. */
  workgroupSize?: number;
}

function reduce(
  gpu: Gpu,
  op: string,
  x: Tensor,
  square: boolean,
  divide: boolean,
  opts: ReduceOptions,
): Tensor {
  if (x.dtype !== "f32") throw new TypeError(`${op}: x must be f32, got ${x}`);
  if (x.size === 0) throw new RangeError(`${op}: x is empty (${x})`);
  const wg = opts.workgroupSize ?? 256;
  const maxWg = Math.min(
    gpu.limits.maxComputeInvocationsPerWorkgroup,
    gpu.limits.maxComputeWorkgroupSizeX,
  );
  if (!Number.isInteger(wg) || wg < 1 || wg > maxWg) {
    throw new RangeError(`${op}: workgroupSize must be an integer in [1, ${maxWg}], got ${wg}`);
  }
  const total = x.size;
  let src = x, n = total, sq = square;
  return gpu.scope(() => {
    const temps: Tensor[] = [];
    while (n > TREE) {
      const nOut = Math.ceil(n / (CHUNK * LANES)) * LANES;
      const dst = gpu.alloc([nOut], "f32", `${op}.partials`);
      gpu.run(
        REDUCE.level,
        { constants: { WG: wg } },
        { x: src, out: dst },
        { n, n_out: nOut, square: sq ? 1 : 0 },
        Gpu.grid(Math.ceil(nOut / wg)),
      );
      temps.push(dst);
      src = dst;
      n = nOut;
      sq = false;
    }
    const out = gpu.alloc([1], "f32", `${op}.out`);
    gpu.run(
      REDUCE.tree,
      { constants: { WG: wg } },
      { x: src, out },
      { n, square: sq ? 1 : 0, divisor: divide ? total : 1 },
      [1],
    );
    // Dispatches run in recording order, so the partials can go back to the pool now.
    return out;
  }, "reduce");
}

/**
 * Sum of all elements of `x` (any shape) as a `[1]` tensor.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { sum } from "./reduce.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2, 3]), [3]);
 * console.log(await gpu.read(sum(gpu, x))); // [6]
 * ```
 */
export function sum(gpu: Gpu, x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, "sum", x, false, false, opts);
}

/**
 * Mean of all elements of `x` as a `[1]` tensor.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { mean } from "./reduce.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2, 3, 6]), [2, 2]);
 * console.log(await gpu.read(mean(gpu, x))); // [3]
 * ```
 */
export function mean(gpu: Gpu, x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, "mean", x, false, true, opts);
}

/**
 * Sum of squares of all elements of `x` as a `[1]` tensor (e.g. a squared gradient norm).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { sumOfSquares } from "./reduce.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([3, 4]), [2]);
 * console.log(await gpu.read(sumOfSquares(gpu, x))); // [25]
 * ```
 */
export function sumOfSquares(gpu: Gpu, x: Tensor, opts: ReduceOptions = {}): Tensor {
  return reduce(gpu, "sumOfSquares", x, true, false, opts);
}
