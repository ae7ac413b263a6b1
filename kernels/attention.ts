/**
 * Fused scaled dot-product attention (FlashAttention-style) and its backward pass.
 *
 * q, k, v and out use the layout a linear layer writes, `[B, T, heads·headDim]`. Each invocation
 * owns a few consecutive query rows of one (batch, head), walks the keys and values in order
 * straight from device memory and keeps a running max and sum per row (online softmax), so no
 * `[T×T]` matrix ever reaches device memory. The per-row log-sum-exp is saved for the backward
 * pass, which recomputes the probabilities (FlashAttention-2): one kernel for dq, one for dk and
 * dv (an invocation per few keys), no atomics, fixed summation order (deterministic). How many
 * rows an invocation owns and the workgroup size are picked per call from the shape
 * (see kernels/ATTENTION_NOTES.md for the measurements behind the choice).
 *
 * The mask is `[B, T]` f32, 1 for real tokens and 0 for padding: padded keys are skipped (the same
 * as an additive −∞), padded query rows still get finite outputs. A row with no real key at all
 * gets zeros. `headDim` must be a multiple of 4 (rows move as vec4) and at most 64.
 *
 * Optional attention-probability dropout (`drop`): each probability is kept with probability
 * 1 − p and scaled by 1/(1 − p), with the mask of `kernels/dropout.ts` at index
 * ((firstSequence + b)·heads + h)·seq² + i·seq + j (query row i, key j), so the backward given the
 * same `drop` uses the same mask; the log-sum-exp is that of the undropped softmax.
 *
 * {@linkcode attentionPacked} and {@linkcode attentionBackwardPacked} take q, k and v packed in
 * one `[B·T, 3·heads·headDim]` tensor (a fused QKV product's output) and give the gradient in the
 * same packed layout, bit for bit what the unpacked functions give on the column blocks.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";
import { attentionShapeKey } from "./tune.ts";

/** Shape of an attention call. */
export interface AttentionDims {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Score scale; defaults to `1/sqrt(headDim)`. */
  scale?: number;
}

const DIMS = {
  batch: "u32",
  seq: "u32",
  heads: "u32",
  scale: "f32",
  groups: "u32",
  drop_key: "u32",
  drop_threshold: "u32",
  drop_scale: "f32",
  drop_b0: "u32",
} as const;
const R = "read", RW = "read_write";
/** A binding read through WGSL variable `wgsl` as `type` (the entry points' own variables). */
const via = (access: typeof R | typeof RW, type: string, wgsl: string) =>
  ({ access, type, wgsl }) as const;
/**
 * Template variants the binding test compiles (the smallest head and row counts and larger, with
 * and without dropout, unpacked and packed q|k|v).
 */
const TEST_VARIANTS = [
  { d4: 1, rows: 1, drop: 0, packed: 0 },
  { d4: 16, rows: 2, drop: 0, packed: 0 },
  { d4: 2, rows: 2, drop: 1, packed: 0 },
  { d4: 1, rows: 1, drop: 0, packed: 1 },
  { d4: 2, rows: 2, drop: 1, packed: 1 },
];
/** A binding that only the unpacked (packed: 0) or only the packed (packed: 1) variant uses. */
const only = (access: typeof R | typeof RW, type: string, wgsl: string) =>
  ({ access, type, wgsl, optional: true }) as const;
