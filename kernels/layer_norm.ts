/**
 * LayerNorm over the last dimension, forward (plain, or fused with a residual add as in XLM-R's
 * post-LN blocks) and backward. The forward saves per-row `mean` and `rstd` for the backward.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

// The row-per-invocation entries read the same tensors as vec4f, through other WGSL variables at
// the same slots (`x4` for `x`, …); the backward entries have their own variables (`b_dy`, …).
const R = "read", RW = "read_write";
const v4 = (access: typeof R | typeof RW, wgsl: string) =>
  ({ access, type: "vec4f", wgsl }) as const;
const named = (access: typeof R | typeof RW, wgsl: string) => ({ access, wgsl }) as const;
const FWD = { rows: "u32", n: "u32", eps: "f32" } as const;
const BACK = { rows: "u32", n: "u32" } as const;
const PART = { rows: "u32", n: "u32", col_groups: "u32", blocks: "u32" } as const;
const FIN = { n: "u32", blocks: "u32" } as const;
const LAYER_NORM = kernels("layer_norm.wgsl", {
  forward: {
    entries: ["forward"],
    uniforms: FWD,
    bindings: { x: R, gamma: R, beta: R, y: RW, mean: RW, rstd: RW },
  },
  addForward: {
    entries: ["add_forward"],
    uniforms: FWD,
    bindings: {
      x: R,
      gamma: R,
      beta: R,
      y: RW,
      mean: RW,
      rstd: RW,
      residual: R,
      sum: named(RW, "sum_out"),
    },
  },
  forwardRows: {
    entries: ["forward_rows"],
    uniforms: FWD,
    bindings: {
      x: v4(R, "x4"),
      gamma: v4(R, "gamma4"),
      beta: v4(R, "beta4"),
      y: v4(RW, "y4"),
      mean: RW,
      rstd: RW,
    },
  },
  addForwardRows: {
    entries: ["add_forward_rows"],
    uniforms: FWD,
    bindings: {
      x: v4(R, "x4"),
      gamma: v4(R, "gamma4"),
      beta: v4(R, "beta4"),
      y: v4(RW, "y4"),
      mean: RW,
      rstd: RW,
      residual: v4(R, "residual4"),
      sum: v4(RW, "sum4"),
    },
  },
  backwardDx: {
    entries: ["backward_dx"],
    uniforms: BACK,
    params: "bp",
    bindings: {
      dy: named(R, "b_dy"),
      x: named(R, "b_x"),
      mean: named(R, "b_mean"),
      rstd: named(R, "b_rstd"),
      gamma: named(R, "b_gamma"),
      dx: named(RW, "b_dx"),
    },
  },
  backwardDxRows: {
    entries: ["backward_dx_rows"],
    uniforms: BACK,
    params: "bp",
    bindings: {
      dy: v4(R, "b_dy4"),
      x: v4(R, "b_x4"),
      mean: named(R, "b_mean"),
      rstd: named(R, "b_rstd"),
      gamma: v4(R, "b_gamma4"),
      dx: v4(RW, "b_dx4"),
    },
  },
  partials: {
    entries: ["backward_partials"],
    uniforms: PART,
    params: "pp",
    bindings: {
      dy: named(R, "p_dy"),
      x: named(R, "p_x"),
      mean: named(R, "p_mean"),
      rstd: named(R, "p_rstd"),
      partial: { access: RW, type: "vec2f" },
    },
  },
  partials4: {
    entries: ["backward_partials4"],
    uniforms: PART,
    params: "pp",
    bindings: {
      dy: v4(R, "p_dy4"),
      x: v4(R, "p_x4"),
      mean: named(R, "p_mean"),
      rstd: named(R, "p_rstd"),
      partial: v4(RW, "partial4"),
    },
  },
  params: {
    entries: ["backward_params"],
    uniforms: FIN,
    params: "fp",
    bindings: {
      partial: { access: R, type: "vec2f", wgsl: "f_partial" },
      dgamma: named(RW, "f_dgamma"),
      dbeta: named(RW, "f_dbeta"),
    },
  },
  params4: {
    entries: ["backward_params4"],
    uniforms: FIN,
    params: "fp",
    bindings: {
      partial: v4(R, "f_partial4"),
      dgamma: v4(RW, "f_dgamma4"),
      dbeta: v4(RW, "f_dbeta4"),
    },
  },
});
/** Rows per partial block of dgamma/dbeta (must match `RB` in the shader). */
const ROW_BLOCK = 32;

