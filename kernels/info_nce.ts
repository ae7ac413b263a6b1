/**
 * The InfoNCE contrastive loss with in-batch negatives (and optional shared hard negatives),
 * forward and backward in one call, plus the in-batch retrieval accuracy.
 *
 * `q` is `[B, H]` and `p` is `[P, H]` with `P ≥ B`: `p[i]` is query i's positive and
 * `p[B..P)` are extra hard negatives shared by all queries. Rows are expected to be L2-normalised
 * already (the gradients are with respect to these rows; the normalisation's backward belongs
 * to the caller). The `[B, P]` logits matrix is small and lives only inside the call.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

/** Options of {@linkcode infoNce}. */
export interface InfoNceOptions {
  /** Softmax temperature τ (logits are `q·pᵀ/τ`); must be positive. */
  temperature: number;
  /** Also average in the passage→query CE over the first B passages. */
  symmetric?: boolean;
}

const PRM = {
  batch: "u32",
  passages: "u32",
  hidden: "u32",
  inv_temp: "f32",
  symmetric: "u32",
} as const;
const R = "read", RW = "read_write";
/** Each entry point has its own WGSL variables (`lg_q`, …) at binding numbers that repeat. */
const via = (access: typeof R | typeof RW, wgsl: string) => ({ access, wgsl }) as const;
const INFO_NCE = kernels("info_nce.wgsl", {
  logits: {
    entries: ["logits"],
    uniforms: PRM,
    bindings: { q: via(R, "lg_q"), p: via(R, "lg_p"), logits: via(RW, "lg_out") },
  },
  rowStats: {
    entries: ["row_stats"],
    uniforms: PRM,
    bindings: { logits: via(R, "rs_logits"), aux: via(RW, "rs_aux") },
  },
  finish: {
    entries: ["finish"],
    uniforms: PRM,
    bindings: { aux: via(R, "fin_aux"), stats: via(RW, "fin_stats") },
  },
  gradLogits: {
    entries: ["grad_logits"],
    uniforms: PRM,
    bindings: { aux: via(R, "gl_aux"), logits: via(RW, "gl_logits") },
  },
  gradQ: {
    entries: ["grad_q"],
    uniforms: PRM,
    bindings: { g: via(R, "gq_g"), p: via(R, "gq_p"), dq: via(RW, "gq_dq") },
  },
  gradP: {
    entries: ["grad_p"],
    uniforms: PRM,
    bindings: { g: via(R, "gp_g"), q: via(R, "gp_q"), dp: via(RW, "gp_dp") },
  },
});
const WG = 256;

function check(q: Tensor, p: Tensor, opts: InfoNceOptions): void {
  const op = "infoNce";
  if (q.dtype !== "f32" || p.dtype !== "f32") {
    throw new TypeError(`${op}: q and p must be f32, got q ${q}, p ${p}`);
  }
  if (q.shape.length !== 2 || p.shape.length !== 2) {
    throw new RangeError(`${op}: q [B, H] and p [P, H] must be rank 2, got q ${q}, p ${p}`);
  }
  const [B, H] = q.shape, [P, Hp] = p.shape;
  if (B < 1 || H < 1) throw new RangeError(`${op}: q ${q} is empty`);
  if (B > 32767) throw new RangeError(`${op}: batch ${B} exceeds 32767 (one workgroup per row)`);
  if (H !== Hp) throw new RangeError(`${op}: hidden sizes differ: q ${q}, p ${p}`);
  if (P < B) {
    throw new RangeError(`${op}: p ${p} needs at least one passage per query (B = ${B})`);
  }
  if (!(opts.temperature > 0) || !Number.isFinite(opts.temperature)) {
    throw new RangeError(`${op}: temperature must be positive and finite, got ${opts.temperature}`);
  }
}

/**
 * InfoNCE loss, accuracy and gradients. `stats` is `[loss, accuracy]`, where accuracy is the
 * fraction of queries whose highest logit (over all P passages, ties → lower index) is their
 * own positive. With `symmetric`, `loss = (l_qp + l_pq) / 2`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { infoNce } from "./info_nce.ts";
 * const gpu = await Gpu.create();
 * const q = gpu.fromArray(new Float32Array([1, 0, 0, 1]), [2, 2]);
 * const p = gpu.fromArray(new Float32Array([1, 0, 0, 1, 0.6, 0.8]), [3, 2]);
 * const { stats, dq, dp } = infoNce(gpu, q, p, { temperature: 0.05 });
 * const [loss, accuracy] = await gpu.read(stats);
 * console.log(loss, accuracy); // accuracy 1: each query's own positive scores highest
 * gpu.release(q, p, stats, dq, dp);
 * ```
 */
export function infoNce(
  gpu: Gpu,
  q: Tensor,
  p: Tensor,
  opts: InfoNceOptions,
): { stats: Tensor; dq: Tensor; dp: Tensor } {
  check(q, p, opts);
  const [B, H] = q.shape, P = p.shape[0];
  const sym = opts.symmetric ? 1 : 0;
  const prm = { batch: B, passages: P, hidden: H, inv_temp: 1 / opts.temperature, symmetric: sym };
  return gpu.scope(() => {
    const logits = gpu.alloc([B, P], "f32", "infoNce.logits");
    const aux = gpu.alloc([5, B], "f32", "infoNce.aux");
    const stats = gpu.alloc([2], "f32", "infoNce.stats");
    const dq = gpu.alloc([B, H], "f32", "infoNce.dq");
    const dp = gpu.alloc([P, H], "f32", "infoNce.dp");
    if (!sym) gpu.fill(aux, 0); // column rows stay unused; keep them defined
    const K = INFO_NCE;
    gpu.run(
      K.logits,
      {},
      { q, p, logits },
      prm,
      Gpu.grid(Math.ceil((B * P) / WG)),
    );
    gpu.run(K.rowStats, {}, { logits, aux }, prm, [sym ? 2 * B : B]);
    gpu.run(K.finish, {}, { aux, stats }, prm, [1]);
    gpu.run(
      K.gradLogits,
      {},
      { aux, logits },
      prm,
      Gpu.grid(Math.ceil((B * P) / WG)),
    );
    gpu.run(
      K.gradQ,
      {},
      { g: logits, p, dq },
      prm,
      Gpu.grid(Math.ceil((B * H) / WG)),
    );
    gpu.run(
      K.gradP,
      {},
      { g: logits, q, dp },
      prm,
      Gpu.grid(Math.ceil((P * H) / WG)),
    );
    return { stats, dq, dp };
  }, "infoNce");
}