const ATTENTION = kernels("attention.wgsl", {
  forward: {
    entries: ["forward"],
    uniforms: DIMS,
    variants: TEST_VARIANTS,
    bindings: {
      q: via(R, "vec4f", "fq"),
      k: via(R, "vec4f", "fk"),
      v: via(R, "vec4f", "fv"),
      mask: via(R, "f32", "fmask"),
      out: via(RW, "vec4f", "fout"),
      lse: via(RW, "f32", "flse"),
    },
  },
  delta: {
    entries: ["backward_delta"],
    uniforms: DIMS,
    variants: TEST_VARIANTS,
    bindings: {
      dOut: via(R, "vec4f", "dl_do"),
      out: via(R, "vec4f", "dl_out"),
      lse: via(R, "f32", "dl_lse"),
      stats: via(RW, "vec2f", "dl_stats"),
    },
  },
  dq: {
    entries: ["backward_dq"],
    uniforms: DIMS,
    variants: TEST_VARIANTS,
    bindings: {
      dOut: via(R, "vec4f", "qd_do"),
      q: via(R, "vec4f", "qd_q"),
      k: via(R, "vec4f", "qd_k"),
      v: via(R, "vec4f", "qd_v"),
      stats: via(R, "vec2f", "qd_stats"),
      mask: via(R, "f32", "qd_mask"),
      dq: via(RW, "vec4f", "qd_dq"),
    },
  },
  dkdv: {
    entries: ["backward_dkdv"],
    uniforms: DIMS,
    variants: TEST_VARIANTS,
    bindings: {
      dOut: via(R, "vec4f", "kv_do"),
      q: via(R, "vec4f", "kv_q"),
      k: via(R, "vec4f", "kv_k"),
      v: via(R, "vec4f", "kv_v"),
      stats: via(R, "vec2f", "kv_stats"),
      mask: via(R, "f32", "kv_mask"),
      // Unpacked: dk and dv. Packed: both into the k and v blocks of dqkv through one binding
      // (two writable bindings may not alias one buffer).
      dk: only(RW, "vec4f", "kv_dk"),
      dv: only(RW, "vec4f", "kv_dv"),
      dqkv: only(RW, "vec4f", "kv_dqkv"),
    },
  },
});
/** Largest head size the register arrays in attention.wgsl hold. */
const MAX_HEAD_DIM = 64;

function positiveInt(op: string, field: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`${op}: dims.${field} must be a positive integer, got ${n}`);
  }
}

/** Validates dims and the scale; returns the scale. */
function checkDims(op: string, dims: AttentionDims): number {
  positiveInt(op, "batch", dims.batch);
  positiveInt(op, "seq", dims.seq);
  positiveInt(op, "heads", dims.heads);
  positiveInt(op, "headDim", dims.headDim);
  if (dims.headDim > MAX_HEAD_DIM || dims.headDim % 4 !== 0) {
    throw new RangeError(
      `${op}: dims.headDim must be a multiple of 4 up to ${MAX_HEAD_DIM}, got ${dims.headDim}`,
    );
  }
  if (dims.batch > 65535 || dims.heads > 65535) {
    throw new RangeError(`${op}: batch ${dims.batch} or heads ${dims.heads} exceeds 65535`);
  }
  const scale = dims.scale ?? 1 / Math.sqrt(dims.headDim);
  if (!Number.isFinite(scale)) throw new RangeError(`${op}: dims.scale must be finite`);
  return scale;
}

/** Accepts `[B·T, H·D]`, `[B, T, H·D]` or `[B, T, H, D]` f32 tensors. */
function checkActivation(op: string, name: string, t: Tensor, dims: AttentionDims): void {
  const { batch: B, seq: T, heads: H, headDim: D } = dims;
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  const s = t.shape;
  const ok = (s.length === 2 && s[0] === B * T && s[1] === H * D) ||
    (s.length === 3 && s[0] === B && s[1] === T && s[2] === H * D) ||
    (s.length === 4 && s[0] === B && s[1] === T && s[2] === H && s[3] === D);
  if (!ok) {
    throw new RangeError(
      `${op}: ${name} ${t} does not match [batch, seq, heads·headDim] = [${B}, ${T}, ${H * D}]`,
    );
  }
}

function checkMask(op: string, mask: Tensor, dims: AttentionDims): void {
  if (mask.dtype !== "f32") throw new TypeError(`${op}: mask must be f32, got ${mask}`);
  if (mask.size !== dims.batch * dims.seq) {
    throw new RangeError(
      `${op}: mask ${mask} does not match [batch, seq] = [${dims.batch}, ${dims.seq}]`,
    );
  }
}

