/**
 * Fused scaled dot-product attention (FlashAttention-style) and its backward pass.
 *
 * q, k, v and out use the layout a linear layer writes, `[B, T, heads·headDim]`; each workgroup
 * takes one (query block, head, batch), streams keys and values through workgroup memory and
 * keeps a running max and sum per query (online softmax), so no `[T×T]` matrix ever reaches
 * device memory. The per-row log-sum-exp is saved for the backward pass, which recomputes the
 * probabilities (FlashAttention-2): one kernel for dq, one for dk and dv, no atomics, fixed
 * summation order (deterministic).
 *
 * The mask is `[B, T]` f32, 1 for real tokens and 0 for padding: padded keys are skipped (the same
 * as an additive −∞), padded query rows still get finite outputs. A row with no real key at all
 * gets zeros. `headDim` must be a multiple of 4 (rows move as vec4) and at most 64.
 * @module
 */
import { f32, type Gpu, u32 } from "./runtime.ts";
import type { Tensor } from "./tensor.ts";

/** Shape of an attention call. */
export interface AttentionDims {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Score scale; defaults to `1/sqrt(headDim)`. */
  scale?: number;
}

const SHADER = "attention.wgsl";
/** Queries (or keys) per workgroup; must match `BQ` in attention.wgsl. */
const BLOCK = 64;
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

function params(dims: AttentionDims, scale: number) {
  return [u32(dims.batch), u32(dims.seq), u32(dims.heads), f32(scale)];
}

function grid(dims: AttentionDims): [number, number, number] {
  return [Math.ceil(dims.seq / BLOCK), dims.heads, dims.batch];
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
): { out: Tensor; lse: Tensor } {
  const op = "attention";
  const scale = checkDims(op, dims);
  checkActivation(op, "q", q, dims);
  checkActivation(op, "k", k, dims);
  checkActivation(op, "v", v, dims);
  checkMask(op, mask, dims);
  const out = gpu.alloc(q.shape, "f32", "attention.out");
  const lse = gpu.alloc([dims.batch, dims.heads, dims.seq], "f32", "attention.lse");
  gpu.dispatch(
    { shader: SHADER, entry: "forward", constants: { HEAD_DIM: dims.headDim } },
    [q, k, v, mask, out, lse],
    params(dims, scale),
    grid(dims),
  );
  return { out, lse };
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
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = "attentionBackward";
  const scale = checkDims(op, dims);
  checkActivation(op, "dOut", dOut, dims);
  checkActivation(op, "q", q, dims);
  checkActivation(op, "k", k, dims);
  checkActivation(op, "v", v, dims);
  checkActivation(op, "out", out, dims);
  checkLse(op, lse, dims);
  checkMask(op, mask, dims);
  const constants = { HEAD_DIM: dims.headDim };
  const prm = params(dims, scale);
  const g = grid(dims);
  // (lse, delta) pairs per row: both backward kernels then fit in 8 storage bindings.
  const stats = gpu.alloc([dims.batch, dims.heads, dims.seq, 2], "f32", "attention.stats");
  gpu.dispatch(
    { shader: SHADER, entry: "backward_delta", constants },
    [dOut, out, lse, stats],
    prm,
    g,
  );
  const dq = gpu.alloc(q.shape, "f32", "attention.dq");
  const dk = gpu.alloc(k.shape, "f32", "attention.dk");
  const dv = gpu.alloc(v.shape, "f32", "attention.dv");
  gpu.dispatch(
    { shader: SHADER, entry: "backward_dq", constants },
    [dOut, q, k, v, stats, mask, dq],
    prm,
    g,
  );
  gpu.dispatch(
    { shader: SHADER, entry: "backward_dkdv", constants },
    [dOut, q, k, v, stats, mask, dk, dv],
    prm,
    g,
  );
  // Later dispatches in the same pass run after these, so the pool may hand it out again now.
  gpu.release(stats);
  return { dq, dk, dv };
}