/** What {@linkcode layerNorm} returns; `mean` and `rstd` have one entry per row. */
export interface LayerNormResult {
  /** Normalised, scaled and shifted output, shaped like the input. */
  y: Tensor;
  /** Row means `[rows]`. */
  mean: Tensor;
  /** Row reciprocal standard deviations `1/√(var + eps)`, `[rows]`. */
  rstd: Tensor;
}

/** What {@linkcode addLayerNorm} returns: {@linkcode LayerNormResult} plus the summed input. */
export interface AddLayerNormResult extends LayerNormResult {
  /** `x + residual`, the tensor that was normalised (the backward's `x`). */
  sum: Tensor;
}

/** Workgroup size for rows of length n (a power of two; small rows waste fewer invocations). */
function workgroupFor(n: number): number {
  return n >= 512 ? 256 : n >= 128 ? 128 : 64;
}

/**
 * Whether rows of length n go one per invocation (vec4, no barriers) rather than one per
 * workgroup: always on a CPU adapter such as lavapipe, where that is many times faster at every
 * length measured (kernels/ATTENTION_NOTES.md); on a real GPU only for short rows, where a
 * workgroup per row would leave most lanes idle. Needs n to be a multiple of 4.
 */
function rowWise(gpu: Gpu, n: number): boolean {
  const cpu = gpu.cpuAdapter;
  return n % 4 === 0 && (cpu || n <= 128);
}

/** Workgroup size and grid for one invocation per row: at least 8 workgroups when possible. */
function rowGrid(rows: number): { wg: number; grid: [number, number] } {
  const wg = Math.max(8, Math.min(64, 2 ** Math.floor(Math.log2(Math.max(1, rows / 8)))));
  return { wg, grid: Gpu.grid(Math.ceil(rows / wg)) };
}

function checkF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
}

/** Validates x/gamma/beta and returns [rows, n]. */
function checkForward(
  op: string,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): [number, number] {
  checkF32(op, "x", x);
  checkF32(op, "gamma", gamma);
  checkF32(op, "beta", beta);
  if (x.shape.length < 1 || x.size === 0) {
    throw new RangeError(`${op}: x must have at least one element and rank ≥ 1, got ${x}`);
  }
  const n = x.shape[x.shape.length - 1];
  if (gamma.shape.length !== 1 || gamma.shape[0] !== n) {
    throw new RangeError(`${op}: gamma must be [${n}] to match x ${x}, got ${gamma}`);
  }
  if (beta.shape.length !== 1 || beta.shape[0] !== n) {
    throw new RangeError(`${op}: beta must be [${n}] to match x ${x}, got ${beta}`);
  }
  if (!(Number.isFinite(eps) && eps >= 0)) {
    throw new RangeError(`${op}: eps must be a finite number ≥ 0, got ${eps}`);
  }
  return [x.size / n, n];
}

/**
 * LayerNorm of each row of `x[..., N]`: `y = (x − mean)·rstd·gamma + beta` with the biased
 * variance, `rstd = 1/√(var + eps)`. Mean and variance are computed in two passes in f32.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { layerNorm } from "./layer_norm.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const gamma = gpu.fromArray(new Float32Array([1, 1]), [2]);
 * const beta = gpu.zeros([2]);
 * const { y, mean, rstd } = layerNorm(gpu, x, gamma, beta, 1e-5);
 * console.log(await gpu.read(y)); // ≈ [-1, 1, -1, 1]
 * gpu.release(x, gamma, beta, y, mean, rstd);
 * ```
 */
