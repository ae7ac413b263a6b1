/**
 * Per-query results of a LAReQA evaluation, kept in the eval JSON (`per_query`) so that two runs
 * can be compared query by query later (`cli.ts compare`, `eval/compare.ts`). Columns, one entry
 * per query in the report's query order (languages in `languages` order, file order within):
 * the query's language and id, its AP in the multilingual pool, the rank of its first relevant
 * candidate there, and per candidate language its AP among that language's candidates (`null`
 * when its id has no answer in that language). Every mAP of the report is a mean of these.
 * @module
 */
import { averagePrecision, ndcgAt, recallAt, reciprocalRankAt } from "./metrics.ts";

/** The `per_query` columns of a LAReQA report. */
export interface LareqaPerQuery {
  lang: string[];
  id: string[];
  /** AP over the multilingual pool (every language's candidates). */
  ap: number[];
  /** Rank (1-based) of the first relevant candidate in the multilingual pool. */
  first_rank: number[];
  /** Candidate language → AP among that language's candidates, or null (no answer there). */
  ap_by_language: Record<string, (number | null)[]>;
}

/**
 * Builds the columns from the ranks `evaluateLareqa` computes: `multiRanks[q]` the ranks of query
 * q's relevant candidates in the pool, `langRanks[q]` per candidate language their ranks within
 * that language.
 *
 * @example
 * ```ts
 * import { lareqaPerQuery } from "./per_query.ts";
 * const pq = lareqaPerQuery(
 *   [{ lang: "en", id: "q1" }],
 *   [[1, 4]],
 *   [new Map([["en", [1]], ["de", [2]]])],
 *   ["de", "en"],
 * );
 * console.log(pq.ap[0], pq.first_rank[0], pq.ap_by_language.de[0]); // 0.75 1 0.5
 * ```
 */
export function lareqaPerQuery(
  queries: { lang: string; id: string }[],
  multiRanks: number[][],
  langRanks: Map<string, number[]>[],
  langs: string[],
): LareqaPerQuery {
  const byLang: Record<string, (number | null)[]> = {};
  for (const l of langs) {
    byLang[l] = langRanks.map((m) => {
      const r = m.get(l);
      return r && r.length > 0 ? averagePrecision(r) : null;
    });
  }
  return {
    lang: queries.map((q) => q.lang),
    id: queries.map((q) => q.id),
    ap: multiRanks.map((r) => averagePrecision(r)),
    first_rank: multiRanks.map((r) => Math.min(...r)),
    ap_by_language: byLang,
  };
}

/** The `per_query` columns of a BEIR/MIRACL report (queries with a relevant document). */
export interface BeirPerQuery {
  id: string[];
  "ndcg@10": number[];
  "recall@100": number[];
  "mrr@10": number[];
  /** AP over the whole corpus (relevant = judgment > 0). */
  ap: number[];
  /** Rank (1-based) of the first relevant document. */
  first_rank: number[];
}

/**
 * Builds the BEIR columns for the queries `judged` (indices into `ids`), from the ranks and grades
 * of their relevant documents (as `evaluateBeir` computes them).
 *
 * @example
 * ```ts
 * import { beirPerQuery } from "./per_query.ts";
 * const pq = beirPerQuery(["q1"], [[2, 5]], [[1, 1]], [0]);
 * console.log(pq.first_rank[0], pq["mrr@10"][0]); // 2 0.5
 * ```
 */
export function beirPerQuery(
  ids: string[],
  ranks: number[][],
  grades: number[][],
  judged: number[],
): BeirPerQuery {
  return {
    id: judged.map((i) => ids[i]),
    "ndcg@10": judged.map((i) => ndcgAt(ranks[i], grades[i], 10)),
    "recall@100": judged.map((i) => recallAt(ranks[i], 100)),
    "mrr@10": judged.map((i) => reciprocalRankAt(ranks[i], 10)),
    ap: judged.map((i) => averagePrecision(ranks[i])),
    first_rank: judged.map((i) => Math.min(...ranks[i])),
  };
}