function checkLse(op: string, lse: Tensor, dims: AttentionDims): void {
  if (lse.dtype !== "f32") throw new TypeError(`${op}: lse must be f32, got ${lse}`);
  if (lse.size !== dims.batch * dims.heads * dims.seq) {
    throw new RangeError(
      `${op}: lse ${lse} does not match [batch, heads, seq] = ` +
        `[${dims.batch}, ${dims.heads}, ${dims.seq}]`,
    );
  }
}

/** Work split of one call: rows per invocation, workgroup size, invocations per (batch, head). */
export interface Plan {
  rows: number;
  wg: number;
  groups: number;
  workgroups: [number, number];
}

/** Largest power of two ≤ n (n ≥ 1). */
function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/**
 * Rows per invocation: each loaded key/value vec4 serves that many rows. On a CPU adapter
 * (lavapipe) loads are what cost and spilled registers are cheap, so 8 rows at every head size;
 * on a real GPU the rows' registers (2·headDim/4 vec4 each) must stay small, so 16/(headDim/4)
 * rows (1 at headDim 64, as many registers as the tiled kernel before). Never more rows than seq
 * rounded up to a power of two. Workgroup: 64 invocations, fewer when that would leave fewer than
 * 8 workgroups, so that short sequences still spread over every core.
 */
function plan(dims: AttentionDims, cpu: boolean): Plan {
  const d4 = dims.headDim / 4;
  const seqPow2 = 2 ** Math.ceil(Math.log2(dims.seq));
  const rows = Math.min(cpu ? 8 : Math.max(1, 16 / d4), seqPow2);
  const groups = Math.ceil(dims.seq / rows);
  const threads = dims.batch * dims.heads * groups;
  const wg = Math.max(8, Math.min(64, floorPow2(Math.max(1, threads / 8))));
  return { rows, wg, groups, workgroups: Gpu.grid(Math.ceil(threads / wg)) };
}

/**
 * The forward work split `gpu` uses: the adapter's tuned one for these dims when the Gpu loaded a
 * tune cache that has them (kernels/tune.ts), else the rule below. Each query row is still
 * computed by one invocation walking the keys in order, so the split does not change results.
 */
export function attentionPlanFor(gpu: Gpu, dims: AttentionDims): Plan & { tuned: boolean } {
  const t = gpu.tuned?.attention?.[attentionShapeKey(dims)];
  if (t) {
    const rows = Math.min(t.rows, 2 ** Math.ceil(Math.log2(dims.seq)));
    const groups = Math.ceil(dims.seq / rows);
    const threads = dims.batch * dims.heads * groups;
    return { rows, wg: t.wg, groups, workgroups: Gpu.grid(Math.ceil(threads / t.wg)), tuned: true };
  }
  return { ...planFor(gpu, dims), tuned: false };
}

/** The rule's work split (the backward kernels always use it). */
function planFor(gpu: Gpu, dims: AttentionDims): Plan {
  const cpu = gpu.cpuAdapter;
  return plan(dims, cpu);
}

/**
 * Attention-probability dropout of one call: probability `p`, mask key, and the index of the
 * batch's first sequence in the whole batch (GradCache chunks; default 0).
 */
export interface AttentionDropout {
  p: number;
  key: number;
  firstSequence?: number;
}

function checkDrop(op: string, drop: AttentionDropout | undefined, dims: AttentionDims): void {
  if (!drop) return;
  if (!(drop.p >= 0 && drop.p < 1)) throw new RangeError(`${op}: drop.p must be in [0, 1)`);
  const b0 = drop.firstSequence ?? 0;
  if ((b0 + dims.batch) * dims.heads * dims.seq * dims.seq > 2 ** 32) {
    throw new RangeError(
      `${op}: the dropout mask index exceeds 2^32 for ${b0 + dims.batch} sequences`,
    );
  }
}

function params(
  dims: AttentionDims,
  scale: number,
  groups: number,
  drop?: AttentionDropout,
) {
  return {
    batch: dims.batch,
    seq: dims.seq,
    heads: dims.heads,
    scale,
    groups,
    drop_key: drop ? drop.key >>> 0 : 0,
    drop_threshold: drop ? Math.min(2 ** 32 - 1, Math.round(drop.p * 2 ** 32)) : 0,
    drop_scale: drop ? 1 / (1 - drop.p) : 1,
    drop_b0: drop?.firstSequence ?? 0,
  };
}

