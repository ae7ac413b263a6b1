/**
 * Matrix products: `matmul` (rank 2 or batched rank 3, optional transposes, alpha, accumulate),
 * `linear` (`X·Wᵀ + b` with Hugging Face `[out, in]` weights) and its backward.
 *
 * One tiled kernel (`matmul.wgsl`) serves all of them: the transposes are `override` flags, the tile
 * shape and the split of K are chosen per problem shape by {@linkcode matmulPlan}, and an operand
 * whose contiguous axis is a multiple of 4 is read as `vec4`. Split-K products write partial
 * products that `matmul_splitk.wgsl` sums in a fixed order (deterministic). Bias column sums use
 * `matmul_colsum.wgsl`. {@linkcode linearGelu} fuses bias + exact GELU into the product's epilogue.
 *
 * Operands of `matmul`, `linear` and `linearGelu` may be stored as f16 (`Tensor<f16>`, e.g. from
 * `castF32ToF16` in cast.ts) where the device has `shader-f16`: they are widened to f32 on their way
 * into workgroup memory, so accumulation and outputs stay f32 and the only error is the f16
 * rounding of the stored values. {@linkcode linearBackward} reads f16 X and W the same way; its
 * gradients are f32.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { checkMatmulSwitches, type MatmulSwitches, type MatmulTiles } from "./options.ts";
import { kernel, type TemplateVars } from "./spec.ts";
import { type MatmulForm, matmulShapeKey, type TunedPlan } from "./tune.ts";
import type { Tensor } from "./tensor.ts";

export type { MatmulSwitches, MatmulTiles } from "./options.ts";

/** An operand of the tiled kernel: vec4 of its storage type where the template says so. */
const operand = (vec: string, type: string) =>
  ({
    access: "read",
    type: (t: TemplateVars) => t[vec] ? `vec4<${t[type]}>` : `${t[type]}`,
  }) as const;
/** Template variables of an all-f32 product with the light 4×4 block (binding-test variants). */
const MM_F32 = { tm4: 1, tn4: 1, enable_f16: false, a_t: "f32", b_t: "f32", w_t: "f32" };
const MATMUL = kernel({
  shader: "matmul.wgsl",
  uniforms: {
    M: "u32",
    N: "u32",
    K: "u32",
    strideA: "u32",
    strideB: "u32",
    strideC: "u32",
    alpha: "f32",
    accumulate: "u32",
    kChunk: "u32",
    splits: "u32",
  },
  bindings: {
    a: operand("vec_a", "a_t"),
    b: operand("vec_b", "b_t"),
    c: "read_write",
    bias: { access: "read", optional: true },
    y: { access: "read_write", optional: true },
  },
  variants: [
    { ...MM_F32, vec_a: true, vec_b: true, has_bias: true, gelu: true },
    { ...MM_F32, vec_a: false, vec_b: false, has_bias: false, gelu: false },
    { ...MM_F32, vec_a: true, vec_b: false, enable_f16: true, b_t: "f16", w_t: "f16" },
  ],
});
const SPLITK = kernel({
  shader: "matmul_splitk.wgsl",
  uniforms: { count: "u32", mn: "u32", n: "u32", splits: "u32", alpha: "f32", accumulate: "u32" },
  bindings: {
    part: "read",
    c: "read_write",
    bias: { access: "read", optional: true },
    y: { access: "read_write", optional: true },
  },
  variants: [{ gelu: true, has_bias: true }, { gelu: false, has_bias: false }],
});
const COLSUM = kernel({
  shader: "matmul_colsum.wgsl",
  uniforms: { M: "u32", N: "u32" },
  bindings: { dy: "read", db: "read_write" },
});

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** A is stored transposed: `[., K, M]`. */
  transA?: boolean;
  /** B is stored transposed: `[., N, K]`. */
  transB?: boolean;
  /** Add the product to `out` instead of overwriting it (`out` is then required). */
  accumulate?: boolean;
  /** Scale of the product (default 1). */
  alpha?: number;
}

