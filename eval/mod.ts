/**
 * The evaluation layer on its own: LAReQA-format retrieval sets (XQuAD-R, MLQA-R) and BEIR
 * folders, retrieval evaluation on the GPU (mAP and recall in monolingual, cross-lingual and
 * multilingual settings, with language bias as rank distance), the ranking metrics as plain
 * functions, and Markdown/HTML reports (the Jinja templates of `eval/templates/` are bundled into
 * the module graph by `deno task assets`).
 *
 * @example Ranking metrics on the 1-based ranks of one query's relevant candidates
 * ```ts
 * import { averagePrecision, rankDistance, recallAt } from "@xlmr-webgpu/engine/eval";
 * const ranks = [1, 3, 40];
 * console.log(averagePrecision(ranks)); // (1/1 + 2/3 + 3/40) / 3
 * console.log(recallAt(ranks, 10)); // 2/3
 * console.log(rankDistance(ranks)); // 39
 * ```
 *
 * @example Evaluate an encoder on XQuAD-R and write a report
 * ```ts ignore
 * import { Encoder, Gpu } from "@xlmr-webgpu/engine";
 * import { evaluateLareqa, loadLareqa, writeReportDir } from "@xlmr-webgpu/engine/eval";
 * const gpu = await Gpu.create();
 * const encoder = await Encoder.load(gpu, "model/");
 * const set = await loadLareqa("xquad-r/", { langs: ["en", "de"] });
 * const report = await evaluateLareqa(gpu, set, (inputs) => encoder.embed(inputs));
 * await writeReportDir("report/", [{ name: "model", report }]);
 * ```
 * @module
 */

export {
  type BeirOptions,
  type BeirReport,
  type EmbedFn,
  embedNormalised,
  evaluateBeir,
  evaluateLareqa,
  type LareqaReport,
  type RecallPair,
} from "./retrieval.ts";
export {
  type LareqaCandidate,
  type LareqaLanguage,
  type LareqaOptions,
  type LareqaParagraph,
  type LareqaQuestion,
  type LareqaSentence,
  type LareqaSet,
  loadLareqa,
  selectLareqa,
} from "./lareqa.ts";
export {
  type BeirDoc,
  type BeirLoadOptions,
  type BeirQuery,
  type BeirSet,
  loadBeir,
} from "./beir.ts";
export {
  averagePrecision,
  mean,
  meanAveragePrecision,
  ndcgAt,
  rankDistance,
  recallAt,
  reciprocalRankAt,
} from "./metrics.ts";
export { heatmapSvg, renderComparison, renderReport, writeReportDir } from "./report.ts";
export {
  evaluateTatoeba,
  isTatoebaDir,
  loadTatoeba,
  renderTatoebaReport,
  type TatoebaReport,
  type TatoebaSet,
} from "./tatoeba.ts";
export {
  compareRuns,
  type Comparison,
  type PairedMetric,
  renderComparisonReport,
} from "./compare.ts";
export { type LareqaPerQuery, lareqaPerQuery } from "./per_query.ts";