/** Accepts a packed q|k|v tensor `[B·T, 3·H·D]` or `[B, T, 3·H·D]`, f32. */
function checkPacked(op: string, qkv: Tensor, dims: AttentionDims): void {
  const { batch: B, seq: T, heads: H, headDim: D } = dims;
  if (qkv.dtype !== "f32") throw new TypeError(`${op}: qkv must be f32, got ${qkv}`);
  const s = qkv.shape;
  const ok = (s.length === 2 && s[0] === B * T && s[1] === 3 * H * D) ||
    (s.length === 3 && s[0] === B && s[1] === T && s[2] === 3 * H * D);
  if (!ok) {
    throw new RangeError(
      `${op}: qkv ${qkv} does not match [batch·seq, 3·heads·headDim] = [${B * T}, ${3 * H * D}]`,
    );
  }
}

/** The q, k and v read by the kernels: three tensors, or one packed tensor bound to all three. */
type Sources = { q: Tensor; k: Tensor; v: Tensor; packed: 0 | 1 };

/** The forward dispatch shared by {@linkcode attention} and {@linkcode attentionPacked}. */
function forward(
  gpu: Gpu,
  src: Sources,
  mask: Tensor,
  dims: AttentionDims,
  scale: number,
  drop: AttentionDropout | undefined,
  outShape: readonly number[],
): { out: Tensor; lse: Tensor } {
  const out = gpu.alloc(outShape, "f32", "attention.out");
  const lse = gpu.alloc([dims.batch, dims.heads, dims.seq], "f32", "attention.lse");
  const pl = attentionPlanFor(gpu, dims);
  gpu.run(
    ATTENTION.forward,
    {
      constants: { WG: pl.wg },
      template: { d4: dims.headDim / 4, rows: pl.rows, drop: drop ? 1 : 0, packed: src.packed },
    },
    { q: src.q, k: src.k, v: src.v, mask, out, lse },
    params(dims, scale, pl.groups, drop),
    pl.workgroups,
  );
  return { out, lse };
}

/**
 * The backward dispatches shared by {@linkcode attentionBackward} and
 * {@linkcode attentionBackwardPacked}: delta, then dq into `grads.dq`, then dk and dv into
 * `grads.dk` and `grads.dv` (unpacked) or `grads.dqkv` (packed, the tensor `grads.dq` is too).
 * The gradient tensors are allocated by `alloc` inside the backward's scope.
 */
function backward<G extends { dq: Tensor }>(
  gpu: Gpu,
  name: string,
  dOut: Tensor,
  src: Sources,
  out: Tensor,
  lse: Tensor,
  mask: Tensor,
  dims: AttentionDims,
  scale: number,
  drop: AttentionDropout | undefined,
  alloc: () => G,
  writes: (g: G) => { dk?: Tensor; dv?: Tensor; dqkv?: Tensor },
): G {
  const pl = planFor(gpu, dims);
  const spec = (rows: number, wg: number, dropping = drop !== undefined) => ({
    constants: { WG: wg },
    template: { d4: dims.headDim / 4, rows, drop: dropping ? 1 : 0, packed: src.packed },
  });
  const { q, k, v } = src;
  // (lse, delta) pairs per row: both backward kernels then fit in 8 storage bindings.
  return gpu.scope(() => {
    const stats = gpu.alloc([dims.batch, dims.heads, dims.seq, 2], "f32", "attention.stats");
    const rowCount = dims.batch * dims.heads * dims.seq;
    gpu.run(
      ATTENTION.delta,
      spec(1, 64, false), // D_i = dOut_i·out_i holds with dropout too
      { dOut, out, lse, stats },
      params(dims, scale, dims.seq),
      Gpu.grid(Math.ceil(rowCount / 64)),
    );
    const grads = alloc();
    gpu.run(
      ATTENTION.dq,
      spec(pl.rows, pl.wg),
      { dOut, q, k, v, stats, mask, dq: grads.dq },
      params(dims, scale, pl.groups, drop),
      pl.workgroups,
    );
    gpu.run(
      ATTENTION.dkdv,
      spec(pl.rows, pl.wg),
      { dOut, q, k, v, stats, mask, ...writes(grads) },
      params(dims, scale, pl.groups, drop),
      pl.workgroups,
    );
    // Later dispatches in the same pass run after these, so the pool may hand it out again now.
    return grads;
  }, name);
}