// Tile table, first match wins. Measured numbers are in kernels/MATMUL_NOTES.md. On lavapipe
// (llvmpipe: 8-lane SIMD on CPU cores) every workgroup- or storage-memory access runs a per-lane
// loop of about 20 ns per invocation, while an FMA costs under 0.1 ns, so speed is set by FMAs per
// load: a 16×16 register block (32 FMAs per vec4 load) ran 1024³ at 4–6× the 4×4 block's rate on the
// same loaded machine, and 8×8 threads × 16×16 blocks (128×128 tiles, BK 32) beat every other shape
// tried. Real GPUs would spill a 256-float block, so they get the classic 128×128 tile from 16×16
// threads × 8×8 blocks (not measured here: no GPU was available for tuning).
const TILE_TABLE: {
  name: string;
  cpu: boolean;
  when: (m: number, n: number, k: number) => boolean;
  tiles: MatmulTiles;
}[] = [
  // Tiny products (tests, small batches): light 32×32 tiles of 4×4 blocks; they compile in a
  // fraction of the time of the unrolled 16×16 block, which matters more than speed here.
  {
    name: "cpu-tiny",
    cpu: true,
    when: (m, n) => m * n < 128 * 128,
    tiles: { WX: 8, WY: 8, BK: 16, TM4: 1, TN4: 1 },
  },
  // Fewer than four 128×128 tiles leave a core idle: 64×64 tiles of 8×8 blocks.
  {
    name: "cpu-mid",
    cpu: true,
    when: (m, n) => m * n < 4 * 128 * 128,
    tiles: { WX: 8, WY: 8, BK: 16, TM4: 2, TN4: 2 },
  },
  {
    name: "cpu-large",
    cpu: true,
    when: () => true,
    tiles: { WX: 8, WY: 8, BK: 32, TM4: 4, TN4: 4 },
  },
  // Fewer than ~2 waves of 128×128 tiles on a large GPU: 32×32 tiles give more workgroups.
  {
    name: "gpu-small",
    cpu: false,
    when: (m, n) => m * n < 256 * 128 * 128,
    tiles: { WX: 8, WY: 8, BK: 16, TM4: 1, TN4: 1 },
  },
  {
    name: "gpu-large",
    cpu: false,
    when: () => true,
    tiles: { WX: 16, WY: 16, BK: 16, TM4: 2, TN4: 2 },
  },
];

/** How one product runs: its tiles and how many ranges K is split into (1: no split-K). */
export interface MatmulPlan {
  /** Workgroup shape. */
  tiles: MatmulTiles;
  /** K ranges computed by separate workgroups and summed by `matmul_splitk.wgsl` (≥ 1). */
  splits: number;
  /** K per split, a multiple of `tiles.BK` (K itself when `splits` is 1). */
  kChunk: number;
}

// Smallest workgroup kept when a tile is narrowed to fit few rows or columns: llvmpipe runs 8
// invocations per SIMD batch, real GPUs want at least two 32-wide warps.
const MIN_THREADS = { cpu: 8, gpu: 64 };
// Split-K targets: workgroups wanted per product (two cores want ≥ 4 balanced tiles on lavapipe; a
// real GPU wants one or more per SM; on lavapipe splitting 4 tiles into 8 measured slower) and the
// least K a split may get.
const SPLIT_TARGET = { cpu: 4, gpu: 128 };
const MIN_SPLIT_K = { cpu: 64, gpu: 256 };
const MAX_SPLITS = 16;
// Partial products beyond this many bytes are not worth their memory traffic.
const MAX_PARTIAL_BYTES = 32 << 20;
// Below this many multiply-adds the light 4×4 block is used: the unrolled 16×16 block takes seconds
// to compile in llvmpipe, more than such a product runs.
const CPU_LIGHT_MACS = 1 << 19;

/**
 * Narrows a tile to the problem: while half the tile still covers all M rows, halve the threads
 * along M (keeping the register block, so FMAs per load stay the same; below the minimum workgroup
 * the threads move to N when N has room for them), else halve the block's rows; then the same along
 * N. Without this a 32-row product in a 128-row tile computes three quarters padding.
 */
