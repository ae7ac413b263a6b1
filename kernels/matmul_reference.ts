/**
 * Float64 CPU references of the matmul family, for tests: plain triple loops with no tiling, so a
 * bug in the GPU kernel's indexing cannot be mirrored here.
 * @module
 */

/** Shape and flags of {@linkcode matmulRef}. */
export interface MatmulRefShape {
  /** Batch count (1 for rank 2). */
  batch: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Inner dimension. */
  k: number;
  /** A stored `[batch, K, M]`. */
  transA?: boolean;
  /** B stored `[batch, N, K]`. */
  transB?: boolean;
  /** Scale of the product (default 1). */
  alpha?: number;
}

/**
 * `C = alpha·op(A)·op(B) (+ c0)` in float64, row-major `[batch, M, N]`.
 *
 * @example
 * ```ts
 * import { matmulRef } from "./matmul_reference.ts";
 * const c = matmulRef([1, 2, 3, 4], [5, 6, 7, 8], { batch: 1, m: 2, n: 2, k: 2 });
 * console.log(c); // Float64Array [19, 22, 43, 50]
 * ```
 */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  s: MatmulRefShape,
  c0?: ArrayLike<number>,
): Float64Array {
  const { batch, m, n, k, transA = false, transB = false, alpha = 1 } = s;
  const c = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    const oa = z * m * k, ob = z * k * n, oc = z * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[oa + p * m + i] : a[oa + i * k + p];
          const bv = transB ? b[ob + j * k + p] : b[ob + p * n + j];
          sum += av * bv;
        }
        c[oc + i * n + j] = alpha * sum + (c0 ? c0[oc + i * n + j] : 0);
      }
    }
  }
  return c;
}

/**
 * `Y[M,N] = X[M,K]·W[N,K]ᵀ + b[N]` in float64 (`b` may be null).
 *
 * @example
 * ```ts
 * import { linearRef } from "./matmul_reference.ts";
 * console.log(linearRef([1, 2], [1, 1, 1, -1], [0, 1], 1, 2, 2)); // Float64Array [3, 0]
 * ```
 */
export function linearRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const y = matmulRef(x, w, { batch: 1, m, n, k, transB: true });
  if (b) { for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) y[i * n + j] += b[j]; }
  return y;
}

/** Gradients of {@linkcode linearRef} for an upstream gradient dY. */
export interface LinearGrads {
  /** `dY·W`, `[M, K]`. */
  dx: Float64Array;
  /** `dYᵀ·X`, `[N, K]`. */
  dw: Float64Array;
  /** Column sums of dY, `[N]`. */
  db: Float64Array;
}

/**
 * Gradients of `Y = X·Wᵀ + b` in float64, each written out as its own sum over the chain rule.
 *
 * @example
 * ```ts
 * import { linearBackwardRef } from "./matmul_reference.ts";
 * const g = linearBackwardRef([1, 2], [1, 1, 1, -1], [1, 0], 1, 2, 2);
 * console.log(g.dx, g.dw, g.db); // Float64Array [1, 1] Float64Array [1, 2, 0, 0] Float64Array [1, 0]
 * ```
 */
export function linearBackwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
): LinearGrads {
  const dx = new Float64Array(m * k), dw = new Float64Array(n * k), db = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const g = dy[i * n + j];
      db[j] += g;
      for (let p = 0; p < k; p++) {
        dx[i * k + p] += g * w[j * k + p];
        dw[j * k + p] += g * x[i * k + p];
      }
    }
  }
  return { dx, dw, db };
}
