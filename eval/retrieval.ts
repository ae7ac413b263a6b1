/**
 * Retrieval evaluation: embed queries and candidates (through a caller-supplied embedding
 * function), score by cosine similarity on the GPU, find the rank of every relevant candidate
 * (`kernels/retrieval_rank.ts`), and turn the ranks into the LAReQA / paper metrics: mAP per
 * (query language, corpus language), the monolingual, cross-lingual and multilingual averages,
 * language bias (rank distance) and recall; for BEIR/MIRACL nDCG@10, recall@100 and MRR@10.
 *
 * One ranking serves every setting: each query is ranked against the pooled candidates of all
 * languages (the multilingual setting), and the same kernel pass counts, per relevant candidate,
 * how many candidates of its own language are ahead of it, which is its rank in the
 * (query language, candidate language) setting. Candidates are ordered language (in `langs`
 * order), paragraph, sentence, so ties break the same way in both.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import { rankRelevant } from "../kernels/retrieval_rank.ts";
import {
  lareqaCandidates,
  type LareqaOptions,
  type LareqaSet,
  paragraphOffsets,
  selectLareqa,
} from "./lareqa.ts";
import type { BeirSet } from "./beir.ts";
import {
  type BeirPerQuery,
  beirPerQuery,
  type LareqaPerQuery,
  lareqaPerQuery,
} from "./per_query.ts";
import {
  averagePrecision,
  mean,
  ndcgAt,
  rankDistance,
  recallAt,
  reciprocalRankAt,
} from "./metrics.ts";

/**
 * Embeds a batch of texts (or text pairs, encoded as the model's sentence pair) and returns
 * `[n, H]` row-major, not normalised. `role` says whether the batch holds queries or passages
 * (candidates, documents), so that a model's query/passage prompts can be applied.
 */
export type EmbedFn = (
  items: { text: string; pair?: string }[],
  role?: "query" | "passage",
) => Promise<Float32Array>;

/** recall@1 and recall@10 of one setting. */
export interface RecallPair {
  "r@1": number | null;
  "r@10": number | null;
}

type Grid = Record<string, Record<string, number | null>>;

/** The LAReQA evaluation result (numbers are `null` where a setting has no query). */
export interface LareqaReport {
  dataset: string;
  languages: string[];
  map: {
    monolingual: number | null;
    crosslingual: number | null;
    multilingual: number | null;
    multilingual_micro: number | null;
  };
  /** mAP by query language, then candidate language (`null` when no query has an answer there). */
  pairs: Record<string, Record<string, number | null>>;
  multilingual_by_language: Record<string, number | null>;
  language_bias: { mean: number | null; by_language: Record<string, number | null> };
  recall: { monolingual: RecallPair; crosslingual: RecallPair; multilingual: RecallPair };
  counts: {
    /** Queries per language. */
    questions: Record<string, number>;
    /** Candidate sentences per language. */
    candidates: Record<string, number>;
    /** Queries of all languages. */
    queries: number;
    /** Candidates of all languages (the multilingual pool). */
    candidates_total: number;
    /** Relevant (query, candidate) pairs in the multilingual setting. */
    relevant_pairs: number;
    /** Queries per (query language, candidate language) pair that have an answer there. */
    pair_queries: Record<string, Record<string, number>>;
  };
  timing: { embed_ms: number; score_ms: number };
  /** Each query's AP and first relevant rank (for `cli.ts compare`); see `eval/per_query.ts`. */
  per_query?: LareqaPerQuery;
}

/** Options of {@linkcode evaluateBeir}. */
export interface BeirOptions {
  /** Candidates per GPU block (results do not depend on it). */
  blockSize?: number;
  /** Encode a document as (title, text) pair instead of "title text". */
  titleAsPair?: boolean;
  onProgress?: (msg: string) => void;
}

/** The BEIR/MIRACL evaluation result. */
export interface BeirReport {
  dataset: string;
  metrics: { "ndcg@10": number | null; "recall@100": number | null; "mrr@10": number | null };
  counts: { queries: number; corpus: number; relevant_pairs: number };
  timing: { embed_ms: number; score_ms: number };
  /** Each judged query's metrics, AP and first relevant rank (for `cli.ts compare`). */
  per_query?: BeirPerQuery;
}