function fitTiles(t: MatmulTiles, m: number, n: number, minThreads: number): MatmulTiles {
  let { WX, WY, TM4, TN4 } = t;
  const bm = () => 4 * TM4 * WY, bn = () => 4 * TN4 * WX;
  while (bm() / 2 >= m) {
    if (WY > 1 && (WX * WY) / 2 >= minThreads) WY /= 2;
    else if (WY > 1 && bn() < n) [WY, WX] = [WY / 2, WX * 2];
    else if (TM4 > 1) TM4 /= 2;
    else break;
  }
  while (bn() / 2 >= n) {
    if (WX > 1 && (WX * WY) / 2 >= minThreads) WX /= 2;
    else if (TN4 > 1) TN4 /= 2;
    else break;
  }
  return { WX, WY, BK: t.BK, TM4, TN4 };
}

function tileCount(t: MatmulTiles, m: number, n: number): number {
  return Math.ceil(m / (4 * t.TM4 * t.WY)) * Math.ceil(n / (4 * t.TN4 * t.WX));
}

/**
 * Split-K for a product whose output has too few tiles to occupy the adapter while K is long (the
 * weight gradient dW = dYᵀ·X, whose K is the token count): as many splits as bring the workgroups
 * to the target, each with at least the minimum K, rounded to whole BK steps.
 */
function splitFor(
  t: MatmulTiles,
  m: number,
  n: number,
  k: number,
  batch: number,
  cpu: boolean,
): number {
  const kind = cpu ? "cpu" : "gpu";
  const tiles = tileCount(t, m, n) * batch;
  if (tiles >= SPLIT_TARGET[kind]) return 1;
  let splits = Math.min(
    MAX_SPLITS,
    Math.ceil(SPLIT_TARGET[kind] / tiles),
    Math.floor(k / MIN_SPLIT_K[kind]),
    Math.floor(MAX_PARTIAL_BYTES / (4 * batch * m * n)),
    Math.floor(65535 / batch),
  );
  // Every split must own at least one BK step once K is cut into whole steps.
  while (splits > 1 && Math.ceil(k / (Math.ceil(k / splits / t.BK) * t.BK)) < splits) splits--;
  return Math.max(1, splits);
}

/**
 * The tiles and K split used for a batch of `[M,K]·[K,N]` products on a CPU (software) adapter when
 * `cpu` is true. CPU adapters: products under 2¹⁹ multiply-adds get light 32×32 tiles of 4×4 blocks;
 * larger ones 128×128 tiles of 16×16 blocks (the most FMAs per load, see MATMUL_NOTES.md), narrowed
 * to the rows and columns there are, and K is split when that leaves fewer than 4 workgroups
 * (64×64 tiles of 8×8 blocks when K is too short to split). GPU adapters keep the M·N table and
 * the same narrowing and splitting with GPU-sized targets. `switches` (a Gpu's
 * `options.matmul`) may force the tiles or the split; `tuned` (a plan from the adapter's tune
 * cache, see {@linkcode gpuMatmulPlan}) replaces the table's tiles and split.
 *
 * @example
 * ```ts
 * import { matmulPlan } from "./matmul.ts";
 * // A weight gradient dW[64,64] over 2048 token rows on lavapipe: one 64×64 tile, K in 4 splits.
 * console.log(matmulPlan(64, 64, 2048, 1, true).splits); // 4
 * console.log(matmulPlan(40, 40, 1037, 1, true, { splits: 3 }).splits); // 3
 * ```
 */
