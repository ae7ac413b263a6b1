/**
 * Hard-negative mining with the engine's own GPU retrieval: every item's question is scored
 * against a pool of answer sentences on the GPU (`scoreBlock` of `kernels/retrieval_rank.ts`, the
 * kernel the evaluation ranks with), and other items' answers that rank high are written as the
 * item's `"negatives": {"lang": [texts…]}`, the format `train --hard-negatives` reads.
 *
 * Negatives are keyed by the passage language L (training appends `negatives[L]` whenever the
 * positive passage is in L). For each item and each of its languages L:
 *
 * - the **pool** is the distinct answer texts of all items in L (`langsFrom` `same` and
 *   `passage`) or in every language (`all`; the pool is language-major in sorted order);
 * - the **queries** are the item's question in L (`same`, `all`) or in each of its languages
 *   (`passage`: a negative must suit the cross-lingual pairs training makes too);
 * - a candidate's **rank** for a query is 1 + the candidates scoring higher + the equal-scoring
 *   ones earlier in the pool (the evaluation's tie rule); the positive (`answer[L]`) is in the
 *   pool, so it usually has rank 1.
 *
 * A candidate is never mined when it carries the item's `id` (the positive itself and, with
 * `all`, its translations: false negatives; counted in `skippedSameId`, the positive excluded) or
 * its text equals one of the item's answers in any language (`skippedSameText`). With several
 * queries (`passage`) the score filters hold for every query: a candidate is skipped when, for
 * any query, its cosine score s exceeds `maxScore`, `pos − margin` or `pos × (1 − relativeMargin)`
 * where `pos` is that query's score of the positive (sentence-transformers' `absolute_margin` and
 * `relative_margin`).
 *
 * A text met twice (the same sentence in two languages of the `all` pool) is taken once.
 *
 * Selection: without `range`, the `negatives` best-ranked eligible candidates (ordered by their
 * best rank over the queries, then pool order); with `range: [A, B]` (1-based, inclusive),
 * `negatives` drawn uniformly without replacement from the eligible candidates ranked A..B for at
 * least one query (FlagEmbedding's `range_for_sampling`), written in rank order. The draw of each
 * (item, language) uses its own generator seeded from (seed, id, language), so the output depends
 * on the seed only, not on chunk sizes or order.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import { scoreBlock } from "../kernels/retrieval_rank.ts";
import { type EmbedFn, embedNormalised } from "../eval/retrieval.ts";
import type { QaDataset, QaItem } from "./data.ts";
import { Random } from "./random.ts";

/** Which candidates and queries a language's negatives come from (see the module doc). */
export type LangsFrom = "same" | "passage" | "all";

/** Options of {@linkcode mineHardNegatives}. */
export interface MineOptions {
  /** Negatives per item and language (default 5). */
  negatives?: number;
  /** Sample from ranks A..B (1-based, inclusive) instead of taking the best-ranked ones. */
  range?: [number, number];
  /** Skip candidates scoring above the positive's score − margin. */
  margin?: number;
  /** Skip candidates scoring above (1 − relativeMargin) × the positive's score. */
  relativeMargin?: number;
  /** Skip candidates scoring above this. */
  maxScore?: number;
  /** Default `same`. */
  langsFrom?: LangsFrom;
  /** Default 0. */
  seed?: number;
  /** Prepended to questions before embedding (as `train --query-prefix`). */
  queryPrefix?: string;
  /** Prepended to answers before embedding (as `train --passage-prefix`). */
  passagePrefix?: string;
  /** Host memory for one chunk of score rows (bytes, default 32 MiB). */
  chunkBytes?: number;
  onProgress?: (msg: string) => void;
}

/** One mined negative with where it ranked (for checks and the `--trace` file). */
export interface MinedNegative {
  text: string;
  /** Language of the candidate (differs from the key with `langsFrom: "all"`). */
  lang: string;
  /** Position in the pool. */
  index: number;
  /** Best rank over the queries. */
  rank: number;
}

/** Counts over all (item, language) keys. */
export interface MineStats {
  items: number;
  /** (item, language) keys mined. */
  keys: number;
  /** Queries scored (one per key, or per key and query language with `passage`). */
  queries: number;
  negatives: number;
  /** Keys that got fewer than `negatives`. */
  short: number;
  /** Candidates in the window that carry the item's id (the positive not counted). */
  skippedSameId: number;
  /** Candidates whose text equals one of the item's answers (another id). */
  skippedSameText: number;
  skippedMaxScore: number;
  skippedMargin: number;
  skippedRelativeMargin: number;
}

