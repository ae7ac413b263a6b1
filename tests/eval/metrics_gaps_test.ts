/**
 * Cut-off boundaries of the rank metrics, which the mutation runner (`deno task mutants`) found
 * untested: an item exactly at rank k is inside the top k for MRR@k, recall@k and nDCG@k.
 * @module
 */
import { equal } from "node:assert/strict";
import { ndcgAt, recallAt, reciprocalRankAt } from "../../eval/metrics.ts";

Deno.test("an item exactly at rank k counts for MRR@k, recall@k and nDCG@k", () => {
  equal(reciprocalRankAt([10], 10), 1 / 10);
  equal(reciprocalRankAt([25, 10], 10), 1 / 10);
  equal(reciprocalRankAt([1], 1), 1);
  equal(reciprocalRankAt([2], 1), 0);
  equal(recallAt([10, 11], 10), 1 / 2);
  equal(ndcgAt([10], [1], 10), 1 / Math.log2(11));
  equal(ndcgAt([11], [1], 10), 0);
});
