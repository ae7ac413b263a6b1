/**
 * Float64 CPU references of the row, element-wise, gather/scatter, pooling and reduction kernels
 * (LayerNorm, GELU, tanh, softmax, embedding, pooling, L2 normalisation, sums), forward and
 * backward. Tests compare the WGSL kernels against these; they favour obviously-correct loops over
 * speed. Arrays are flat and row-major; shapes are passed as numbers.
 * @module
 */

/** Anything indexable by position that holds numbers (typed arrays, plain arrays). */
export type Numbers = ArrayLike<number>;

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);

/**
 * The error function in float64 (relative error near 1e-15): a positive-term series
 * `erf(x) = 2/√π·e^{−x²}·Σ 2ⁿx^{2n+1}/(2n+1)!!` below 3, the complement's continued fraction above.
 *
 * @example
 * ```ts
 * import { erf } from "./reference.ts";
 * console.log(erf(1).toFixed(6)); // "0.842701"
 * ```
 */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 3) {
    // All terms positive: no cancellation.
    let term = x, sum = x;
    for (let n = 1; n < 200 && term > sum * 1e-17; n++) {
      term *= (2 * x * x) / (2 * n + 1);
      sum += term;
    }
    return 2 * INV_SQRT_PI * Math.exp(-x * x) * sum;
  }
  return 1 - erfc(x);
}

/**
 * The complementary error function `1 − erf(x)` in float64, accurate in relative terms for large
 * positive `x` (continued fraction, evaluated by the modified Lentz method).
 *
 * @example
 * ```ts
 * import { erfc } from "./reference.ts";
 * console.log(erfc(5).toExponential(4)); // "1.5375e-12"
 * ```
 */
export function erfc(x: number): number {
  if (x < 3) return 1 - erf(x);
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), i.e. b_k = x, a_k = k/2.
  const tiny = 1e-300;
  let f = x, c = x, d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) * INV_SQRT_PI / f;
}

/** `Φ(x)`, the standard normal CDF, accurate in relative terms on both tails. */
function normalCdf(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2);
}

// ---------------------------------------------------------------- LayerNorm

/** What {@linkcode layerNormRef} returns. */
export interface LayerNormRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

/**
 * LayerNorm over rows of length `n`: `y = (x − mean)·rstd·gamma + beta`, biased variance.
 *
 * @example
 * ```ts
 * import { layerNormRef } from "./reference.ts";
 * const { y } = layerNormRef([1, 3], 2, [1, 1], [0, 0], 0);
 * console.log(Array.from(y)); // [-1, 1]
 * ```
 */
export function layerNormRef(
  x: Numbers,
  n: number,
  gamma: Numbers,
  beta: Numbers,
  eps: number,
): LayerNormRef {
  const rows = x.length / n;
  const y = new Float64Array(x.length), mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[r * n + i];
    const m = s / n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - m) * rs * gamma[i] + beta[i];
  }
  return { y, mean, rstd };
}

/** What {@linkcode layerNormBackwardRef} returns. */
export interface LayerNormGradRef {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/**
 * Gradients of LayerNorm: `dx`, and `dgamma`/`dbeta` summed over rows (not accumulated).
 *
 * @example
 * ```ts
 * import { layerNormBackwardRef } from "./reference.ts";
 * const g = layerNormBackwardRef([1, 1], [1, 3], 2, [1, 1], 0);
 * console.log(Array.from(g.dbeta)); // [1, 1]
 * ```
 */
export function layerNormBackwardRef(
  dy: Numbers,
  x: Numbers,
  n: number,
  gamma: Numbers,
  eps: number,
): LayerNormGradRef {
  const rows = x.length / n;
  const { mean, rstd } = layerNormRef(x, n, gamma, new Float64Array(n), eps);
  const dx = new Float64Array(x.length), dgamma = new Float64Array(n);
  const dbeta = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    let sg = 0, sgx = 0;
    for (let i = 0; i < n; i++) {
      const xh = (x[r * n + i] - mean[r]) * rstd[r];
      const g = dy[r * n + i] * gamma[i];
      sg += g;
      sgx += g * xh;
      dgamma[i] += dy[r * n + i] * xh;
      dbeta[i] += dy[r * n + i];
    }
    for (let i = 0; i < n; i++) {
      const xh = (x[r * n + i] - mean[r]) * rstd[r];
      const g = dy[r * n + i] * gamma[i];
      dx[r * n + i] = rstd[r] * (g - sg / n - xh * sgx / n);
    }
  }
  return { dx, dgamma, dbeta };
}

