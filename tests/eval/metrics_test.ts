import { equal, ok, throws } from "node:assert/strict";
import {
  averagePrecision,
  mean,
  meanAveragePrecision,
  ndcgAt,
  rankDistance,
  recallAt,
  reciprocalRankAt,
} from "../../eval/metrics.ts";

const close = (got: number, want: number, what: string) =>
  ok(Math.abs(got - want) < 1e-12, `${what}: got ${got}, want ${want}`);

Deno.test("average precision follows the definition on hand-made rankings", () => {
  // Ranking R N R N N R: precision at the relevant ranks 1/1, 2/3, 3/6.
  close(averagePrecision([1, 3, 6]), (1 + 2 / 3 + 3 / 6) / 3, "R N R N N R");
  // Order of the input does not matter.
  close(averagePrecision([6, 1, 3]), (1 + 2 / 3 + 0.5) / 3, "unsorted input");
  // One relevant item at rank 4: 1/4.
  close(averagePrecision([4]), 0.25, "single at 4");
  // All relevant first: 1.
  close(averagePrecision([1, 2, 3]), 1, "perfect");
  // Two relevant at the bottom of 10: (1/9 + 2/10) / 2.
  close(averagePrecision([9, 10]), (1 / 9 + 0.2) / 2, "worst of 10");
  ok(Number.isNaN(averagePrecision([])), "no relevant item gives NaN");
});

Deno.test("mean average precision averages per query and skips queries without relevant items", () => {
  // Query A: [2] → 0.5; query B: [1, 4] → (1 + 2/4) / 2 = 0.75; query C: none.
  close(meanAveragePrecision([[2], [1, 4], []]), (0.5 + 0.75) / 2, "mAP");
  close(mean([0.2, NaN, 0.4]), 0.3, "mean skips NaN");
  ok(Number.isNaN(mean([])), "empty mean is NaN");
});

Deno.test("ranks must be distinct positive integers", () => {
  throws(() => averagePrecision([1, 1]), RangeError);
  throws(() => averagePrecision([0]), RangeError);
  throws(() => averagePrecision([1.5]), RangeError);
});

Deno.test("recall, reciprocal rank and nDCG match values worked out by hand", () => {
  close(recallAt([1, 5, 11], 10), 2 / 3, "recall@10");
  close(recallAt([2], 1), 0, "recall@1 miss");
  close(recallAt([1], 1), 1, "recall@1 hit");
  close(reciprocalRankAt([12, 3], 10), 1 / 3, "MRR@10");
  equal(reciprocalRankAt([11], 10), 0, "MRR@10 beyond the cut");
  // Grades 2 at rank 1, 1 at rank 3, 1 at rank 12 (outside the cut).
  // DCG = 2/log2(2) + 1/log2(4) = 2.5; IDCG = 2/1 + 1/log2(3) + 1/log2(4).
  close(
    ndcgAt([1, 3, 12], [2, 1, 1], 10),
    2.5 / (2 + 1 / Math.log2(3) + 0.5),
    "nDCG@10 graded",
  );
  close(ndcgAt([1], [1], 10), 1, "nDCG perfect");
  throws(() => ndcgAt([1, 2], [1], 10), RangeError);
});

Deno.test("rank distance is the spread of a query's relevant ranks", () => {
  equal(rankDistance([5, 2, 40]), 38);
  equal(rankDistance([7, 8]), 1);
  ok(Number.isNaN(rankDistance([3])), "a single relevant item has no rank distance");
});
