/**
 * Paired comparison of two evaluation runs over the same queries, with uncertainty: for every
 * metric the difference B − A, a 95% confidence interval and a p-value from a paired bootstrap.
 *
 * Inputs are eval JSONs with `per_query` columns (LAReQA and BEIR: `eval/per_query.ts`; Tatoeba:
 * `eval/tatoeba.ts`). Queries are matched by key (language and id; language and line for
 * Tatoeba; query id for BEIR) and must be the same in both runs. Every metric is a macro average over cells of
 * per-query means (e.g. monolingual mAP: the mean over languages of the mean AP of that language's
 * queries within their own language), recomputed from the per-query values, which must reproduce
 * the numbers the JSON reports (else the file is refused).
 *
 * **Bootstrap.** The resampling unit is a cluster of queries that are not independent: a LAReQA
 * question id with all its language versions (translations of one question), or one Tatoeba
 * sentence pair with both directions; a BEIR query alone. Clusters are grouped in strata (Tatoeba: its language, so
 * every replicate keeps each language's size; LAReQA: one stratum). Replicate r draws, stratum by
 * stratum in sorted order, n_s clusters of the stratum with replacement (cluster
 * ⌊u · n_s⌋ of the stratum's clusters in order of first appearance in A's `per_query`, u from one
 * `mulberry32(seed)` of `model/init.ts` for all replicates, in replicate order), and recomputes
 * every metric on both runs with those clusters, so the difference is paired. The interval is the
 * percentile interval of the replicated differences (2.5% and 97.5% points, linear interpolation
 * between order statistics as numpy's default `percentile`); the two-sided p-value is
 * min(1, 2 · (1 + k) / (R + 1)) with k the number of replicates on the far side of 0 (≤ 0 when
 * the observed difference is positive, ≥ 0 when negative, the smaller count when it is 0) and R
 * the number of replicates. A difference is called significant only when its interval excludes 0.
 *
 * **Several seeds.** A side may hold several runs (one configuration trained with different
 * seeds, evaluated on the same queries). Its value is the mean of the metric over its runs; each
 * replicate, after drawing the clusters, draws for side A and then for side B as many runs as the
 * side has, with replacement (⌊u · n⌋ from the same generator; nothing is drawn for a side with one
 * run, so one run per side gives exactly the single-run bootstrap), and a side's value is the
 * mean over the drawn runs. The interval then reflects both query sampling and seed-to-seed
 * variation; runs are not paired across sides.
 * @module
 */
import { mulberry32 } from "../model/init.ts";

/** One metric of the comparison. */
export interface PairedMetric {
  name: string;
  a: number;
  b: number;
  /** b − a on the full sample. */
  diff: number;
  /** 95% percentile interval of the bootstrap differences. */
  ci: [number, number];
  p: number;
  /** The interval excludes 0. */
  significant: boolean;
  higherIsBetter: boolean;
}

/** What {@linkcode compareRuns} returns (and `compare --out` writes). */
export interface Comparison {
  kind: Kind;
  dataset: string;
  names: { a: string; b: string };
  /** Runs (seeds) per side. */
  runs: { a: number; b: number };
  queries: number;
  clusters: number;
  resamples: number;
  seed: number;
  confidence: number;
  /** The method in words (for reports). */
  method: string;
  metrics: PairedMetric[];
}

/** Options of {@linkcode compareRuns}. */
export interface CompareOptions {
  /** Bootstrap replicates (default 10,000). */
  resamples?: number;
  /** Default 0. */
  seed?: number;
  names?: { a: string; b: string };
  /** Names of each side's runs (errors name them; default `A`, or `A[1]`, `A[2]`, …). */
  runNames?: { a: string[]; b: string[] };
  onProgress?: (msg: string) => void;
}

/** A metric as a macro average over cells; a cell lists (row, value) pairs. */
interface MetricDef {
  name: string;
  higherIsBetter: boolean;
  cells: { rows: number[]; a: number[]; b: number[] }[];
  /** The value the eval JSONs report for A and B, checked against the recomputation. */
  reported?: [number | null | undefined, number | null | undefined];
}

