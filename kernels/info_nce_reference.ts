/**
 * Float64 CPU reference for the InfoNCE contrastive loss, its gradients and the in-batch accuracy.
 * @module
 */

/** Result of {@linkcode infoNceReference}. */
export interface InfoNceReferenceResult {
  loss: number;
  /** Fraction of queries whose highest logit is their own positive (ties → lower index). */
  accuracy: number;
  /** [B, H] */
  dq: Float64Array;
  /** [P, H] */
  dp: Float64Array;
}

/**
 * `logits = q·pᵀ / temperature`, `loss = mean_i CE(logits[i, :], i)`; with `symmetric`, the
 * passage→query CE over the first B passages is averaged in (`(l_qp + l_pq) / 2`).
 *
 * @example
 * ```ts
 * import { infoNceReference } from "./info_nce_reference.ts";
 * const r = infoNceReference([1, 0, 0, 1], [1, 0, 0, 1], 2, 2, 2, { temperature: 1 });
 * console.log(r.loss.toFixed(4), r.accuracy); // "0.3133" 1
 * ```
 */
export function infoNceReference(
  q: ArrayLike<number>,
  p: ArrayLike<number>,
  B: number,
  P: number,
  H: number,
  opts: { temperature: number; symmetric?: boolean },
): InfoNceReferenceResult {
  const tau = opts.temperature;
  const L = new Float64Array(B * P);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < P; j++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += q[i * H + h] * p[j * H + h];
      L[i * P + j] = s / tau;
    }
  }
  const wq = opts.symmetric ? 0.5 : 1;
  const G = new Float64Array(B * P); // dLoss/dlogits
  let loss = 0, correct = 0;
  for (let i = 0; i < B; i++) {
    let max = -Infinity, arg = 0;
    for (let j = 0; j < P; j++) {
      if (L[i * P + j] > max) {
        max = L[i * P + j];
        arg = j;
      } // strict: lower index wins ties
    }
    if (arg === i) correct++;
    let sum = 0;
    for (let j = 0; j < P; j++) sum += Math.exp(L[i * P + j] - max);
    const lse = max + Math.log(sum);
    loss += (wq * (lse - L[i * P + i])) / B;
    for (let j = 0; j < P; j++) {
      G[i * P + j] += (wq * (Math.exp(L[i * P + j] - lse) - (i === j ? 1 : 0))) / B;
    }
  }
  if (opts.symmetric) {
    for (let j = 0; j < B; j++) {
      let max = -Infinity;
      for (let i = 0; i < B; i++) max = Math.max(max, L[i * P + j]);
      let sum = 0;
      for (let i = 0; i < B; i++) sum += Math.exp(L[i * P + j] - max);
      const lse = max + Math.log(sum);
      loss += (0.5 * (lse - L[j * P + j])) / B;
      for (let i = 0; i < B; i++) {
        G[i * P + j] += (0.5 * (Math.exp(L[i * P + j] - lse) - (i === j ? 1 : 0))) / B;
      }
    }
  }
  const dq = new Float64Array(B * H), dp = new Float64Array(P * H);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < P; j++) {
      const g = G[i * P + j] / tau;
      for (let h = 0; h < H; h++) {
        dq[i * H + h] += g * p[j * H + h];
        dp[j * H + h] += g * q[i * H + h];
      }
    }
  }
  return { loss, accuracy: correct / B, dq, dp };
}