// ---------------------------------------------------------------- element-wise activations

/**
 * Exact GELU `x·Φ(x) = x·½·(1 + erf(x/√2))`, element-wise.
 *
 * @example
 * ```ts
 * import { geluRef } from "./reference.ts";
 * console.log(geluRef([1])[0].toFixed(6)); // "0.841345"
 * ```
 */
export function geluRef(x: Numbers): Float64Array {
  return Float64Array.from(x, (v) => v * normalCdf(v));
}

/**
 * GELU's backward `dy·(Φ(x) + x·φ(x))`.
 *
 * @example
 * ```ts
 * import { geluBackwardRef } from "./reference.ts";
 * console.log(geluBackwardRef([1], [0])[0]); // 0.5
 * ```
 */
export function geluBackwardRef(dy: Numbers, x: Numbers): Float64Array {
  return Float64Array.from(
    x,
    (v, i) => dy[i] * (normalCdf(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v)),
  );
}

/**
 * Element-wise `tanh`.
 *
 * @example
 * ```ts
 * import { tanhRef } from "./reference.ts";
 * console.log(tanhRef([0])[0]); // 0
 * ```
 */
export function tanhRef(x: Numbers): Float64Array {
  return Float64Array.from(x, (v) => Math.tanh(v));
}

/**
 * tanh's backward from its output: `dy·(1 − y²)`.
 *
 * @example
 * ```ts
 * import { tanhBackwardRef } from "./reference.ts";
 * console.log(tanhBackwardRef([2], [0])[0]); // 2
 * ```
 */
export function tanhBackwardRef(dy: Numbers, y: Numbers): Float64Array {
  return Float64Array.from(y, (v, i) => dy[i] * (1 - v * v));
}

// ---------------------------------------------------------------- softmax

/**
 * Row softmax of `x[rows, cols]` plus an optional additive `mask[maskRows, cols]`; row `r` uses
 * mask row `floor(r / rowsPerMask)`.
 *
 * @example
 * ```ts
 * import { softmaxRef } from "./reference.ts";
 * console.log(Array.from(softmaxRef([0, 0], 2))); // [0.5, 0.5]
 * ```
 */
export function softmaxRef(
  x: Numbers,
  cols: number,
  mask?: Numbers,
  rowsPerMask = 1,
): Float64Array {
  const rows = x.length / cols;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const mr = Math.floor(r / rowsPerMask);
    const v = new Float64Array(cols);
    let m = -Infinity;
    for (let c = 0; c < cols; c++) {
      v[c] = x[r * cols + c] + (mask ? mask[mr * cols + c] : 0);
      m = Math.max(m, v[c]);
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += v[c] = Math.exp(v[c] - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = v[c] / s;
  }
  return y;
}

/**
 * Softmax backward from its output: `dx = y·(dy − Σ dy·y)` per row.
 *
 * @example
 * ```ts
 * import { softmaxBackwardRef } from "./reference.ts";
 * console.log(Array.from(softmaxBackwardRef([1, 1], [0.5, 0.5], 2))); // [0, 0]
 * ```
 */
export function softmaxBackwardRef(dy: Numbers, y: Numbers, cols: number): Float64Array {
  const rows = y.length / cols;
  const dx = new Float64Array(y.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += dy[r * cols + c] * y[r * cols + c];
    for (let c = 0; c < cols; c++) {
      dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - s);
    }
  }
  return dx;
}

// ---------------------------------------------------------------- embedding

/**
 * Gathers rows `ids` of `table[rows, h]` into `[ids.length, h]`.
 *
 * @example
 * ```ts
 * import { gatherRowsRef } from "./reference.ts";
 * console.log(Array.from(gatherRowsRef([1, 2, 3, 4], 2, [1, 0]))); // [3, 4, 1, 2]
 * ```
 */