interface Rows {
  keys: string[];
  cluster: string[];
  stratum: string[];
}

type Json = Record<string, unknown>;
type Kind = "lareqa" | "tatoeba" | "beir";

function isRecord(x: unknown): x is Json {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function column(pq: Json, name: string, n: number, what: string): unknown[] {
  const c = pq[name];
  if (!Array.isArray(c) || c.length !== n) {
    throw new TypeError(`${what}: per_query.${name} must be an array of ${n} entries`);
  }
  return c;
}

/** Which kind of eval JSON `x` is, checking its per-query columns. */
function kindOf(x: unknown, what: string): Kind {
  if (!isRecord(x) || typeof x.dataset !== "string") {
    throw new TypeError(`${what}: not an eval JSON (no "dataset")`);
  }
  if (!isRecord(x.per_query)) {
    throw new TypeError(
      `${what}: has no per-query results ("per_query"); it was written by an older eval or ` +
        `another tool: run eval again`,
    );
  }
  if (x.dataset === "tatoeba" && "to_eng_rank" in x.per_query) return "tatoeba";
  return "ndcg@10" in x.per_query ? "beir" : "lareqa";
}

function rowsOf(x: Json, kind: Kind, what: string): Rows {
  const pq = x.per_query as Json;
  if (kind === "beir") {
    const id = pq.id;
    if (!Array.isArray(id)) throw new TypeError(`${what}: per_query.id must be an array`);
    const keys = id.map(String);
    return { keys, cluster: keys, stratum: keys.map(() => "") };
  }
  const lang = pq.lang;
  if (!Array.isArray(lang) || !lang.every((l) => typeof l === "string")) {
    throw new TypeError(`${what}: per_query.lang must be an array of strings`);
  }
  const n = lang.length;
  if (kind === "lareqa") {
    const id = column(pq, "id", n, what).map(String);
    const keys = lang.map((l, i) => `${l}\u0000${id[i]}`);
    return { keys, cluster: id, stratum: keys.map(() => "") };
  }
  const index = column(pq, "index", n, what);
  const keys = lang.map((l, i) => `${l}\u0000${index[i]}`);
  return { keys, cluster: keys, stratum: lang as string[] };
}

function numbers(pq: Json, name: string, n: number, what: string, nullable = false) {
  return column(pq, name, n, what).map((v, i) => {
    if (v === null && nullable) return null;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(`${what}: per_query.${name}[${i}] is not a finite number (${v})`);
    }
    return v;
  });
}