/**
 * Fused scaled dot-product attention with an online softmax: one pass over keys, no `[seq×seq]`
 * matrix in device memory; saves the per-row log-sum-exp for backward.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { attention } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 4 };
 * const q = gpu.fromArray(new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]), [1, 2, 4]);
 * const mask = gpu.fromArray(new Float32Array([1, 1]), [1, 2]);
 * const { out, lse } = attention(gpu, q, q, q, mask, dims);
 * console.log(await gpu.read(out)); // each row a softmax-weighted mix of the two value rows
 * gpu.release(q, mask, out, lse);
 * ```
 */
export function attention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor,
  dims: AttentionDims,
  drop?: AttentionDropout,
): { out: Tensor; lse: Tensor } {
  const op = "attention";
  const scale = checkDims(op, dims);
  checkDrop(op, drop, dims);
  if (drop?.p === 0) drop = undefined;
  checkActivation(op, "q", q, dims);
  checkActivation(op, "k", k, dims);
  checkActivation(op, "v", v, dims);
  checkMask(op, mask, dims);
  return forward(gpu, { q, k, v, packed: 0 }, mask, dims, scale, drop, q.shape);
}

/**
 * Fused attention over a packed `[B·T, 3H]` q|k|v tensor (H = heads·headDim; also accepted as
 * `[B, T, 3H]`): row r holds q_r in columns [0, H), k_r in [H, 2H) and v_r in [2H, 3H), which is
 * what one fused QKV product `[B·T, H]·[3H, H]ᵀ` writes. The same result, bit for bit, as
 * {@linkcode attention} on its three column blocks (same arithmetic and order; only the indexing
 * differs), with the same work split (a tuned one too). `out` is `[B·T, H]` (`[B, T, H]` for a
 * 3-D qkv); `lse` is `[B, heads, T]`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { attentionPacked } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 4 };
 * // Row r: q_r | k_r | v_r.
 * const qkv = gpu.fromArray(
 *   new Float32Array([
 *     ...[1, 0, 0, 0], ...[1, 0, 0, 0], ...[1, 2, 3, 4],
 *     ...[0, 1, 0, 0], ...[0, 1, 0, 0], ...[5, 6, 7, 8],
 *   ]),
 *   [2, 12],
 * );
 * const mask = gpu.fromArray(new Float32Array([1, 1]), [1, 2]);
 * const { out, lse } = attentionPacked(gpu, qkv, mask, dims);
 * console.log(out.shape, await gpu.read(out)); // [2, 4]: each row a mix of the two value rows
 * gpu.release(qkv, mask, out, lse);
 * ```
 */
export function attentionPacked(
  gpu: Gpu,
  qkv: Tensor,
  mask: Tensor,
  dims: AttentionDims,
  drop?: AttentionDropout,
): { out: Tensor; lse: Tensor } {
  const op = "attentionPacked";
  const scale = checkDims(op, dims);
  checkDrop(op, drop, dims);
  if (drop?.p === 0) drop = undefined;
  checkPacked(op, qkv, dims);
  checkMask(op, mask, dims);
  const outShape = [...qkv.shape.slice(0, -1), dims.heads * dims.headDim];
  return forward(gpu, { q: qkv, k: qkv, v: qkv, packed: 1 }, mask, dims, scale, drop, outShape);
}

/**
 * Gradients of attention with respect to q, k and v, given the upstream gradient `dOut` and the
 * forward's `out` and `lse`. Masked keys get zero dk and dv.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { attention, attentionBackward } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 4 };
 * const x = gpu.fromArray(new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]), [1, 2, 4]);
 * const mask = gpu.fromArray(new Float32Array([1, 1]), [1, 2]);
 * const { out, lse } = attention(gpu, x, x, x, mask, dims);
 * const { dq, dk, dv } = attentionBackward(gpu, out, x, x, x, out, lse, mask, dims);
 * console.log(await gpu.read(dv));
 * gpu.release(x, mask, out, lse, dq, dk, dv);
 * ```
 */