/** What {@linkcode mineHardNegatives} returns. */
export interface MineResult {
  /** The input items with `negatives` replaced by the mined ones (omitted when none). */
  items: QaItem[];
  stats: MineStats;
  /** Per item (same order), per language: the mined negatives with their ranks. */
  trace: Record<string, MinedNegative[]>[];
  /** Pool layout: language of each pool segment and where it starts, and its texts. */
  pool: { langs: string[]; start: number[]; texts: string[] };
}

function fnv1a(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The generator of one (item, language) draw. */
export function mineRandom(seed: number, id: string, lang: string): Random {
  return new Random((fnv1a(`${id}\u0000${lang}`) ^ fnv1a(String(seed))) >>> 0);
}

/**
 * Indices of the `k` highest scores of `row` in rank order (score descending, index ascending on
 * ties).
 */
export function topIndices(row: Float32Array, k: number): Uint32Array {
  const n = row.length;
  k = Math.min(k, n);
  let idx: Uint32Array;
  if (k * 4 >= n) {
    idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
  } else {
    // The k-th largest value by quickselect, then everything above it plus the first ties.
    const a = Float32Array.from(row);
    let lo = 0, hi = n - 1;
    const want = k - 1; // position in descending order
    while (lo < hi) {
      const pivot = a[(lo + hi) >>> 1];
      let i = lo, j = hi;
      while (i <= j) {
        while (a[i] > pivot) i++;
        while (a[j] < pivot) j--;
        if (i <= j) {
          const t = a[i];
          a[i] = a[j];
          a[j] = t;
          i++;
          j--;
        }
      }
      if (want <= j) hi = j;
      else if (want >= i) lo = i;
      else break;
    }
    const t = a[want];
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (row[i] > t) out.push(i);
    for (let i = 0; i < n && out.length < k; i++) if (row[i] === t) out.push(i);
    idx = Uint32Array.from(out);
  }
  idx.sort((x, y) => row[y] - row[x] || x - y);
  return idx.length > k ? idx.slice(0, k) : idx;
}

interface Key {
  item: number;
  lang: string;
  /** Query rows (into the question embeddings) and their languages. */
  queries: number[];
}

/**
 * Mines hard negatives for every item of `data` (see the module doc for the rules).
 *
 * @example
 * ```ts ignore
 * const gpu = await Gpu.create();
 * const enc = await Encoder.load(gpu, "run-hybrid");
 * const data = await loadQaData("train.jsonl");
 * const embed = (items: { text: string }[]) => enc.embed(items, { pooling: "cls" });
 * const { items, stats } = await mineHardNegatives(gpu, data, embed, { negatives: 4, range: [2, 50] });
 * ```
 */
export async function mineHardNegatives(
  gpu: Gpu,
  data: QaDataset,
  embed: EmbedFn,
  opts: MineOptions = {},
): Promise<MineResult> {
  const op = "mineHardNegatives";
  const n = opts.negatives ?? 5;
  const langsFrom = opts.langsFrom ?? "same";
  const seed = opts.seed ?? 0;
  const progress = opts.onProgress ?? (() => {});
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${op}: negatives must be ≥ 1, got ${n}`);
  if (!["same", "passage", "all"].includes(langsFrom)) {
    throw new RangeError(`${op}: langsFrom must be same, passage or all, got ${langsFrom}`);
  }
  if (opts.range) {
    const [a, b] = opts.range;
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < a) {
      throw new RangeError(`${op}: range must be 1 ≤ A ≤ B (integers), got ${a}:${b}`);
    }
  }
  const qp = opts.queryPrefix ?? "", pp = opts.passagePrefix ?? "";
  const langs = [...data.languages].sort();

  // Pool: distinct answer texts per language, language-major; each with the ids that have it.
  const poolTexts: string[] = [], poolLang: string[] = [], poolIds: Set<string>[] = [];
  const poolStart: number[] = [];
  const index = new Map<string, Map<string, number>>();
  for (const l of langs) {
    poolStart.push(poolTexts.length);
    const m = new Map<string, number>();
    index.set(l, m);
    for (const it of data.items) {
      const t = it.answer[l];
      if (t === undefined) continue;
      let j = m.get(t);
      if (j === undefined) {
        m.set(t, j = poolTexts.length);
        poolTexts.push(t);
        poolLang.push(l);
        poolIds.push(new Set());
      }
      poolIds[j].add(it.id);
    }
  }
  poolStart.push(poolTexts.length);
  const segment = (l: string) => {
    const k = langs.indexOf(l);
    return [poolStart[k], poolStart[k + 1]];
  };

  // Query rows: every item's question in each of its languages.
  const qRow = new Map<string, number>(); // `${item}\u0000${lang}` → row
  const qTexts: string[] = [];
  data.items.forEach((it, i) => {
    for (const l of Object.keys(it.question).sort()) {
      qRow.set(`${i}\u0000${l}`, qTexts.length);
      qTexts.push(it.question[l]);
    }
  });
  progress(`embedding ${qTexts.length} questions`);
  const qe = await embedNormalised(embed, qTexts.map((t) => ({ text: qp + t })), "questions");
  progress(`embedding ${poolTexts.length} candidate answers`);
  const ce = await embedNormalised(embed, poolTexts.map((t) => ({ text: pp + t })), "answers");
  if (qe.dim !== ce.dim) {
    throw new RangeError(`${op}: question width ${qe.dim} differs from answers ${ce.dim}`);
  }
  const dim = qe.dim;

  const stats: MineStats = {
    items: data.items.length,
    keys: 0,
    queries: 0,
    negatives: 0,
    short: 0,
    skippedSameId: 0,
    skippedSameText: 0,
    skippedMaxScore: 0,
    skippedMargin: 0,
    skippedRelativeMargin: 0,
  };
  const trace: Record<string, MinedNegative[]>[] = data.items.map(() => ({}));

  // Work per pool segment: one per language, or the whole pool for `all`.
  const pools = langsFrom === "all"
    ? [{ lo: 0, hi: poolTexts.length, keysOf: langs }]
    : langs.map((l) => {
      const [lo, hi] = segment(l);
      return { lo, hi, keysOf: [l] };
    });
  const totalKeys = data.items.reduce(
    (s, it) => s + Object.keys(it.answer).filter((l) => l in it.question).length,
    0,
  );
  let keysDone = 0;
  const maxBinding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  for (const pool of pools) {
    const size = pool.hi - pool.lo;
    const keys: Key[] = [];
    for (const l of pool.keysOf) {
      data.items.forEach((it, i) => {
        if (it.answer[l] === undefined || it.question[l] === undefined) return;
        const qLangs = langsFrom === "passage" ? Object.keys(it.question).sort() : [l];
        keys.push({ item: i, lang: l, queries: qLangs.map((q) => qRow.get(`${i}\u0000${q}`)!) });
      });
    }
    // Candidate blocks that fit one binding; query chunks whose score rows fit `chunkBytes`.
    const blockMax = Math.max(1, Math.floor(Math.min(maxBinding, 128 * 2 ** 20) / (dim * 4)));
    const nb = Math.min(size, blockMax);
    const rowsMax = Math.max(1, Math.floor((opts.chunkBytes ?? 32 * 2 ** 20) / (size * 4)));
    const blocks: { start: number; n: number; t: ReturnType<Gpu["fromArray"]> }[] = [];
    const oneBlock = size <= nb;
    const upload = (start: number, count: number) =>
      gpu.fromArray(
        ce.data.subarray((pool.lo + start) * dim, (pool.lo + start + count) * dim),
        [count, dim],
        "f32",
        "mine.candidates",
      );
    const mineKey = (key: Key, rows: Float32Array[]): void => {
      const item = data.items[key.item];
      const pos = index.get(key.lang)!.get(item.answer[key.lang])! - pool.lo;
      const answers = new Set(Object.values(item.answer));
      const posScore = rows.map((row) => row[pos]);
      stats.keys++;
      stats.queries += rows.length;
      // Why a candidate is excluded (null: eligible).
      const reason = (j: number): keyof MineStats | "positive" | null => {
        if (j === pos) return "positive";
        if (poolIds[pool.lo + j].has(item.id)) return "skippedSameId";
        if (answers.has(poolTexts[pool.lo + j])) return "skippedSameText";
        for (let q = 0; q < rows.length; q++) {
          const s = rows[q][j];
          if (opts.maxScore !== undefined && s > opts.maxScore) return "skippedMaxScore";
          if (opts.margin !== undefined && s > posScore[q] - opts.margin) return "skippedMargin";
          if (
            opts.relativeMargin !== undefined && s > posScore[q] * (1 - opts.relativeMargin)
          ) return "skippedRelativeMargin";
        }
        return null;
      };
      const count = (r: keyof MineStats | "positive" | null) => {
        if (r !== null && r !== "positive") stats[r]++;
      };
      // Best rank of each candidate ranked ≤ depth for some query, in (rank, index) order.
      const ranked = (depth: number) => {
        const best = new Map<number, number>();
        const inWindow = new Set<number>();
        for (const row of rows) {
          topIndices(row, depth).forEach((j, p) => {
            const r = p + 1;
            if (!best.has(j) || r < best.get(j)!) best.set(j, r);
            if (opts.range && r >= opts.range[0]) inWindow.add(j);
          });
        }
        const list = [...best.entries()].sort((x, y) => x[1] - y[1] || x[0] - y[0]);
        return { list, inWindow };
      };
      let chosen: [number, number][] = [];
      if (opts.range) {
        const { list, inWindow } = ranked(Math.min(opts.range[1], size));
        const eligible: [number, number][] = [];
        const texts = new Set<string>();
        for (const e of list) {
          if (!inWindow.has(e[0])) continue;
          const r = reason(e[0]);
          count(r);
          if (r !== null || texts.has(poolTexts[pool.lo + e[0]])) continue;
          texts.add(poolTexts[pool.lo + e[0]]);
          eligible.push(e);
        }
        if (eligible.length <= n) chosen = eligible;
        else {
          const rnd = mineRandom(seed, item.id, key.lang);
          for (let i = 0; i < n; i++) {
            const j = i + rnd.int(eligible.length - i);
            [eligible[i], eligible[j]] = [eligible[j], eligible[i]];
          }
          chosen = eligible.slice(0, n).sort((x, y) => x[1] - y[1] || x[0] - y[0]);
        }
      } else {
        for (let depth = Math.min(size, Math.max(64, 4 * n));; depth = Math.min(size, depth * 2)) {
          const { list } = ranked(depth);
          const reasons: (keyof MineStats | "positive" | null)[] = [];
          chosen = [];
          const texts = new Set<string>();
          for (const e of list) {
            if (chosen.length === n) break;
            const r = reason(e[0]);
            reasons.push(r);
            if (r !== null || texts.has(poolTexts[pool.lo + e[0]])) continue;
            texts.add(poolTexts[pool.lo + e[0]]);
            chosen.push(e);
          }
          if (chosen.length === n || depth === size) {
            reasons.forEach(count);
            break;
          }
        }
      }
      if (chosen.length < n) stats.short++;
      stats.negatives += chosen.length;
      trace[key.item][key.lang] = chosen.map(([j, rank]) => ({
        text: poolTexts[pool.lo + j],
        lang: poolLang[pool.lo + j],
        index: pool.lo + j,
        rank,
      }));
    };
    if (oneBlock) blocks.push({ start: 0, n: size, t: upload(0, size) });
    try {
      for (let k0 = 0; k0 < keys.length;) {
        // A chunk of whole keys (all query rows of a key in the same chunk).
        let rows = 0, k1 = k0;
        while (k1 < keys.length && (rows === 0 || rows + keys[k1].queries.length <= rowsMax)) {
          rows += keys[k1].queries.length;
          k1++;
        }
        const qIdx = keys.slice(k0, k1).flatMap((k) => k.queries);
        const qData = new Float32Array(qIdx.length * dim);
        qIdx.forEach((r, i) => qData.set(qe.data.subarray(r * dim, (r + 1) * dim), i * dim));
        const qt = gpu.fromArray(qData, [qIdx.length, dim], "f32", "mine.queries");
        const scores = new Float32Array(qIdx.length * size);
        try {
          for (let b0 = 0; b0 < size; b0 += nb) {
            const count = Math.min(nb, size - b0);
            const block = oneBlock ? blocks[0].t : upload(b0, count);
            const st = scoreBlock(gpu, qt, block);
            const got = await gpu.read(st);
            gpu.release(st);
            if (!oneBlock) gpu.release(block);
            for (let r = 0; r < qIdx.length; r++) {
              scores.set(got.subarray(r * count, (r + 1) * count), r * size + b0);
            }
          }
        } finally {
          gpu.release(qt);
        }
        let r0 = 0;
        for (let k = k0; k < k1; k++) {
          const key = keys[k];
          const rowsOf = key.queries.map((_, i) =>
            scores.subarray((r0 + i) * size, (r0 + i + 1) * size)
          );
          r0 += key.queries.length;
          mineKey(key, rowsOf);
        }
        keysDone += k1 - k0;
        progress(`mined ${keysDone}/${totalKeys} (item, language) keys`);
        k0 = k1;
      }
    } finally {
      for (const b of blocks) gpu.release(b.t);
    }
  }

  const items = data.items.map((it, i) => {
    const out: QaItem = { id: it.id, question: it.question, answer: it.answer };
    const negatives: Record<string, string[]> = {};
    for (const l of Object.keys(trace[i]).sort()) {
      if (trace[i][l].length > 0) negatives[l] = trace[i][l].map((x) => x.text);
    }
    if (Object.keys(negatives).length > 0) out.negatives = negatives;
    return out;
  });
  return { items, stats, trace, pool: { langs, start: poolStart, texts: poolTexts } };
}