/** Per-language groups of row indices (in first-appearance order of the languages). */
function byLang(lang: string[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  lang.forEach((l, i) => {
    if (!m.has(l)) m.set(l, []);
    m.get(l)!.push(i);
  });
  return m;
}

function lareqaMetrics(a: Json, b: Json, order: number[], what: [string, string]): MetricDef[] {
  const pa = a.per_query as Json, pb = b.per_query as Json;
  const n = order.length;
  const lang = pa.lang as string[];
  const apA = numbers(pa, "ap", n, what[0]) as number[];
  const apB = numbers(pb, "ap", n, what[1]) as number[];
  const frA = numbers(pa, "first_rank", n, what[0]) as number[];
  const frB = numbers(pb, "first_rank", n, what[1]) as number[];
  const bl = (p: Json, w: string) => {
    if (!isRecord(p.ap_by_language)) throw new TypeError(`${w}: per_query.ap_by_language missing`);
    return p.ap_by_language as Json;
  };
  const blA = bl(pa, what[0]), blB = bl(pb, what[1]);
  const langs = [...byLang(lang).keys()];
  const cand = Object.keys(blA);
  const colA: Record<string, (number | null)[]> = {}, colB: Record<string, (number | null)[]> = {};
  for (const l of cand) {
    colA[l] = numbers(blA, l, n, `${what[0]} ap_by_language`, true);
    if (!(l in blB)) throw new TypeError(`${what[1]}: per_query.ap_by_language has no "${l}"`);
    colB[l] = numbers(blB, l, n, `${what[1]} ap_by_language`, true);
  }
  const groups = byLang(lang);
  // B's values are read through `order` (B's row of A's i-th query).
  const cell = (
    rows: number[],
    fa: (i: number) => number | null,
    fb: (j: number) => number | null,
  ) => {
    const out = { rows: [] as number[], a: [] as number[], b: [] as number[] };
    for (const i of rows) {
      const va = fa(i), vb = fb(order[i]);
      if ((va === null) !== (vb === null)) {
        throw new RangeError(
          `${what[0]} and ${what[1]} disagree on which candidate languages answer query ` +
            `${lang[i]}/${(pa.id as unknown[])[i]} (different data sets?)`,
        );
      }
      if (va === null || vb === null) continue;
      out.rows.push(i);
      out.a.push(va);
      out.b.push(vb);
    }
    return out;
  };
  const nonEmpty = <T extends { rows: number[] }>(cs: T[]) => cs.filter((c) => c.rows.length > 0);
  const rep = (path: (x: Json) => unknown): [number | null, number | null] => {
    const get = (x: Json) => {
      const v = path(x);
      return typeof v === "number" ? v : null;
    };
    return [get(a), get(b)];
  };
  const m = (x: Json) => (isRecord(x.map) ? x.map : {}) as Json;
  const defs: MetricDef[] = [
    {
      name: "mAP monolingual",
      higherIsBetter: true,
      cells: nonEmpty(
        langs.filter((l) => l in colA).map((l) =>
          cell(groups.get(l)!, (i) => colA[l][i], (j) => colB[l][j])
        ),
      ),
      reported: rep((x) => m(x).monolingual),
    },
    {
      name: "mAP cross-lingual",
      higherIsBetter: true,
      cells: nonEmpty(
        langs.flatMap((ql) =>
          cand.filter((cl) => cl !== ql).map((cl) =>
            cell(groups.get(ql)!, (i) => colA[cl][i], (j) => colB[cl][j])
          )
        ),
      ),
      reported: rep((x) => m(x).crosslingual),
    },
    {
      name: "mAP multilingual",
      higherIsBetter: true,
      cells: langs.map((l) => cell(groups.get(l)!, (i) => apA[i], (j) => apB[j])),
      reported: rep((x) => m(x).multilingual),
    },
    {
      name: "mAP multilingual (micro)",
      higherIsBetter: true,
      cells: [cell(lang.map((_, i) => i), (i) => apA[i], (j) => apB[j])],
      reported: rep((x) => m(x).multilingual_micro),
    },
    {
      name: "MRR multilingual",
      higherIsBetter: true,
      cells: langs.map((l) => cell(groups.get(l)!, (i) => 1 / frA[i], (j) => 1 / frB[j])),
    },
    {
      name: "first relevant at rank 1, multilingual",
      higherIsBetter: true,
      cells: langs.map((l) =>
        cell(groups.get(l)!, (i) => Number(frA[i] === 1), (j) => Number(frB[j] === 1))
      ),
    },
  ];
  for (const l of langs) {
    defs.push({
      name: `mAP multilingual, ${l}`,
      higherIsBetter: true,
      cells: [cell(groups.get(l)!, (i) => apA[i], (j) => apB[j])],
      reported: rep((x) =>
        isRecord(x.multilingual_by_language) ? x.multilingual_by_language[l] : undefined
      ),
    });
  }
  return defs;
}

function tatoebaMetrics(a: Json, b: Json, order: number[], what: [string, string]): MetricDef[] {
  const pa = a.per_query as Json, pb = b.per_query as Json;
  const n = order.length;
  const lang = pa.lang as string[];
  const hit = (p: Json, k: string, w: string) => numbers(p, k, n, w).map((r) => Number(r === 1));
  const toA = hit(pa, "to_eng_rank", what[0]), toB = hit(pb, "to_eng_rank", what[1]);
  const fromA = hit(pa, "from_eng_rank", what[0]), fromB = hit(pb, "from_eng_rank", what[1]);
  const groups = byLang(lang);
  const langs = [...groups.keys()];
  const cell = (rows: number[], fa: (i: number) => number, fb: (j: number) => number) => ({
    rows,
    a: rows.map(fa),
    b: rows.map((i) => fb(order[i])),
  });
  const acc = (x: Json, l: string, k: string) => {
    const v = isRecord(x.accuracy) && isRecord(x.accuracy[l]) ? x.accuracy[l][k] : undefined;
    return typeof v === "number" ? v : null;
  };
  const avg = (x: Json, k?: string) => {
    const v = k ? (isRecord(x.average_by_direction) ? x.average_by_direction[k] : null) : x.average;
    return typeof v === "number" ? v : null;
  };
  const defs: MetricDef[] = [
    {
      name: "accuracy@1 average",
      higherIsBetter: true,
      cells: langs.map((l) =>
        cell(groups.get(l)!, (i) => (toA[i] + fromA[i]) / 2, (j) => (toB[j] + fromB[j]) / 2)
      ),
      reported: [avg(a), avg(b)],
    },
    {
      name: "accuracy@1 xxx→eng",
      higherIsBetter: true,
      cells: langs.map((l) => cell(groups.get(l)!, (i) => toA[i], (j) => toB[j])),
      reported: [avg(a, "to_eng"), avg(b, "to_eng")],
    },
    {
      name: "accuracy@1 eng→xxx",
      higherIsBetter: true,
      cells: langs.map((l) => cell(groups.get(l)!, (i) => fromA[i], (j) => fromB[j])),
      reported: [avg(a, "from_eng"), avg(b, "from_eng")],
    },
  ];
  for (const l of langs) {
    defs.push({
      name: `accuracy@1 ${l} (mean of both directions)`,
      higherIsBetter: true,
      cells: [
        cell(groups.get(l)!, (i) => (toA[i] + fromA[i]) / 2, (j) => (toB[j] + fromB[j]) / 2),
      ],
      reported: [acc(a, l, "mean"), acc(b, l, "mean")],
    });
  }
  return defs;
}

function beirMetrics(a: Json, b: Json, order: number[], what: [string, string]): MetricDef[] {
  const pa = a.per_query as Json, pb = b.per_query as Json;
  const n = order.length;
  const rows = order.map((_, i) => i);
  const reported = (x: Json, k: string) => {
    const v = isRecord(x.metrics) ? x.metrics[k] : undefined;
    return typeof v === "number" ? v : null;
  };
  const def = (name: string, col: string, f: (v: number) => number, rep?: string) => {
    const va = (numbers(pa, col, n, what[0]) as number[]).map(f);
    const vb = (numbers(pb, col, n, what[1]) as number[]).map(f);
    return {
      name,
      higherIsBetter: true,
      cells: [{ rows, a: va, b: rows.map((i) => vb[order[i]]) }],
      reported: rep
        ? [reported(a, rep), reported(b, rep)] as [number | null, number | null]
        : undefined,
    };
  };
  return [
    def("nDCG@10", "ndcg@10", (v) => v, "ndcg@10"),
    def("recall@100", "recall@100", (v) => v, "recall@100"),
    def("MRR@10", "mrr@10", (v) => v, "mrr@10"),
    def("MAP", "ap", (v) => v),
    def("first relevant at rank 1", "first_rank", (v) => Number(v === 1)),
  ];
}

/**
 * The metrics packed for the bootstrap: cells with the same rows share a group (aggregated per
 * cluster: count of rows, and per run and cell the sum of the run's values), so that one pass over
 * a group's clusters per replicate serves every cell on those rows. A metric's value under cluster
 * weights w is the mean over its cells with weight of Σ w·sum / Σ w·count.
 */
interface Packed {
  groups: {
    cluster: Int32Array;
    count: Float64Array;
    /** Per run: [entry × cells of the group]. */
    sums: Float64Array[];
    cells: number;
  }[];
  /** Per metric: its cells as (group, column). */
  metricCells: [number, number][][];
  runs: number;
  /** Scratch: per run and group, the replicate's weighted mean per column (NaN: no weight). */
  means: Float64Array[][];
}

/** `perRun[x]` holds run x's metric definitions (same rows as `defs`, its values in `b`). */
function pack(defs: MetricDef[], perRun: MetricDef[][], clusterOf: Int32Array): Packed {
  const byRows = new Map<string, number>();
  const members: { rows: number[]; cells: [number, number][] }[] = [];
  const metricCells = defs.map((d, m) =>
    d.cells.map((c, ci): [number, number] => {
      const key = c.rows.join(",");
      let g = byRows.get(key);
      if (g === undefined) {
        byRows.set(key, g = members.length);
        members.push({ rows: c.rows, cells: [] });
      }
      members[g].cells.push([m, ci]);
      return [g, members[g].cells.length - 1];
    })
  );
  const groups = members.map(({ rows, cells }) => {
    const k = cells.length;
    const slot = new Map<number, number>();
    const order = [...new Set(rows.map((r) => clusterOf[r]))].sort((x, y) => x - y);
    order.forEach((c, e) => slot.set(c, e));
    const count = new Float64Array(order.length);
    const entry = rows.map((row) => slot.get(clusterOf[row])!);
    for (const e of entry) count[e]++;
    const sums = perRun.map((run) => {
      const out = new Float64Array(order.length * k);
      cells.forEach(([m, ci], j) => {
        const values = run[m].cells[ci].b;
        entry.forEach((e, i) => out[e * k + j] += values[i]);
      });
      return out;
    });
    return { cluster: Int32Array.from(order), count, sums, cells: k };
  });
  return {
    groups,
    metricCells,
    runs: perRun.length,
    means: perRun.map(() => groups.map((g) => new Float64Array(g.cells))),
  };
}

/** Every run's value of every metric under cluster weights `w`, into `out` ([run × metric]). */
function evaluate(p: Packed, w: Float64Array, out: Float64Array): void {
  const nm = p.metricCells.length;
  p.groups.forEach((g, gi) => {
    const k = g.cells;
    let wn = 0;
    for (let x = 0; x < p.runs; x++) p.means[x][gi].fill(0);
    for (let e = 0; e < g.cluster.length; e++) {
      const wt = w[g.cluster[e]];
      if (wt === 0) continue;
      wn += wt * g.count[e];
      for (let x = 0; x < p.runs; x++) {
        const mx = p.means[x][gi], sx = g.sums[x];
        for (let j = 0, o = e * k; j < k; j++, o++) mx[j] += wt * sx[o];
      }
    }
    for (let x = 0; x < p.runs; x++) {
      const mx = p.means[x][gi];
      for (let j = 0; j < k; j++) mx[j] = wn > 0 ? mx[j] / wn : NaN;
    }
  });
  for (let x = 0; x < p.runs; x++) {
    p.metricCells.forEach((cells, m) => {
      let sum = 0, n = 0;
      for (const [g, j] of cells) {
        const v = p.means[x][g][j];
        if (Number.isNaN(v)) continue;
        sum += v;
        n++;
      }
      out[x * nm + m] = n === 0 ? NaN : sum / n;
    });
  }
}

/**
 * The q-quantile of sorted values with linear interpolation between order statistics (numpy's
 * default `percentile` method).
 *
 * @example
 * ```ts
 * import { quantileSorted } from "./compare.ts";
 * console.log(quantileSorted([1, 2, 3, 4], 0.5)); // 2.5
 * ```
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * Compares two eval JSONs (parsed) over their common queries; see the module doc. A side may be
 * an array of runs (the same configuration trained with several seeds): its value is then the mean
 * over its runs, and the bootstrap resamples the runs too.
 *
 * @example
 * ```ts ignore
 * const a = JSON.parse(await Deno.readTextFile("run-xx/eval.json"));
 * const b = JSON.parse(await Deno.readTextFile("run-hybrid/eval.json"));
 * const c = compareRuns(a, b, { resamples: 10000, seed: 0 });
 * console.log(c.metrics[0].diff, c.metrics[0].ci, c.metrics[0].p);
 * ```
 */
export function compareRuns(
  a: unknown,
  b: unknown,
  opts: CompareOptions = {},
): Comparison {
  const names = opts.names ?? { a: "A", b: "B" };
  const resamples = opts.resamples ?? 10000;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(`compareRuns: resamples must be a positive integer, got ${resamples}`);
  }
  const sideA = Array.isArray(a) ? a : [a], sideB = Array.isArray(b) ? b : [b];
  if (sideA.length === 0 || sideB.length === 0) {
    throw new RangeError("compareRuns: each side needs at least one run");
  }
  const runNames = (side: string, n: number) =>
    Array.from({ length: n }, (_, i) => (n === 1 ? side : `${side}[${i + 1}]`));
  const runs = [...sideA, ...sideB] as unknown[];
  const what = opts.runNames
    ? [...opts.runNames.a, ...opts.runNames.b]
    : [...runNames(names.a, sideA.length), ...runNames(names.b, sideB.length)];
  const kind = kindOf(runs[0], what[0]);
  const ref = runs[0] as Json;
  runs.forEach((x, i) => {
    const k = kindOf(x, what[i]);
    if (k !== kind) throw new TypeError(`${what[0]} is ${kind} but ${what[i]} is ${k}`);
    if ((x as Json).dataset !== ref.dataset) {
      throw new TypeError(
        `${what[0]} evaluates ${ref.dataset} but ${what[i]} evaluates ${(x as Json).dataset}`,
      );
    }
  });
  const ra = rowsOf(ref, kind, what[0]);
  if (ra.keys.length === 0) throw new RangeError(`${what[0]}: no queries`);
  if (new Set(ra.keys).size !== ra.keys.length) {
    throw new RangeError(`${what[0]}: a query appears twice in per_query`);
  }
  const show = (k: string) => k.replace("\u0000", "/");
  const builder = kind === "lareqa"
    ? lareqaMetrics
    : kind === "tatoeba"
    ? tatoebaMetrics
    : beirMetrics;
  // Every run's values on the reference run's rows (queries matched by key).
  const perRun = runs.map((x, i) => {
    const rx = rowsOf(x as Json, kind, what[i]);
    const pos = new Map<string, number>();
    rx.keys.forEach((k, j) => pos.set(k, j));
    if (pos.size !== rx.keys.length) {
      throw new RangeError(`${what[i]}: a query appears twice in per_query`);
    }
    const order = ra.keys.map((k) => {
      const j = pos.get(k);
      if (j === undefined) {
        throw new RangeError(`query ${show(k)} of ${what[0]} is not in ${what[i]}`);
      }
      return j;
    });
    if (rx.keys.length !== ra.keys.length) {
      const known = new Set(ra.keys);
      const extra = rx.keys.find((k) => !known.has(k))!;
      throw new RangeError(`query ${show(extra)} of ${what[i]} is not in ${what[0]}`);
    }
    return builder(ref, x as Json, order, [what[0], what[i]]);
  });
  const defs = perRun[0];

  // Clusters, strata (sorted), and the packed metrics.
  const clusterIds = new Map<string, number>();
  const clusterStratum: string[] = [];
  const clusterOf = Int32Array.from(ra.cluster.map((c, i) => {
    let k = clusterIds.get(c);
    if (k === undefined) {
      clusterIds.set(c, k = clusterIds.size);
      clusterStratum.push(ra.stratum[i]);
    }
    return k;
  }));
  const strata = [...new Set(clusterStratum)].sort().map((s) =>
    clusterStratum.map((t, k) => (t === s ? k : -1)).filter((k) => k >= 0)
  );
  const packed = pack(defs, perRun, clusterOf);
  const nm = defs.length, nA = sideA.length, nB = sideB.length;
  const full = new Float64Array(clusterIds.size).fill(1);
  const values = new Float64Array(runs.length * nm);
  evaluate(packed, full, values);
  perRun.forEach((rd, x) => {
    rd.forEach((d, m) => {
      const want = d.reported?.[1], got = values[x * nm + m];
      if (
        typeof want === "number" && !(Math.abs(want - got) <= 1e-9 * Math.max(1, Math.abs(want)))
      ) {
        throw new RangeError(
          `${what[x]}: its per-query results give ${d.name} ${got}, but the file reports ` +
            `${want} (edited or inconsistent file)`,
        );
      }
    });
  });
  // A side's value: the mean over its runs (weighted by how often each run was drawn).
  const side = (m: number, first: number, n: number, counts: Float64Array | null) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += (counts ? counts[i] : 1) * values[(first + i) * nm + m];
    return s / n;
  };
  const observed = defs.map((_, m) => [side(m, 0, nA, null), side(m, nA, nB, null)]);

  const diffs = defs.map(() => new Float64Array(resamples));
  const rnd = mulberry32(seed);
  const w = new Float64Array(clusterIds.size);
  const cA = new Float64Array(nA), cB = new Float64Array(nB);
  const drawRuns = (c: Float64Array) => {
    c.fill(0);
    if (c.length === 1) c[0] = 1;
    else for (let i = 0; i < c.length; i++) c[Math.floor(rnd() * c.length)]++;
  };
  const progress = opts.onProgress ?? (() => {});
  let shown = performance.now();
  for (let r = 0; r < resamples; r++) {
    w.fill(0);
    for (const s of strata) {
      for (let k = 0; k < s.length; k++) w[s[Math.floor(rnd() * s.length)]]++;
    }
    drawRuns(cA);
    drawRuns(cB);
    evaluate(packed, w, values);
    for (let m = 0; m < nm; m++) diffs[m][r] = side(m, nA, nB, cB) - side(m, 0, nA, cA);
    if (performance.now() - shown > 2000) {
      shown = performance.now();
      progress(`bootstrap: ${r + 1}/${resamples} resamples`);
    }
  }
  const metrics = defs.map((d, m) => {
    const [va, vb] = observed[m];
    const diff = vb - va;
    const ds = diffs[m].filter((x) => !Number.isNaN(x)).sort();
    const ci: [number, number] = [quantileSorted(ds, 0.025), quantileSorted(ds, 0.975)];
    let le = 0, ge = 0;
    for (const x of ds) {
      if (x <= 0) le++;
      if (x >= 0) ge++;
    }
    const k = diff > 0 ? le : diff < 0 ? ge : Math.min(le, ge);
    const p = Math.min(1, 2 * (1 + k) / (ds.length + 1));
    return {
      name: d.name,
      a: va,
      b: vb,
      diff,
      ci,
      p,
      significant: ci[0] > 0 || ci[1] < 0,
      higherIsBetter: d.higherIsBetter,
    };
  });
  const unit = kind === "lareqa"
    ? `the ${clusterIds.size} question ids (all language versions of an id together: ` +
      `translations of one question are not independent)`
    : kind === "beir"
    ? `the ${clusterIds.size} queries`
    : `the ${clusterIds.size} sentence pairs within each language (both directions of a pair ` +
      `together; every replicate keeps each language's size)`;
  const seeds = nA > 1 || nB > 1
    ? ` and, independently for each side, of its runs (${nA} and ${nB} seeds; a side's value is ` +
      `the mean over its drawn runs, so the interval covers seed-to-seed variation too)`
    : "";
  const method = `Paired bootstrap over queries: ${resamples.toLocaleString("en-US")} resamples ` +
    `(seed ${seed}) of ${unit}${seeds}, drawn with replacement; each metric is recomputed on ` +
    `both sides from the same resample of queries, and the difference is ${names.b} − ` +
    `${names.a}. Interval: 95% percentile interval of the resampled differences (linear ` +
    `interpolation). p: two-sided, min(1, 2·(1 + k)/(R + 1)) with k the resamples on the far ` +
    `side of 0 and R the resamples. A difference is marked significant only when its interval ` +
    `excludes 0.`;
  return {
    kind,
    dataset: String(ref.dataset),
    names,
    runs: { a: nA, b: nB },
    queries: ra.keys.length,
    clusters: clusterIds.size,
    resamples,
    seed,
    confidence: 0.95,
    method,
    metrics,
  };
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : "–");
const signed = (
  x: number,
) => (Number.isFinite(x) ? `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(4)}` : "–");
const pv = (p: number) => (p < 0.001 ? p.toExponential(1) : p.toFixed(3));