export function layerNorm(
  gpu: Gpu,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): LayerNormResult {
  const [rows, n] = checkForward("layerNorm", x, gamma, beta, eps);
  const y = gpu.alloc(x.shape, "f32", "layerNorm.y");
  const mean = gpu.alloc([rows], "f32", "layerNorm.mean");
  const rstd = gpu.alloc([rows], "f32", "layerNorm.rstd");
  const prm = { rows, n, eps };
  if (rowWise(gpu, n)) {
    const g = rowGrid(rows);
    gpu.run(
      LAYER_NORM.forwardRows,
      { constants: { WG: g.wg } },
      { x, gamma, beta, y, mean, rstd },
      prm,
      g.grid,
    );
  } else {
    gpu.run(
      LAYER_NORM.forward,
      { constants: { WG: workgroupFor(n) } },
      { x, gamma, beta, y, mean, rstd },
      prm,
      Gpu.grid(rows),
    );
  }
  return { y, mean, rstd };
}

/**
 * Fused residual add and LayerNorm: `sum = x + residual`, `y = LN(sum)`. Returns `sum` too, since
 * the backward needs the normalised input.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { addLayerNorm } from "./layer_norm.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2]), [1, 2]);
 * const res = gpu.fromArray(new Float32Array([0, 2]), [1, 2]);
 * const gamma = gpu.fromArray(new Float32Array([1, 1]), [2]);
 * const beta = gpu.zeros([2]);
 * const r = addLayerNorm(gpu, x, res, gamma, beta, 1e-5);
 * console.log(await gpu.read(r.sum)); // [1, 4]
 * gpu.release(x, res, gamma, beta, r.y, r.sum, r.mean, r.rstd);
 * ```
 */
export function addLayerNorm(
  gpu: Gpu,
  x: Tensor,
  residual: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): AddLayerNormResult {
  const [rows, n] = checkForward("addLayerNorm", x, gamma, beta, eps);
  checkF32("addLayerNorm", "residual", residual);
  if (residual.shape.join() !== x.shape.join()) {
    throw new RangeError(`addLayerNorm: residual ${residual} must match x ${x}`);
  }
  const y = gpu.alloc(x.shape, "f32", "addLayerNorm.y");
  const sum = gpu.alloc(x.shape, "f32", "addLayerNorm.sum");
  const mean = gpu.alloc([rows], "f32", "addLayerNorm.mean");
  const rstd = gpu.alloc([rows], "f32", "addLayerNorm.rstd");
  const prm = { rows, n, eps };
  if (rowWise(gpu, n)) {
    const g = rowGrid(rows);
    gpu.run(
      LAYER_NORM.addForwardRows,
      { constants: { WG: g.wg } },
      { x, gamma, beta, y, mean, rstd, residual, sum },
      prm,
      g.grid,
    );
  } else {
    gpu.run(
      LAYER_NORM.addForward,
      { constants: { WG: workgroupFor(n) } },
      { x, gamma, beta, y, mean, rstd, residual, sum },
      prm,
      Gpu.grid(rows),
    );
  }
  return { y, sum, mean, rstd };
}