export function gatherRowsRef(table: Numbers, h: number, ids: Numbers): Float64Array {
  const out = new Float64Array(ids.length * h);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id < 0 || (id + 1) * h > table.length) {
      throw new RangeError(`gatherRowsRef: id ${id} outside the table`);
    }
    for (let j = 0; j < h; j++) out[t * h + j] = table[id * h + j];
  }
  return out;
}

/**
 * Gradient of a gather: `dTable[id] = Σ_{t: ids[t] = id} dOut[t]` over a table of `rows` rows.
 *
 * @example
 * ```ts
 * import { scatterAddRowsRef } from "./reference.ts";
 * console.log(Array.from(scatterAddRowsRef([1, 2], 1, [0, 0], 2))); // [3, 0]
 * ```
 */
export function scatterAddRowsRef(
  dOut: Numbers,
  h: number,
  ids: Numbers,
  rows: number,
): Float64Array {
  const d = new Float64Array(rows * h);
  for (let t = 0; t < ids.length; t++) {
    for (let j = 0; j < h; j++) d[ids[t] * h + j] += dOut[t * h + j];
  }
  return d;
}

// ---------------------------------------------------------------- pooling

/**
 * Token 0 of each sequence of `h[b, t, hidden]`.
 *
 * @example
 * ```ts
 * import { poolFirstRef } from "./reference.ts";
 * console.log(Array.from(poolFirstRef([1, 2, 3, 4], 1, 2, 2))); // [1, 2]
 * ```
 */
export function poolFirstRef(h: Numbers, b: number, t: number, hidden: number): Float64Array {
  const out = new Float64Array(b * hidden);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < hidden; j++) out[i * hidden + j] = h[i * t * hidden + j];
  }
  return out;
}

/**
 * Backward of {@linkcode poolFirstRef}: zeros except token 0.
 *
 * @example
 * ```ts
 * import { poolFirstBackwardRef } from "./reference.ts";
 * console.log(Array.from(poolFirstBackwardRef([5], 1, 2, 1))); // [5, 0]
 * ```
 */
export function poolFirstBackwardRef(
  dPooled: Numbers,
  b: number,
  t: number,
  hidden: number,
): Float64Array {
  const dh = new Float64Array(b * t * hidden);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < hidden; j++) dh[i * t * hidden + j] = dPooled[i * hidden + j];
  }
  return dh;
}

/** The denominator floor of masked mean pooling (a sequence with no real token pools to 0). */
export const POOL_MEAN_MIN_COUNT = 1e-9;

/**
 * Masked mean over tokens: `Σ_t mask[b,t]·h[b,t] / max(Σ_t mask[b,t], 1e-9)`.
 *
 * @example
 * ```ts
 * import { poolMeanRef } from "./reference.ts";
 * console.log(Array.from(poolMeanRef([2, 4, 9], [1, 1, 0], 1, 3, 1))); // [3]
 * ```
 */
export function poolMeanRef(
  h: Numbers,
  mask: Numbers,
  b: number,
  t: number,
  hidden: number,
): Float64Array {
  const out = new Float64Array(b * hidden);
  for (let i = 0; i < b; i++) {
    let count = 0;
    for (let k = 0; k < t; k++) count += mask[i * t + k];
    const inv = 1 / Math.max(count, POOL_MEAN_MIN_COUNT);
    for (let j = 0; j < hidden; j++) {
      let s = 0;
      for (let k = 0; k < t; k++) s += mask[i * t + k] * h[(i * t + k) * hidden + j];
      out[i * hidden + j] = s * inv;
    }
  }
  return out;
}

/**
 * Backward of {@linkcode poolMeanRef} with respect to `h`.
 *
 * @example
 * ```ts
 * import { poolMeanBackwardRef } from "./reference.ts";
 * console.log(Array.from(poolMeanBackwardRef([6], [1, 1, 0], 1, 3, 1))); // [3, 3, 0]
 * ```
 */
export function poolMeanBackwardRef(
  dPooled: Numbers,
  mask: Numbers,
  b: number,
  t: number,
  hidden: number,
): Float64Array {
  const dh = new Float64Array(b * t * hidden);
  for (let i = 0; i < b; i++) {
    let count = 0;
    for (let k = 0; k < t; k++) count += mask[i * t + k];
    const inv = 1 / Math.max(count, POOL_MEAN_MIN_COUNT);
    for (let k = 0; k < t; k++) {
      for (let j = 0; j < hidden; j++) {
        dh[(i * t + k) * hidden + j] = mask[i * t + k] * dPooled[i * hidden + j] * inv;
      }
    }
  }
  return dh;
}