/**
 * Calls `embed` and returns the rows L2-normalised (float64 norm), checking the shape and that
 * every value is finite. A zero row stays zero (it scores 0 against everything).
 *
 * @example
 * ```ts
 * import { embedNormalised } from "./retrieval.ts";
 * const embed = (items: { text: string }[]) =>
 *   Promise.resolve(new Float32Array(items.flatMap(() => [3, 4])));
 * const { data, dim } = await embedNormalised(embed, [{ text: "a" }], "demo");
 * console.log(dim, data); // 2 Float32Array [0.6, 0.8]
 * ```
 */
export async function embedNormalised(
  embed: EmbedFn,
  items: { text: string; pair?: string }[],
  what: string,
  role?: "query" | "passage",
): Promise<{ data: Float32Array; dim: number }> {
  if (items.length === 0) return { data: new Float32Array(0), dim: 0 };
  const out = await embed(items, role);
  if (!(out instanceof Float32Array) || out.length === 0 || out.length % items.length !== 0) {
    throw new RangeError(
      `embed(${what}): expected a Float32Array of ${items.length} × H values, got ` +
        `${out?.length ?? out}`,
    );
  }
  const dim = out.length / items.length;
  const data = new Float32Array(out.length);
  for (let i = 0; i < items.length; i++) {
    let ss = 0;
    for (let k = 0; k < dim; k++) {
      const v = out[i * dim + k];
      if (!Number.isFinite(v)) {
        throw new RangeError(`embed(${what}): row ${i} holds a non-finite value (${v})`);
      }
      ss += v * v;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < dim; k++) data[i * dim + k] = out[i * dim + k] * inv;
  }
  return { data, dim };
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

/**
 * Evaluates a LAReQA-format set (see the module doc). `opts.langs` / `opts.limitQuestions`, when
 * given, select from `set` (as {@linkcode selectLareqa}); `opts.candidate` chooses the candidate
 * text (default `"sentence"`); `opts.blockSize` the GPU block of candidates (no effect on results).
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/runtime.ts";
 * import { loadLareqa } from "./lareqa.ts";
 * import { evaluateLareqa, type EmbedFn } from "./retrieval.ts";
 * async function evaluate(gpu: Gpu, embed: EmbedFn): Promise<number | null> {
 *   const set = await loadLareqa("path/to/xquad-r", { langs: ["en", "de"], limitQuestions: 40 });
 *   const report = await evaluateLareqa(gpu, set, embed, { candidate: "sentence+context" });
 *   return report.map.multilingual;
 * }
 * ```
 */
export async function evaluateLareqa(
  gpu: Gpu,
  set: LareqaSet,
  embed: EmbedFn,
  opts: LareqaOptions = {},
): Promise<LareqaReport> {
  const candidateMode = opts.candidate ?? "sentence";
  if (candidateMode !== "sentence" && candidateMode !== "sentence+context") {
    throw new TypeError(`evaluateLareqa: candidate must be "sentence" or "sentence+context"`);
  }
  const progress = opts.onProgress ?? (() => {});
  if (opts.langs !== undefined || opts.limitQuestions !== undefined) {
    set = selectLareqa(set, opts);
  }
  const layout = candidateLayout(set);
  const t0 = performance.now();
  const { queries, candidates, dim } = await embedLareqa(set, embed, candidateMode, progress);
  const embedMs = performance.now() - t0;
  const relevant = relevantPairs(set, layout);
  progress(
    `ranking ${relevant.qInfo.length} queries × ${layout.total} candidates ` +
      `(${relevant.query.length} relevant pairs)`,
  );
  const t1 = performance.now();
  const { rank, rankInRange } = await rankRelevant(gpu, queries, candidates, dim, {
    query: new Uint32Array(relevant.query),
    candidate: new Uint32Array(relevant.candidate),
    lo: new Uint32Array(relevant.lo),
    hi: new Uint32Array(relevant.hi),
  }, {
    blockSize: opts.blockSize === undefined ? undefined : Math.min(opts.blockSize, layout.total),
  });
  const scoreMs = performance.now() - t1;
  return {
    ...lareqaMetrics(set, layout, relevant, rank, rankInRange, progress),
    timing: { embed_ms: embedMs, score_ms: scoreMs },
  };
}

/** Where each language's candidates sit in the pooled candidate list, and each id's answers. */
interface CandidateLayout {
  langs: string[];
  /** First pooled index of a language's candidates (language-major, in `langs` order). */
  langStart: Record<string, number>;
  langEnd: (l: string) => number;
  total: number;
  /** Pooled indices of each id's answer sentences, per language. */
  answersById: Map<string, Map<string, number[]>>;
}

function candidateLayout(set: LareqaSet): CandidateLayout {
  const langs = set.languages;
  const langStart: Record<string, number> = {};
  const paraOffsets: Record<string, number[]> = {};
  let total = 0;
  for (const l of langs) {
    langStart[l] = total;
    paraOffsets[l] = paragraphOffsets(set.byLanguage[l]);
    total += paraOffsets[l][paraOffsets[l].length - 1];
  }
  const langEnd = (l: string) => langStart[l] + paraOffsets[l][paraOffsets[l].length - 1];
  const answersById = new Map<string, Map<string, number[]>>();
  for (const l of langs) {
    for (const q of set.byLanguage[l].questions) {
      let m = answersById.get(q.id);
      if (!m) answersById.set(q.id, m = new Map());
      const base = langStart[l] + paraOffsets[l][q.paragraph];
      m.set(l, q.answers.map((s) => base + s));
    }
  }
  return { langs, langStart, langEnd, total, answersById };
}

/** Every language's questions and candidates embedded once, L2-normalised, pooled in order. */
async function embedLareqa(
  set: LareqaSet,
  embed: EmbedFn,
  candidateMode: "sentence" | "sentence+context",
  progress: (line: string) => void,
): Promise<{ queries: Float32Array; candidates: Float32Array; dim: number }> {
  const qParts: Float32Array[] = [], cParts: Float32Array[] = [];
  let dim = 0;
  const checkDim = (d: number, what: string) => {
    if (dim === 0) dim = d;
    else if (d !== dim) throw new RangeError(`embed(${what}): width ${d}, expected ${dim}`);
  };
  for (const l of set.languages) {
    const lang = set.byLanguage[l];
    progress(`embedding ${l}: ${lang.questions.length} questions`);
    const qe = await embedNormalised(
      embed,
      lang.questions.map((q) => ({ text: q.text })),
      `${l} questions`,
      "query",
    );
    checkDim(qe.dim, `${l} questions`);
    qParts.push(qe.data);
    const cands = lareqaCandidates(lang);
    progress(`embedding ${l}: ${cands.length} candidates (${candidateMode})`);
    const items = cands.map((c) =>
      candidateMode === "sentence" ? { text: c.text } : { text: c.text, pair: c.context }
    );
    const ce = await embedNormalised(embed, items, `${l} candidates`, "passage");
    if (ce.dim > 0) checkDim(ce.dim, `${l} candidates`);
    cParts.push(ce.data);
  }
  return { queries: concat(qParts), candidates: concat(cParts), dim };
}

/** One (query, relevant candidate) pair per answer sentence of the query's id, in any language. */
interface RelevantPairs {
  query: number[];
  candidate: number[];
  /** The candidate language's pooled range, for the rank within that language. */
  lo: number[];
  hi: number[];
  owner: { qi: number; lang: string }[];
  qInfo: { lang: string; id: string }[];
}

function relevantPairs(set: LareqaSet, layout: CandidateLayout): RelevantPairs {
  const r: RelevantPairs = { query: [], candidate: [], lo: [], hi: [], owner: [], qInfo: [] };
  for (const l of layout.langs) {
    for (const q of set.byLanguage[l].questions) {
      const qi = r.qInfo.length;
      r.qInfo.push({ lang: l, id: q.id });
      for (const cl of layout.langs) {
        for (const c of layout.answersById.get(q.id)!.get(cl) ?? []) {
          r.query.push(qi);
          r.candidate.push(c);
          r.lo.push(layout.langStart[cl]);
          r.hi.push(layout.langEnd(cl));
          r.owner.push({ qi, lang: cl });
        }
      }
    }
  }
  return r;
}

/** mAP per language pair and setting, recall, language bias and counts from the GPU's ranks. */
function lareqaMetrics(
  set: LareqaSet,
  layout: CandidateLayout,
  relevant: RelevantPairs,
  rank: ArrayLike<number>,
  rankInRange: ArrayLike<number>,
  progress: (line: string) => void,
): Omit<LareqaReport, "timing"> {
  const langs = layout.langs, qInfo = relevant.qInfo;
  // Ranks per query: all relevant in the pool; and per candidate language, within that language.
  const multiRanks: number[][] = qInfo.map(() => []);
  const langRanks: Map<string, number[]>[] = qInfo.map(() => new Map());
  relevant.owner.forEach(({ qi, lang }, k) => {
    multiRanks[qi].push(rank[k]);
    const m = langRanks[qi];
    if (!m.has(lang)) m.set(lang, []);
    m.get(lang)!.push(rankInRange[k]);
  });
  const pairs: Grid = {};
  const pairQueries: Record<string, Record<string, number>> = {};
  const pairR1: Grid = {};
  const pairR10: Grid = {};
  const multiByLang: Record<string, number | null> = {};
  const biasByLang: Record<string, number | null> = {};
  const multiR1: number[] = [], multiR10: number[] = [];
  const allAp: number[] = [];
  let qi = 0;
  for (const ql of langs) {
    const n = set.byLanguage[ql].questions.length;
    const range = Array.from({ length: n }, (_, k) => qi + k);
    qi += n;
    pairs[ql] = {};
    pairQueries[ql] = {};
    pairR1[ql] = {};
    pairR10[ql] = {};
    for (const cl of langs) {
      // Only queries whose id has an answer in the candidate language count.
      const rs = range.map((i) => langRanks[i].get(cl)).filter((r): r is number[] => !!r);
      pairQueries[ql][cl] = rs.length;
      pairs[ql][cl] = orNull(mean(rs.map(averagePrecision)));
      pairR1[ql][cl] = orNull(mean(rs.map((r) => recallAt(r, 1))));
      pairR10[ql][cl] = orNull(mean(rs.map((r) => recallAt(r, 10))));
      if (rs.length === 0) progress(`warning: no ${ql} query has an answer in ${cl}`);
    }
    const aps = range.map((i) => averagePrecision(multiRanks[i]));
    allAp.push(...aps);
    multiByLang[ql] = orNull(mean(aps));
    biasByLang[ql] = orNull(mean(range.map((i) => rankDistance(multiRanks[i]))));
    multiR1.push(mean(range.map((i) => recallAt(multiRanks[i], 1))));
    multiR10.push(mean(range.map((i) => recallAt(multiRanks[i], 10))));
  }
  // Macro-averages over (query language, candidate language) pairs; pairs without queries are
  // left out.
  const same = (g: Grid) => orNull(mean(langs.map((l) => g[l][l] ?? NaN)));
  const diff = (g: Grid) =>
    orNull(mean(langs.flatMap((a) => langs.filter((b) => b !== a).map((b) => g[a][b] ?? NaN))));

  const questions: Record<string, number> = {};
  const candCounts: Record<string, number> = {};
  for (const l of langs) {
    questions[l] = set.byLanguage[l].questions.length;
    candCounts[l] = layout.langEnd(l) - layout.langStart[l];
  }
  return {
    dataset: set.dataset,
    languages: [...langs],
    map: {
      monolingual: same(pairs),
      crosslingual: diff(pairs),
      multilingual: orNull(mean(langs.map((l) => multiByLang[l] ?? NaN))),
      multilingual_micro: orNull(mean(allAp)),
    },
    pairs,
    multilingual_by_language: multiByLang,
    language_bias: {
      mean: orNull(mean(langs.map((l) => biasByLang[l] ?? NaN))),
      by_language: biasByLang,
    },
    recall: {
      monolingual: { "r@1": same(pairR1), "r@10": same(pairR10) },
      crosslingual: { "r@1": diff(pairR1), "r@10": diff(pairR10) },
      multilingual: { "r@1": orNull(mean(multiR1)), "r@10": orNull(mean(multiR10)) },
    },
    counts: {
      questions,
      candidates: candCounts,
      queries: qInfo.length,
      candidates_total: layout.total,
      relevant_pairs: relevant.query.length,
      pair_queries: pairQueries,
    },
    per_query: lareqaPerQuery(qInfo, multiRanks, langRanks, langs),
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Evaluates a BEIR/MIRACL set: every query with judgments against the whole corpus, ranked by
 * cosine similarity (ties by corpus order). nDCG@10 uses the graded judgments with linear gain
 * (trec_eval, as BEIR); recall@100 and MRR@10 count judgments > 0 as relevant. Metrics are means
 * over queries with at least one relevant document.
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/runtime.ts";
 * import { loadBeir } from "./beir.ts";
 * import { evaluateBeir, type EmbedFn } from "./retrieval.ts";
 * async function ndcg(gpu: Gpu, embed: EmbedFn): Promise<number | null> {
 *   const set = await loadBeir("path/to/miracl-sw-dev");
 *   return (await evaluateBeir(gpu, set, embed)).metrics["ndcg@10"];
 * }
 * ```
 */
export async function evaluateBeir(
  gpu: Gpu,
  set: BeirSet,
  embed: EmbedFn,
  opts: BeirOptions = {},
): Promise<BeirReport> {
  const progress = opts.onProgress ?? (() => {});
  const t0 = performance.now();
  progress(`embedding ${set.queries.length} queries`);
  const qe = await embedNormalised(
    embed,
    set.queries.map((q) => ({ text: q.text })),
    "queries",
    "query",
  );
  progress(`embedding ${set.corpus.length} documents`);
  const docs = set.corpus.map((d) =>
    opts.titleAsPair && d.title
      ? { text: d.title, pair: d.text }
      : { text: d.title ? `${d.title} ${d.text}` : d.text }
  );
  const ce = await embedNormalised(embed, docs, "corpus", "passage");
  if (qe.dim !== ce.dim) {
    throw new RangeError(`evaluateBeir: query width ${qe.dim} differs from corpus ${ce.dim}`);
  }
  const embedMs = performance.now() - t0;
  const pq: number[] = [], pc: number[] = [], grade: number[] = [];
  set.queries.forEach((q, qi) => {
    for (const [doc, g] of q.relevant) {
      if (g <= 0) continue;
      pq.push(qi);
      pc.push(doc);
      grade.push(g);
    }
  });
  const t1 = performance.now();
  const { rank } = await rankRelevant(gpu, qe.data, ce.data, qe.dim, {
    query: new Uint32Array(pq),
    candidate: new Uint32Array(pc),
  }, {
    blockSize: opts.blockSize === undefined
      ? undefined
      : Math.min(opts.blockSize, set.corpus.length),
  });
  const scoreMs = performance.now() - t1;
  const ranks: number[][] = set.queries.map(() => []);
  const grades: number[][] = set.queries.map(() => []);
  pq.forEach((qi, k) => {
    ranks[qi].push(rank[k]);
    grades[qi].push(grade[k]);
  });
  const judged = ranks.map((_, i) => i).filter((i) => ranks[i].length > 0);
  return {
    dataset: set.dataset,
    metrics: {
      "ndcg@10": orNull(mean(judged.map((i) => ndcgAt(ranks[i], grades[i], 10)))),
      "recall@100": orNull(mean(judged.map((i) => recallAt(ranks[i], 100)))),
      "mrr@10": orNull(mean(judged.map((i) => reciprocalRankAt(ranks[i], 10)))),
    },
    counts: { queries: judged.length, corpus: set.corpus.length, relevant_pairs: pq.length },
    timing: { embed_ms: embedMs, score_ms: scoreMs },
    per_query: beirPerQuery(set.queries.map((q) => q.id), ranks, grades, judged),
  };
}
