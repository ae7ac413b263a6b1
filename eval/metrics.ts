/**
 * Retrieval metrics computed from the 1-based ranks of a query's relevant items in the full
 * ranking. Every metric the evaluation reports (AP, recall@k, MRR@k, nDCG@k, rank distance)
 * depends only on where the relevant items landed, so the corpus never has to be sorted: the GPU
 * counts, per relevant item, the candidates ahead of it (see `kernels/retrieval_rank.ts`).
 *
 * Ranks must be distinct positive integers (two items cannot share a position; ties are broken
 * by candidate order before the ranks reach these functions).
 * @module
 */

function sortedRanks(op: string, ranks: ArrayLike<number>): number[] {
  const out = Array.from(ranks);
  for (const r of out) {
    if (!Number.isInteger(r) || r < 1) {
      throw new RangeError(`${op}: ranks must be positive integers, got ${r}`);
    }
  }
  out.sort((a, b) => a - b);
  for (let i = 1; i < out.length; i++) {
    if (out[i] === out[i - 1]) throw new RangeError(`${op}: rank ${out[i]} appears twice`);
  }
  return out;
}

/**
 * Average precision over the full ranking: the mean over the relevant items, taken in rank order
 * r_1 < r_2 < …, of k / r_k (the precision at the rank of the k-th relevant item). A query with
 * no relevant item has no AP (`NaN`).
 *
 * @example
 * ```ts
 * import { averagePrecision } from "./metrics.ts";
 * console.log(averagePrecision([1, 3])); // (1/1 + 2/3) / 2 = 0.8333…
 * ```
 */
export function averagePrecision(ranks: ArrayLike<number>): number {
  const r = sortedRanks("averagePrecision", ranks);
  if (r.length === 0) return NaN;
  let sum = 0;
  for (let k = 0; k < r.length; k++) sum += (k + 1) / r[k];
  return sum / r.length;
}

/**
 * The mean of the finite values (NaN entries, i.e. queries or pairs without a value, are left
 * out); `NaN` when none is finite.
 *
 * @example
 * ```ts
 * import { mean } from "./metrics.ts";
 * console.log(mean([1, NaN, 0.5])); // 0.75
 * ```
 */
export function mean(values: Iterable<number>): number {
  let sum = 0, n = 0;
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    sum += v;
    n++;
  }
  return n === 0 ? NaN : sum / n;
}

/**
 * Mean average precision over queries, each given as the ranks of its relevant items.
 *
 * @example
 * ```ts
 * import { meanAveragePrecision } from "./metrics.ts";
 * console.log(meanAveragePrecision([[1], [2]])); // (1 + 0.5) / 2 = 0.75
 * ```
 */
export function meanAveragePrecision(queries: ArrayLike<number>[]): number {
  return mean(queries.map(averagePrecision));
}

/**
 * Recall at k: the fraction of the relevant items ranked in the top k
 * (|relevant ∩ top-k| / |relevant|, as trec_eval and BEIR compute it; with 11 relevant items the
 * best recall@10 is 10/11). `NaN` without relevant items.
 *
 * @example
 * ```ts
 * import { recallAt } from "./metrics.ts";
 * console.log(recallAt([1, 4, 20], 10)); // 2/3
 * ```
 */
export function recallAt(ranks: ArrayLike<number>, k: number): number {
  if (ranks.length === 0) return NaN;
  let hits = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] <= k) hits++;
  return hits / ranks.length;
}

/**
 * Reciprocal rank cut at k: 1 / (rank of the first relevant item) when that rank is ≤ k, else 0.
 *
 * @example
 * ```ts
 * import { reciprocalRankAt } from "./metrics.ts";
 * console.log(reciprocalRankAt([7, 3], 10)); // 1/3
 * ```
 */
export function reciprocalRankAt(ranks: ArrayLike<number>, k: number): number {
  if (ranks.length === 0) return NaN;
  const best = Math.min(...Array.from(ranks));
  return best <= k ? 1 / best : 0;
}

/**
 * nDCG at k with graded relevance and linear gain (trec_eval's `ndcg_cut`, which BEIR uses):
 * DCG = Σ_{rank ≤ k} rel / log2(rank + 1); the ideal DCG puts the grades in decreasing order at
 * ranks 1, 2, …. `ranks[i]` is the rank of the item whose grade is `grades[i]`; only items with
 * a grade > 0 count (pass those). Items not retrieved in the top k add nothing, so the ranks of
 * the relevant items are all the input it needs.
 *
 * @example
 * ```ts
 * import { ndcgAt } from "./metrics.ts";
 * console.log(ndcgAt([2], [1], 10)); // 1 / log2(3) = 0.6309…
 * ```
 */
export function ndcgAt(ranks: ArrayLike<number>, grades: ArrayLike<number>, k: number): number {
  if (ranks.length !== grades.length) {
    throw new RangeError(`ndcgAt: ${ranks.length} ranks but ${grades.length} grades`);
  }
  sortedRanks("ndcgAt", ranks);
  let dcg = 0;
  for (let i = 0; i < ranks.length; i++) {
    if (grades[i] > 0 && ranks[i] <= k) dcg += grades[i] / Math.log2(ranks[i] + 1);
  }
  const ideal = Array.from(grades).filter((g) => g > 0).sort((a, b) => b - a);
  if (ideal.length === 0) return NaN;
  let idcg = 0;
  for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += ideal[i] / Math.log2(i + 2);
  return dcg / idcg;
}

/**
 * Language bias of one query (LAReQA "rank distance"): the highest minus the lowest rank among
 * its relevant items in the multilingual pool. A query with fewer than two relevant items has
 * none (`NaN`).
 *
 * @example
 * ```ts
 * import { rankDistance } from "./metrics.ts";
 * console.log(rankDistance([3, 40, 7])); // 37
 * ```
 */
export function rankDistance(ranks: ArrayLike<number>): number {
  if (ranks.length < 2) return NaN;
  const r = Array.from(ranks);
  return Math.max(...r) - Math.min(...r);
}
