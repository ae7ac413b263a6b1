/**
 * Float64 CPU reference for fused attention (forward and backward), written the plain way: the
 * full score matrix, a softmax, and the textbook gradients. Tests compare the WGSL kernels with it.
 * @module
 */
import type { AttentionDims } from "./attention.ts";

/** Forward result of {@linkcode attentionReference}. */
export interface AttentionReferenceResult {
  /** [B, T, H·D] */
  out: Float64Array;
  /** [B, H, T] natural-log log-sum-exp of each row's scaled scores over real keys (0 if none). */
  lse: Float64Array;
}

/** Gradients from {@linkcode attentionBackwardReference}, each [B, T, H·D]. */
export interface AttentionReferenceGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

type Num = ArrayLike<number>;

/** Scaled scores and probabilities of one (batch, head) in float64; masked keys get P = 0. */
function probs(q: Num, k: Num, mask: Num, dims: AttentionDims, b: number, h: number) {
  const { seq: T, heads: H, headDim: D } = dims;
  const scale = dims.scale ?? 1 / Math.sqrt(D);
  const at = (t: number) => ((b * T + t) * H + h) * D;
  const P = new Float64Array(T * T);
  const lse = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    let max = -Infinity;
    const s = new Float64Array(T);
    for (let j = 0; j < T; j++) {
      if (!(mask[b * T + j] > 0.5)) continue;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[at(i) + d] * k[at(j) + d];
      s[j] = dot * scale;
      max = Math.max(max, s[j]);
    }
    if (max === -Infinity) continue; // no real key: P row stays 0, lse 0
    let sum = 0;
    for (let j = 0; j < T; j++) if (mask[b * T + j] > 0.5) sum += Math.exp(s[j] - max);
    lse[i] = max + Math.log(sum);
    for (let j = 0; j < T; j++) {
      if (mask[b * T + j] > 0.5) P[i * T + j] = Math.exp(s[j] - lse[i]);
    }
  }
  return { P, lse, at, scale };
}

/**
 * `out = softmax(scale·q·kᵀ + maskBias)·v` per (batch, head) in float64.
 *
 * @example
 * ```ts
 * import { attentionReference } from "./attention_reference.ts";
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 1 };
 * const { out } = attentionReference([1, 1], [1, 1], [2, 4], [1, 0], dims);
 * console.log(out); // Float64Array [2, 2]: only the first key is real
 * ```
 */
export function attentionReference(
  q: Num,
  k: Num,
  v: Num,
  mask: Num,
  dims: AttentionDims,
): AttentionReferenceResult {
  const { batch: B, seq: T, heads: H, headDim: D } = dims;
  const out = new Float64Array(B * T * H * D);
  const lse = new Float64Array(B * H * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const r = probs(q, k, mask, dims, b, h);
      for (let i = 0; i < T; i++) {
        lse[(b * H + h) * T + i] = r.lse[i];
        for (let j = 0; j < T; j++) {
          const pij = r.P[i * T + j];
          if (pij === 0) continue;
          for (let d = 0; d < D; d++) out[r.at(i) + d] += pij * v[r.at(j) + d];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Gradients of `Σ dOut ∘ out` with respect to q, k and v, in float64.
 *
 * @example
 * ```ts
 * import { attentionBackwardReference } from "./attention_reference.ts";
 * const dims = { batch: 1, seq: 2, heads: 1, headDim: 1 };
 * const g = attentionBackwardReference([1, 0], [1, 1], [1, 1], [2, 4], [1, 1], dims);
 * console.log(g.dv); // Float64Array [1, 1]: each key gets the probability mass it received
 * ```
 */
export function attentionBackwardReference(
  dOut: Num,
  q: Num,
  k: Num,
  v: Num,
  mask: Num,
  dims: AttentionDims,
): AttentionReferenceGrads {
  const { batch: B, seq: T, heads: H, headDim: D } = dims;
  const n = B * T * H * D;
  const dq = new Float64Array(n), dk = new Float64Array(n), dv = new Float64Array(n);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { P, at, scale } = probs(q, k, mask, dims, b, h);
      for (let i = 0; i < T; i++) {
        // dP_ij = dOut_i·v_j; dS_ij = P_ij (dP_ij − Σ_l P_il dP_il)
        const dP = new Float64Array(T);
        let rowDot = 0;
        for (let j = 0; j < T; j++) {
          if (P[i * T + j] === 0) continue;
          let s = 0;
          for (let d = 0; d < D; d++) s += dOut[at(i) + d] * v[at(j) + d];
          dP[j] = s;
          rowDot += P[i * T + j] * s;
        }
        for (let j = 0; j < T; j++) {
          const pij = P[i * T + j];
          if (pij === 0) continue;
          const dS = pij * (dP[j] - rowDot) * scale;
          for (let d = 0; d < D; d++) {
            dv[at(j) + d] += pij * dOut[at(i) + d];
            dq[at(i) + d] += dS * k[at(j) + d];
            dk[at(j) + d] += dS * q[at(i) + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