export function matmulPlan(
  m: number,
  n: number,
  k: number,
  batch = 1,
  cpu = false,
  switches: Partial<MatmulSwitches> = {},
  tuned: TunedPlan | null = null,
): MatmulPlan {
  checkMatmulSwitches(switches);
  const forced = switches.tiles ?? null;
  const forcedSplits = switches.splits ?? null;
  let tiles: MatmulTiles;
  let splits = 1;
  if (forced) tiles = forced;
  else if (tuned) {
    // A plan `bench tune` measured on this adapter (kernels/tune.ts); its split as it was timed.
    tiles = tuned.tiles;
    splits = Math.max(1, Math.min(tuned.splits, Math.ceil(k / tiles.BK)));
  } else if (!cpu) {
    const base = TILE_TABLE.find((e) => !e.cpu && e.when(m, n, k))!.tiles;
    tiles = fitTiles(base, m, n, MIN_THREADS.gpu);
    splits = splitFor(tiles, m, n, k, batch, false);
  } else if (m * n * k < CPU_LIGHT_MACS) {
    tiles = fitTiles(MATMUL_TILE_CONFIGS["cpu-tiny"], m, n, MIN_THREADS.cpu);
  } else {
    tiles = fitTiles(MATMUL_TILE_CONFIGS["cpu-large"], m, n, MIN_THREADS.cpu);
    splits = splitFor(tiles, m, n, k, batch, true);
    if (splits === 1 && tileCount(tiles, m, n) * batch < 4) {
      // Too short to split and too few tiles for both cores: smaller 64×64 tiles, as before.
      tiles = fitTiles(MATMUL_TILE_CONFIGS["cpu-mid"], m, n, MIN_THREADS.cpu);
    }
  }
  if (forcedSplits !== null) splits = Math.max(1, Math.min(forcedSplits, Math.ceil(k / tiles.BK)));
  const kChunk = splits === 1 ? k : Math.ceil(k / splits / tiles.BK) * tiles.BK;
  // Rounding K to whole BK steps can leave the last split empty: count the splits that remain.
  if (splits > 1) splits = Math.ceil(k / kChunk);
  return { tiles, splits, kChunk: splits === 1 ? k : kChunk };
}

/**
 * The tile configuration the kernels use for an `[M,K]·[K,N]` product (per batch entry), on a CPU
 * (software) adapter when `cpu` is true: the tiles of {@linkcode matmulPlan}.
 *
 * @example
 * ```ts
 * import { matmulTiles } from "./matmul.ts";
 * console.log(matmulTiles(1024, 1024, 1024, true)); // { WX: 8, WY: 8, BK: 32, TM4: 4, TN4: 4 }
 * console.log(matmulTiles(32, 1024, 1024, true)); // { WX: 8, WY: 2, BK: 32, TM4: 4, TN4: 4 }
 * ```
 */
export function matmulTiles(m: number, n: number, k: number, cpu = false): MatmulTiles {
  return matmulPlan(m, n, k, 1, cpu).tiles;
}

/**
 * The plan `gpu` runs a product with: the adapter's tuned plan for this shape and form when the Gpu
 * loaded a tune cache ({@linkcode Gpu.tuned}) that has it, else the hand-written table; the Gpu's
 * switches override either.
 */
export function gpuMatmulPlan(
  gpu: Gpu,
  m: number,
  n: number,
  k: number,
  batch: number,
  form: MatmulForm,
): MatmulPlan & { tuned: boolean } {
  const cpu = gpu.cpuAdapter;
  const tuned = gpu.tuned?.matmul[matmulShapeKey(m, n, k, batch, form)] ?? null;
  return { ...matmulPlan(m, n, k, batch, cpu, gpu.options.matmul, tuned), tuned: tuned !== null };
}

/**
 * The table's narrowing and K split, for the tuner (cli/bench_tune.ts): `base` narrowed to an
 * M×N output, and the split {@linkcode matmulPlan} would pick for those tiles.
 */
export function fitMatmulTiles(
  base: MatmulTiles,
  m: number,
  n: number,
  k: number,
  batch: number,
  cpu: boolean,
): MatmulPlan {
  const tiles = fitTiles(base, m, n, MIN_THREADS[cpu ? "cpu" : "gpu"]);
  const splits = splitFor(tiles, m, n, k, batch, cpu);
  return { tiles, splits, kChunk: splits === 1 ? k : Math.ceil(k / splits / tiles.BK) * tiles.BK };
}

/** Whether the adapter is a software (CPU) one such as lavapipe, which wants other tiles. */
export function isCpuAdapter(gpu: Gpu): boolean {
  return gpu.cpuAdapter;
}

/** Every tile configuration of the shape table, by name (tests run each one). */
export const MATMUL_TILE_CONFIGS: Record<string, MatmulTiles> = Object.fromEntries(
  TILE_TABLE.map((e) => [e.name, e.tiles]),
);

const MAX_WORKGROUPS = 65535;

interface Gemm {
  op: string;
  a: Tensor;
  b: Tensor;
  out: Tensor;
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  accumulate: boolean;
  bias: Tensor | null;
  /** Also write GELU(C) here (the fused epilogue of {@linkcode linearGelu}). */
  gelu?: Tensor | null;
}