export function attentionBackward(
  gpu: Gpu,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  mask: Tensor,
  dims: AttentionDims,
  drop?: AttentionDropout,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = "attentionBackward";
  const scale = checkDims(op, dims);
  checkDrop(op, drop, dims);
  if (drop?.p === 0) drop = undefined;
  checkActivation(op, "dOut", dOut, dims);
  checkActivation(op, "q", q, dims);
  checkActivation(op, "k", k, dims);
  checkActivation(op, "v", v, dims);
  checkActivation(op, "out", out, dims);
  checkLse(op, lse, dims);
  checkMask(op, mask, dims);
  return backward(
    gpu,
    op,
    dOut,
    { q, k, v, packed: 0 },
    out,
    lse,
    mask,
    dims,
    scale,
    drop,
    () => ({
      dq: gpu.alloc(q.shape, "f32", "attention.dq"),
      dk: gpu.alloc(k.shape, "f32", "attention.dk"),
      dv: gpu.alloc(v.shape, "f32", "attention.dv"),
    }),
    ({ dk, dv }) => ({ dk, dv }),
  );
}

/**
 * Backward of {@linkcode attentionPacked}: the gradient with respect to the packed q|k|v tensor,
 * `dqkv` (f32, qkv's shape), row r holding dq_r | dk_r | dv_r in the column blocks of qkv, so that
 * one product gives dX and one gives dW of a fused QKV projection. Bit for bit the dq, dk and dv
 * of {@linkcode attentionBackward} on the column blocks. `dOut` and `out` are `[B·T, H]` (or
 * `[B, T, H]`), as {@linkcode attentionPacked} returns `out`. dq is written in one dispatch, dk
 * and dv in another through a single writable binding; masked keys get zero dk and dv.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { attentionBackwardPacked, attentionPacked } from "./attention.ts";
 * const gpu = await Gpu.create();
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 4 };
 * const qkv = gpu.fromArray(
 *   new Float32Array([
 *     ...[1, 0, 0, 0], ...[1, 0, 0, 0], ...[1, 2, 3, 4],
 *     ...[0, 1, 0, 0], ...[0, 1, 0, 0], ...[5, 6, 7, 8],
 *   ]),
 *   [2, 12],
 * );
 * const mask = gpu.fromArray(new Float32Array([1, 1]), [1, 2]);
 * const { out, lse } = attentionPacked(gpu, qkv, mask, dims);
 * const dqkv = attentionBackwardPacked(gpu, out, qkv, out, lse, mask, dims);
 * console.log(dqkv.shape, await gpu.read(dqkv)); // [2, 12]: dq | dk | dv per row
 * gpu.release(qkv, mask, out, lse, dqkv);
 * ```
 */
export function attentionBackwardPacked(
  gpu: Gpu,
  dOut: Tensor,
  qkv: Tensor,
  out: Tensor,
  lse: Tensor,
  mask: Tensor,
  dims: AttentionDims,
  drop?: AttentionDropout,
): Tensor {
  const op = "attentionBackwardPacked";
  const scale = checkDims(op, dims);
  checkDrop(op, drop, dims);
  if (drop?.p === 0) drop = undefined;
  checkActivation(op, "dOut", dOut, dims);
  checkPacked(op, qkv, dims);
  checkActivation(op, "out", out, dims);
  checkLse(op, lse, dims);
  checkMask(op, mask, dims);
  return backward(
    gpu,
    op,
    dOut,
    { q: qkv, k: qkv, v: qkv, packed: 1 },
    out,
    lse,
    mask,
    dims,
    scale,
    drop,
    () => ({ dq: gpu.alloc(qkv.shape, "f32", "attention.dqkv") }),
    ({ dq }) => ({ dqkv: dq }),
  ).dq;
}
