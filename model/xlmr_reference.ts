/**
 * A float64 CPU reference of the XLM-R encoder and the contrastive loss, written as plainly as
 * possible. Tests compare the GPU forward and backward (by finite differences) against it.
 * @module
 */
import type { XlmrConfig } from "./config.ts";
import type { Pooling, TokenBatch } from "./xlmr.ts";

/** Weights by Hugging Face name (no prefix), as float64 row-major arrays. */
export type RefWeights = Map<string, Float64Array>;

function linearRef(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float64Array,
  b: Float64Array,
  outDim: number,
): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * outDim + o] = s;
    }
  }
  return y;
}

function layerNormRef(
  x: Float64Array,
  rows: number,
  n: number,
  g: Float64Array,
  b: Float64Array,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * rstd * g[i] + b[i];
  }
  return y;
}

/** erf to double precision (W. J. Cody's rational approximations via erfc continued fraction). */
export function erf64(x: number): number {
  // Abramowitz–Stegun 7.1.26 is not enough; use a series for small |x| and a continued fraction.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = x, term = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for large |x|.
  let f = ax, c = ax, d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

/**
 * Pooled embeddings [B, H] of a batch, in float64.
 *
 * @example
 * ```ts ignore
 * const emb = referenceForward(weights, config, batch, "cls");
 * ```
 */
export function referenceForward(
  w: RefWeights,
  c: XlmrConfig,
  t: TokenBatch,
  pooling: Pooling,
): Float64Array {
  const H = c.hiddenSize, I = c.intermediateSize, B = t.batch, T = t.seq, R = B * T;
  const nh = c.numHeads, hd = H / nh;
  const get = (n: string) => {
    const v = w.get(n);
    if (!v) throw new Error(`reference: missing ${n}`);
    return v;
  };
  const word = get("embeddings.word_embeddings.weight");
  const pos = get("embeddings.position_embeddings.weight");
  const typ = get("embeddings.token_type_embeddings.weight");
  let x: Float64Array = new Float64Array(R * H);
  for (let r = 0; r < R; r++) {
    for (let h = 0; h < H; h++) {
      x[r * H + h] = word[t.ids[r] * H + h] + pos[t.positions[r] * H + h] + typ[h];
    }
  }
  x = layerNormRef(
    x,
    R,
    H,
    get("embeddings.LayerNorm.weight"),
    get("embeddings.LayerNorm.bias"),
    c.layerNormEps,
  );
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    const q = linearRef(
      x,
      R,
      H,
      get(`${p}attention.self.query.weight`),
      get(`${p}attention.self.query.bias`),
      H,
    );
    const k = linearRef(
      x,
      R,
      H,
      get(`${p}attention.self.key.weight`),
      get(`${p}attention.self.key.bias`),
      H,
    );
    const v = linearRef(
      x,
      R,
      H,
      get(`${p}attention.self.value.weight`),
      get(`${p}attention.self.value.bias`),
      H,
    );
    const ctx = new Float64Array(R * H);
    const scale = 1 / Math.sqrt(hd);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nh; h++) {
        for (let i = 0; i < T; i++) {
          const s = new Float64Array(T);
          let mx = -Infinity;
          for (let j = 0; j < T; j++) {
            if (t.mask[b * T + j] === 0) {
              s[j] = -Infinity;
              continue;
            }
            let d = 0;
            for (let e = 0; e < hd; e++) {
              d += q[(b * T + i) * H + h * hd + e] * k[(b * T + j) * H + h * hd + e];
            }
            s[j] = d * scale;
            mx = Math.max(mx, s[j]);
          }
          let z = 0;
          for (let j = 0; j < T; j++) {
            s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - mx);
            z += s[j];
          }
          for (let e = 0; e < hd; e++) {
            let acc = 0;
            for (let j = 0; j < T; j++) acc += s[j] * v[(b * T + j) * H + h * hd + e];
            ctx[(b * T + i) * H + h * hd + e] = acc / z;
          }
        }
      }
    }
    const ao = linearRef(
      ctx,
      R,
      H,
      get(`${p}attention.output.dense.weight`),
      get(`${p}attention.output.dense.bias`),
      H,
    );
    for (let i = 0; i < R * H; i++) ao[i] += x[i];
    const h1 = layerNormRef(
      ao,
      R,
      H,
      get(`${p}attention.output.LayerNorm.weight`),
      get(`${p}attention.output.LayerNorm.bias`),
      c.layerNormEps,
    );
    const inter = linearRef(
      h1,
      R,
      H,
      get(`${p}intermediate.dense.weight`),
      get(`${p}intermediate.dense.bias`),
      I,
    );
    for (let i = 0; i < inter.length; i++) {
      inter[i] = inter[i] * 0.5 * (1 + erf64(inter[i] / Math.SQRT2));
    }
    const o = linearRef(
      inter,
      R,
      I,
      get(`${p}output.dense.weight`),
      get(`${p}output.dense.bias`),
      H,
    );
    for (let i = 0; i < R * H; i++) o[i] += h1[i];
    x = layerNormRef(
      o,
      R,
      H,
      get(`${p}output.LayerNorm.weight`),
      get(`${p}output.LayerNorm.bias`),
      c.layerNormEps,
    );
  }
  const out = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    if (pooling === "mean") {
      let n = 0;
      for (let i = 0; i < T; i++) {
        if (t.mask[b * T + i] === 0) continue;
        n++;
        for (let h = 0; h < H; h++) out[b * H + h] += x[(b * T + i) * H + h];
      }
      for (let h = 0; h < H; h++) out[b * H + h] /= n;
    } else {
      for (let h = 0; h < H; h++) out[b * H + h] = x[b * T * H + h];
    }
  }
  if (pooling === "pooler") {
    const d = linearRef(out, B, H, get("pooler.dense.weight"), get("pooler.dense.bias"), H);
    return d.map(Math.tanh);
  }
  return out;
}

/** InfoNCE over cosine similarities / temperature, mean over queries (query → passage). */
export function referenceInfoNce(
  q: Float64Array,
  p: Float64Array,
  B: number,
  P: number,
  H: number,
  temperature: number,
): number {
  const norm = (a: Float64Array, r: number) => {
    let s = 0;
    for (let h = 0; h < H; h++) s += a[r * H + h] ** 2;
    return Math.sqrt(s);
  };
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const logits = new Float64Array(P);
    const nq = norm(q, i);
    for (let j = 0; j < P; j++) {
      let d = 0;
      for (let h = 0; h < H; h++) d += q[i * H + h] * p[j * H + h];
      logits[j] = d / (nq * norm(p, j)) / temperature;
    }
    const mx = Math.max(...logits);
    let z = 0;
    for (const v of logits) z += Math.exp(v - mx);
    loss += -(logits[i] - mx - Math.log(z));
  }
  return loss / B;
}