/** Whether an operand can be read as vec4: its contiguous axis and its view start are 4-aligned. */
function vec4Ok(t: Tensor, contiguous: number): boolean {
  return contiguous % 4 === 0 && t.offset % 16 === 0;
}

/** Records the dispatches of one product (shapes already validated). */
function gemm(gpu: Gpu, g: Gemm): void {
  const switches = gpu.options.matmul;
  const { tiles: t, splits, kChunk } = gpuMatmulPlan(gpu, g.m, g.n, g.k, g.batch, {
    transA: g.transA,
    transB: g.transB,
    aType: g.a.dtype,
    bType: g.b.dtype,
  });
  const wx = Math.ceil(g.n / (4 * t.TN4 * t.WX));
  const wy = Math.ceil(g.m / (4 * t.TM4 * t.WY));
  const wz = g.batch * splits;
  if (wx > MAX_WORKGROUPS || wy > MAX_WORKGROUPS || wz > MAX_WORKGROUPS) {
    throw new RangeError(
      `${g.op}: [${g.batch}, ${g.m}, ${g.n}] output needs [${wx}, ${wy}, ${wz}] workgroups ` +
        `(max ${MAX_WORKGROUPS} per dimension); split the product`,
    );
  }
  const f16 = g.a.dtype === "f16" || g.b.dtype === "f16";
  const vecA = vec4Ok(g.a, g.transA ? g.m : g.k);
  const vecB = vec4Ok(g.b, g.transB ? g.k : g.n);
  const mn = g.m * g.n;
  const gelu = g.gelu ?? null;
  const direct = splits === 1;
  // Split-K: the tiles write partial products (alpha, bias, accumulate and GELU come after the sum).
  // Split-K's partial products are released when the scope ends.
  gpu.scope(() => {
    const part = direct ? g.out : gpu.alloc([wz, g.m, g.n], "f32", "matmul.partial");
    const bias = g.bias;
    gpu.run(
      MATMUL,
      {
        constants: { WX: t.WX, WY: t.WY, BK: t.BK, TRANS_A: +g.transA, TRANS_B: +g.transB },
        template: {
          vec_a: vecA,
          vec_b: vecB,
          tm4: t.TM4,
          tn4: t.TN4,
          enable_f16: f16,
          a_t: g.a.dtype,
          b_t: g.b.dtype,
          w_t: f16 && switches.f16Math ? "f16" : "f32",
          has_bias: direct && !!bias,
          gelu: direct && !!gelu,
        },
      },
      { a: g.a, b: g.b, c: part, bias: direct ? bias : null, y: direct ? gelu : null },
      {
        M: g.m,
        N: g.n,
        K: g.k,
        strideA: g.batch === 1 ? 0 : g.m * g.k,
        strideB: g.batch === 1 ? 0 : g.k * g.n,
        strideC: wz === 1 ? 0 : mn,
        alpha: direct ? g.alpha : 1,
        accumulate: direct && g.accumulate ? 1 : 0,
        kChunk,
        splits,
      },
      [wx, wy, wz],
    );
    if (direct) return;
    const count = g.batch * mn;
    gpu.run(
      SPLITK,
      { template: { gelu: !!gelu, has_bias: !!bias } },
      { part, c: g.out, bias, y: gelu },
      {
        count,
        mn,
        n: g.n,
        splits,
        alpha: g.alpha,
        accumulate: g.accumulate ? 1 : 0,
      },
      Gpu.grid(Math.ceil(count / 1024)),
    );
  }, "matmul");
}