/**
 * The comparison as Markdown or HTML: one row per metric (A, B, B − A, 95% interval, p, and
 * "yes" in the significance column only when the interval excludes 0), then the method.
 *
 * @example
 * ```ts ignore
 * await Deno.writeTextFile("compare.md", renderComparisonReport(compareRuns(a, b), "md"));
 * ```
 */
export function renderComparisonReport(c: Comparison, format: "md" | "html"): string {
  if (format !== "md" && format !== "html") {
    throw new TypeError(`renderComparisonReport: format must be "md" or "html", got ${format}`);
  }
  const head = [
    "metric",
    c.names.a,
    c.names.b,
    `${c.names.b} − ${c.names.a}`,
    "95% CI",
    "p",
    "significant",
  ];
  const rows = c.metrics.map((m) => [
    m.name,
    f4(m.a),
    f4(m.b),
    signed(m.diff),
    `[${signed(m.ci[0])}, ${signed(m.ci[1])}]`,
    pv(m.p),
    m.significant
      ? ((m.diff > 0) === m.higherIsBetter
        ? `yes (${c.names.b} better)`
        : `yes (${c.names.a} better)`)
      : "no",
  ]);
  const title = `Paired comparison on ${c.dataset}: ${c.names.b} vs ${c.names.a}`;
  const seeds = c.runs && (c.runs.a > 1 || c.runs.b > 1)
    ? ` ${c.names.a}: mean of ${c.runs.a} runs; ${c.names.b}: mean of ${c.runs.b} runs.`
    : "";
  const summary = `${c.queries} queries in ${c.clusters} resampling units.${seeds}`;
  if (format === "md") {
    const line = (cells: string[]) => `| ${cells.map(mdCell).join(" | ")} |`;
    return [
      `# ${mdCell(title)}`,
      "",
      summary,
      "",
      line(head),
      `| --- | ---: | ---: | ---: | --- | ---: | --- |`,
      ...rows.map(line),
      "",
      `**Method.** ${c.method}`,
      "",
    ].join("\n");
  }
  const tr = (cells: string[], tag = "td") =>
    `<tr>${cells.map((x) => `<${tag}>${esc(x)}</${tag}>`).join("")}</tr>`;
  return [
    "<!doctype html>",
    `<html><head><meta charset="utf-8"><title>${esc(title)}</title><style>`,
    "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}",
    "td,th{border:1px solid #ccc;padding:2px 8px}tr.sig td{background:#e8f1fb}",
    "</style></head><body>",
    `<h1>${esc(title)}</h1>`,
    `<p>${esc(summary)}</p>`,
    "<table>",
    tr(head, "th"),
    ...rows.map((r, i) =>
      c.metrics[i].significant ? tr(r).replace("<tr>", '<tr class="sig">') : tr(r)
    ),
    "</table>",
    `<p><b>Method.</b> ${esc(c.method)}</p>`,
    "</body></html>",
    "",
  ].join("\n");
}