/**
 * LayerNorm backward. Returns `dx` (a new tensor) and ACCUMULATES the parameter gradients:
 * `dgamma += Σ_rows dy·x̂`, `dbeta += Σ_rows dy` (deterministic order: fixed blocks of rows, then
 * the blocks in order). `x` is the forward's normalised input (`sum` for {@linkcode addLayerNorm}).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { layerNorm, layerNormBackward } from "./layer_norm.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2, 3, 5]), [2, 2]);
 * const gamma = gpu.fromArray(new Float32Array([1, 1]), [2]);
 * const beta = gpu.zeros([2]);
 * const { y, mean, rstd } = layerNorm(gpu, x, gamma, beta, 1e-5);
 * const dgamma = gpu.zeros([2]), dbeta = gpu.zeros([2]);
 * const dx = layerNormBackward(gpu, y, x, mean, rstd, gamma, dgamma, dbeta);
 * console.log(await gpu.read(dbeta)); // ≈ [-2, 2]
 * gpu.release(x, gamma, beta, y, mean, rstd, dgamma, dbeta, dx);
 * ```
 */
export function layerNormBackward(
  gpu: Gpu,
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  gamma: Tensor,
  dgamma: Tensor,
  dbeta: Tensor,
): Tensor {
  const op = "layerNormBackward";
  for (const [name, t] of Object.entries({ dy, x, mean, rstd, gamma, dgamma, dbeta })) {
    checkF32(op, name, t);
  }
  if (x.shape.length < 1 || x.size === 0) {
    throw new RangeError(`${op}: x must have at least one element and rank ≥ 1, got ${x}`);
  }
  const n = x.shape[x.shape.length - 1];
  const rows = x.size / n;
  if (dy.shape.join() !== x.shape.join()) {
    throw new RangeError(`${op}: dy ${dy} must match x ${x}`);
  }
  for (const [name, t] of Object.entries({ mean, rstd })) {
    if (t.size !== rows) {
      throw new RangeError(`${op}: ${name} ${t} must have ${rows} rows (x ${x})`);
    }
  }
  for (const [name, t] of Object.entries({ gamma, dgamma, dbeta })) {
    if (t.shape.length !== 1 || t.shape[0] !== n) {
      throw new RangeError(`${op}: ${name} must be [${n}] to match x ${x}, got ${t}`);
    }
  }
  const dx = gpu.alloc(x.shape, "f32", "layerNormBackward.dx");
  if (rowWise(gpu, n)) {
    const g = rowGrid(rows);
    gpu.run(
      LAYER_NORM.backwardDxRows,
      { constants: { WG: g.wg } },
      { dy, x, mean, rstd, gamma, dx },
      { rows, n },
      g.grid,
    );
  } else {
    gpu.run(
      LAYER_NORM.backwardDx,
      { constants: { WG: workgroupFor(n) } },
      { dy, x, mean, rstd, gamma, dx },
      { rows, n },
      Gpu.grid(rows),
    );
  }
  const blocks = Math.ceil(rows / ROW_BLOCK);
  return gpu.scope(() => {
    const partial = gpu.alloc([blocks, n, 2], "f32", "layerNormBackward.partial");
    if (n % 4 === 0) {
      // Four columns per invocation, the same order of additions per column.
      const n4 = n / 4;
      gpu.run(
        LAYER_NORM.partials4,
        { constants: { WG: 64 } },
        { dy, x, mean, rstd, partial },
        { rows, n, col_groups: 0, blocks },
        Gpu.grid(Math.ceil((blocks * n4) / 64)),
      );
      gpu.run(
        LAYER_NORM.params4,
        { constants: { WG: 64 } },
        { partial, dgamma, dbeta },
        { n, blocks },
        [Math.ceil(n4 / 64)],
      );
    } else {
      const colGroups = Math.ceil(n / 256);
      gpu.run(
        LAYER_NORM.partials,
        { constants: { WG: 256 } },
        { dy, x, mean, rstd, partial },
        { rows, n, col_groups: colGroups, blocks },
        Gpu.grid(colGroups * blocks),
      );
      gpu.run(
        LAYER_NORM.params,
        { constants: { WG: 256 } },
        { partial, dgamma, dbeta },
        { n, blocks },
        [Math.ceil(n / 256)],
      );
    }
    // Dispatches run in recording order, so the buffer can go back to the pool now.
    return dx;
  }, "layerNormBackward");
}