// ---------------------------------------------------------------- L2 normalisation

/** The norm floor of L2 normalisation (as `torch.nn.functional.normalize`). */
export const L2_MIN_NORM = 1e-12;

/**
 * Row-wise `y = x / max(‖x‖, 1e-12)` of `x[rows, h]`, with the (floored) norms.
 *
 * @example
 * ```ts
 * import { l2NormalizeRef } from "./reference.ts";
 * console.log(Array.from(l2NormalizeRef([3, 4], 2).y)); // [0.6, 0.8]
 * ```
 */
export function l2NormalizeRef(x: Numbers, h: number): { y: Float64Array; norm: Float64Array } {
  const rows = x.length / h;
  const y = new Float64Array(x.length), norm = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < h; j++) s += x[r * h + j] ** 2;
    norm[r] = Math.max(Math.sqrt(s), L2_MIN_NORM);
    for (let j = 0; j < h; j++) y[r * h + j] = x[r * h + j] / norm[r];
  }
  return { y, norm };
}

/**
 * Backward of {@linkcode l2NormalizeRef}: `dx = (dy − y·(dy·y)) / norm` per row.
 *
 * @example
 * ```ts
 * import { l2NormalizeBackwardRef } from "./reference.ts";
 * console.log(Array.from(l2NormalizeBackwardRef([1, 0], [1, 0], [2], 2))); // [0, 0]
 * ```
 */
export function l2NormalizeBackwardRef(
  dy: Numbers,
  y: Numbers,
  norm: Numbers,
  h: number,
): Float64Array {
  const rows = y.length / h;
  const dx = new Float64Array(y.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < h; j++) s += dy[r * h + j] * y[r * h + j];
    for (let j = 0; j < h; j++) dx[r * h + j] = (dy[r * h + j] - y[r * h + j] * s) / norm[r];
  }
  return dx;
}

// ---------------------------------------------------------------- reductions

/**
 * Sum of all elements.
 *
 * @example
 * ```ts
 * import { sumRef } from "./reference.ts";
 * console.log(sumRef([1, 2, 3])); // 6
 * ```
 */
export function sumRef(x: Numbers): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
}

/**
 * Mean of all elements.
 *
 * @example
 * ```ts
 * import { meanRef } from "./reference.ts";
 * console.log(meanRef([1, 2, 3])); // 2
 * ```
 */
export function meanRef(x: Numbers): number {
  return sumRef(x) / x.length;
}

/**
 * Sum of squares of all elements.
 *
 * @example
 * ```ts
 * import { sumOfSquaresRef } from "./reference.ts";
 * console.log(sumOfSquaresRef([1, 2])); // 5
 * ```
 */
export function sumOfSquaresRef(x: Numbers): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

// ---------------------------------------------------------------- gradient checking

/**
 * Central finite differences of the scalar loss `Σ f(x)·weights` with respect to the entries
 * `indices` of `x`, in float64 (step `h` relative to `max(1, |x_i|)`).
 *
 * @example
 * ```ts
 * import { numericalGradient } from "./reference.ts";
 * const g = numericalGradient((x) => Float64Array.from(x, (v) => v * v), [3], [1], [0]);
 * console.log(g[0].toFixed(6)); // "6.000000"
 * ```
 */
export function numericalGradient(
  f: (x: Float64Array) => Numbers,
  x: Numbers,
  weights: Numbers,
  indices: readonly number[],
  h = 1e-6,
): Float64Array {
  const base = Float64Array.from(x);
  const loss = (v: Float64Array) => {
    const y = f(v);
    if (y.length !== weights.length) {
      throw new RangeError(`numericalGradient: ${y.length} outputs, ${weights.length} weights`);
    }
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * weights[i];
    return s;
  };
  return Float64Array.from(indices, (i) => {
    const step = h * Math.max(1, Math.abs(base[i]));
    const keep = base[i];
    base[i] = keep + step;
    const up = loss(base);
    base[i] = keep - step;
    const down = loss(base);
    base[i] = keep;
    return (up - down) / (2 * step);
  });
}