function describe(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

function expectF32(op: string, name: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
}

/** A product operand: f32, or f16 on a device with `shader-f16`. */
function expectOperand(gpu: Gpu, op: string, name: string, t: Tensor): void {
  if (t.dtype === "f16") {
    if (!gpu.hasF16) {
      throw new TypeError(
        `${op}: ${name} ${t} is f16 but this device lacks the WebGPU feature "shader-f16" ` +
          `(check gpu.hasF16 before storing operands as f16; keep them f32 on this adapter)`,
      );
    }
    return;
  }
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32 or f16, got ${t}`);
}

function expectDistinct(op: string, out: Tensor, inputs: (Tensor | null)[]): void {
  for (const t of inputs) {
    if (t && t.buffer === out.buffer) {
      throw new RangeError(`${op}: the output ${t} must not share a buffer with an input`);
    }
  }
}

/** Checks (or allocates) an output of `shape`; an output of the same size and last dim is fine. */
function outputFor(
  gpu: Gpu,
  op: string,
  shape: number[],
  out: Tensor | undefined,
  label: string,
): Tensor {
  if (!out) return gpu.alloc(shape, "f32", label);
  expectF32(op, "out", out);
  const size = shape.reduce((x, y) => x * y, 1);
  if (out.size !== size || out.shape[out.shape.length - 1] !== shape[shape.length - 1]) {
    throw new RangeError(
      `${op}: out ${describe(out)} does not match the result [${shape.join(", ")}]`,
    );
  }
  return out;
}

/**
 * `C = alpha·op(A)·op(B)` (`+ C` when `accumulate`). Rank 2 (`[M,K]·[K,N]`) or rank 3 batched
 * (`[batch,M,K]·[batch,K,N]`); with `transA` A is stored `[., K, M]`, with `transB` B is `[., N, K]`.
 * A and B may be f16 where `gpu.hasF16` (widened to f32 on load; C is f32).
 * Returns `out` (allocated when not given).
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { matmul } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const a = gpu.fromArray(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * const b = gpu.fromArray(new Float32Array([1, 0, 0, 1]), [2, 2]);
 * console.log(await gpu.read(matmul(gpu, a, b, { alpha: 2 }))); // Float32Array [2, 4, 6, 8]
 * ```
 */
export function matmul(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  opts: MatmulOptions = {},
  out?: Tensor,
): Tensor {
  const op = "matmul";
  const { transA = false, transB = false, accumulate = false, alpha = 1 } = opts;
  expectOperand(gpu, op, "A", a);
  expectOperand(gpu, op, "B", b);
  const rank = a.shape.length;
  if ((rank !== 2 && rank !== 3) || b.shape.length !== rank) {
    throw new TypeError(
      `${op}: A and B must both have rank 2 or both rank 3, got A ${describe(a)}, B ${describe(b)}`,
    );
  }
  const batch = rank === 3 ? a.shape[0] : 1;
  if (rank === 3 && b.shape[0] !== batch) {
    throw new RangeError(`${op}: batch mismatch, A ${describe(a)} vs B ${describe(b)}`);
  }
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const [m, ka] = transA ? [ac, ar] : [ar, ac];
  const [kb, n] = transB ? [bc, br] : [br, bc];
  if (ka !== kb) {
    throw new RangeError(
      `${op}: inner dimensions differ: op(A) of A ${describe(a)} has K=${ka}, op(B) of ` +
        `B ${describe(b)} has K=${kb} (transA=${transA}, transB=${transB})`,
    );
  }
  if (!Number.isFinite(alpha)) throw new RangeError(`${op}: alpha must be finite, got ${alpha}`);
  if (accumulate && !out) throw new TypeError(`${op}: accumulate needs an out tensor to add to`);
  const shape = rank === 3 ? [batch, m, n] : [m, n];
  const c = outputFor(gpu, op, shape, out, "matmul.out");
  expectDistinct(op, c, [a, b]);
  if (ka === 0) {
    if (!accumulate) gpu.fill(c, 0);
    return c;
  }
  gemm(gpu, {
    op,
    a,
    b,
    out: c,
    batch,
    m,
    n,
    k: ka,
    transA,
    transB,
    alpha,
    accumulate,
    bias: null,
  });
  return c;
}

/** Rows (all leading dims) and last dim of a rank ≥ 1 tensor. */
function rowsOf(t: Tensor): [number, number] {
  const last = t.shape[t.shape.length - 1];
  return [last === 0 ? 0 : t.size / last, last];
}

/**
 * `Y[M,N] = X[M,K]·W[N,K]ᵀ + b[N]` (Hugging Face weights are `[out, in]`). X may have any rank ≥ 1;
 * its leading dims are the rows, and Y keeps them: `[..., K]` → `[..., N]`.
 * X and W may be f16 where `gpu.hasF16` (dispatch on their dtypes; f32 accumulation, f32 Y):
 * `linear(gpu, x, castF32ToF16(gpu, w), b)` is the f16-weight product.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { linear } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2]), [1, 2]);
 * const w = gpu.fromArray(new Float32Array([1, 1, 1, -1, 0, 3]), [3, 2]);
 * const b = gpu.fromArray(new Float32Array([0, 0, 1]), [3]);
 * console.log(await gpu.read(linear(gpu, x, w, b))); // Float32Array [3, -1, 7]
 * ```
 */
export function linear(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  out?: Tensor,
): Tensor {
  const op = "linear";
  const [m, n, k] = checkLinear(gpu, op, x, w, b);
  const y = outputFor(gpu, op, [...x.shape.slice(0, -1), n], out, "linear.out");
  expectDistinct(op, y, [x, w, b]);
  if (m === 0 || n === 0) return y;
  gemm(gpu, {
    op,
    a: x,
    b: w,
    out: y,
    batch: 1,
    m,
    n,
    k,
    transA: false,
    transB: true,
    alpha: 1,
    accumulate: false,
    bias: b,
  });
  return y;
}

/**
 * `pre = X·Wᵀ + b` and `y = GELU(pre)` (exact erf GELU, the same WGSL as `gelu` in gelu.ts) in one
 * product: the GELU runs in the matmul's epilogue, saving a pass over `[M, N]`. `pre` is what the
 * backward needs: `dPre = geluBackward(gpu, dY, pre)`, then {@linkcode linearBackward} with dPre.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { linearGelu } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2]), [1, 2]);
 * const w = gpu.fromArray(new Float32Array([1, 1, 1, -1]), [2, 2]);
 * const b = gpu.fromArray(new Float32Array([0, 1]), [2]);
 * const { pre, y } = linearGelu(gpu, x, w, b);
 * console.log(await gpu.read(pre), await gpu.read(y)); // [3, 0] [≈2.99595, 0]
 * ```
 */
export function linearGelu(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
): { pre: Tensor; y: Tensor } {
  const op = "linearGelu";
  const [m, n, k] = checkLinear(gpu, op, x, w, b);
  const shape = [...x.shape.slice(0, -1), n];
  const pre = gpu.alloc(shape, "f32", "linearGelu.pre");
  const y = gpu.alloc(shape, "f32", "linearGelu.y");
  if (m === 0 || n === 0) return { pre, y };
  gemm(gpu, {
    op,
    a: x,
    b: w,
    out: pre,
    batch: 1,
    m,
    n,
    k,
    transA: false,
    transB: true,
    alpha: 1,
    accumulate: false,
    bias: b,
    gelu: y,
  });
  return { pre, y };
}

/** Validates `X·Wᵀ + b` operands; returns [rows M, out N, in K]. */
function checkLinear(
  gpu: Gpu,
  op: string,
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
): [number, number, number] {
  expectOperand(gpu, op, "X", x);
  expectOperand(gpu, op, "W", w);
  if (x.shape.length < 1) throw new TypeError(`${op}: X must have rank ≥ 1, got ${describe(x)}`);
  if (w.shape.length !== 2) {
    throw new TypeError(`${op}: W must have rank 2 [out, in], got ${describe(w)}`);
  }
  const [m, k] = rowsOf(x);
  const [n, kw] = w.shape;
  if (k !== kw || k === 0) {
    throw new RangeError(
      `${op}: X ${describe(x)} has ${k} features but W ${describe(w)} expects ${kw}`,
    );
  }
  if (b) {
    expectF32(op, "b", b);
    if (b.shape.length !== 1 || b.shape[0] !== n) {
      throw new RangeError(`${op}: bias ${describe(b)} must be [${n}] for W ${describe(w)}`);
    }
  }
  return [m, n, k];
}

/**
 * Backward of {@linkcode linear}: `dW += dYᵀ·X`, `db += column sums of dY` (when `db` is given),
 * and returns `dX = dY·W` (a new tensor shaped like X) unless `needInput` is false (then null).
 * Gradients ACCUMULATE into `dw` and `db`: zero them at the start of a step. With `dxInto`, dX is
 * added into that tensor in the product's epilogue (bit-identical to a separate `add`, one
 * dispatch fewer) and `dxInto` is returned.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { linearBackward } from "./matmul.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2]), [1, 2]);
 * const w = gpu.fromArray(new Float32Array([1, 1, 1, -1, 0, 3]), [3, 2]);
 * const dy = gpu.fromArray(new Float32Array([1, 0, 2]), [1, 3]);
 * const dw = gpu.zeros([3, 2]), db = gpu.zeros([3]);
 * const dx = linearBackward(gpu, x, w, dy, dw, db)!;
 * console.log(await gpu.read(dx)); // Float32Array [1, 7]
 * console.log(await gpu.read(dw)); // Float32Array [1, 2, 0, 0, 2, 4]
 * ```
 */
export function linearBackward(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  dy: Tensor,
  dw: Tensor,
  db: Tensor | null,
  needInput = true,
  dxInto: Tensor | null = null,
): Tensor | null {
  const op = "linearBackward";
  // X and W may be f16 (mixed-precision training saves activations and reads weight copies in
  // f16); the gradients dY, dW, db and dX stay f32.
  expectOperand(gpu, op, "X", x);
  expectOperand(gpu, op, "W", w);
  for (const [name, t] of [["dY", dy], ["dW", dw]] as const) expectF32(op, name, t);
  if (x.shape.length < 1) throw new TypeError(`${op}: X must have rank ≥ 1, got ${describe(x)}`);
  if (w.shape.length !== 2) {
    throw new TypeError(`${op}: W must have rank 2 [out, in], got ${describe(w)}`);
  }
  const [m, k] = rowsOf(x);
  const [n, kw] = w.shape;
  const [my, ny] = rowsOf(dy);
  if (k !== kw || ny !== n || my !== m) {
    throw new RangeError(
      `${op}: shapes disagree: X ${describe(x)}, W ${describe(w)}, dY ${describe(dy)} ` +
        `(want X [..., ${kw}] and dY [..., ${n}] with the same rows)`,
    );
  }
  if (dw.size !== n * k || dw.shape[dw.shape.length - 1] !== k) {
    throw new RangeError(`${op}: dW ${describe(dw)} must match W ${describe(w)}`);
  }
  if (db) {
    expectF32(op, "db", db);
    if (db.shape.length !== 1 || db.shape[0] !== n) {
      throw new RangeError(`${op}: db ${describe(db)} must be [${n}] for W ${describe(w)}`);
    }
  }
  expectDistinct(op, dw, [x, w, dy, db]);
  if (db) expectDistinct(op, db, [x, w, dy]);
  if (m > 0 && k > 0 && n > 0) {
    // dW[N,K] += dYᵀ[N,M]·X[M,K]: dY is stored [M,N], i.e. op(A) transposed.
    gemm(gpu, {
      op,
      a: dy,
      b: x,
      out: dw,
      batch: 1,
      m: n,
      n: k,
      k: m,
      transA: true,
      transB: false,
      alpha: 1,
      accumulate: true,
      bias: null,
    });
  }
  if (db && m > 0 && n > 0) {
    gpu.run(COLSUM, {}, { dy, db }, { M: m, N: n }, [Math.ceil(n / 64)]);
  }
  if (!needInput) return null;
  if (dxInto) {
    expectF32(op, "dxInto", dxInto);
    if (dxInto.size !== x.size) {
      throw new RangeError(`${op}: dxInto ${describe(dxInto)} must match X ${describe(x)}`);
    }
    expectDistinct(op, dxInto, [x, w, dy, dw, db]);
  }
  const dx = dxInto ?? gpu.alloc(x.shape, "f32", "linear.dx");
  if (n === 0) {
    if (!dxInto) gpu.fill(dx, 0);
  } else if (m > 0 && k > 0) {
    gemm(gpu, {
      op,
      a: dy,
      b: w,
      out: dx,
      batch: 1,
      m,
      n: k,
      k: n,
      transA: false,
      transB: false,
      alpha: 1,
      accumulate: dxInto !== null,
      bias: null,
    });
  }
  return dx;
}
