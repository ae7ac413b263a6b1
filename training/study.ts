/**
 * A study: the seeds' three questions answered by one reproducible run over a training set and a
 * language grouping.
 *
 * 1. Does composing batches by language similarity (`lang-sim`) beat a fixed α?
 * 2. How does the X-X : X-Y ratio play out per language group (low/high resource, seen/unseen)?
 * 3. Does joint training hurt another domain (Tatoeba bitext retrieval)?
 *
 * It trains `xx`, `xy`, `hybrid` at each α and `lang-sim`, each once per seed, through
 * {@linkcode runSweep} (resumable: a finished run is not trained again), evaluates every run (and
 * the untrained model) on each LAReQA set and on Tatoeba, and writes `study.md`, `study.html` and
 * `study.json` (atomically) with the numbers (mean ± std over seeds), paired-bootstrap intervals
 * (`eval/compare.ts`, over queries and seeds) and SVG plots.
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { evaluateLareqa, type LareqaReport } from "../eval/retrieval.ts";
import { type LareqaSet, loadLareqa } from "../eval/lareqa.ts";
import { evaluateTatoeba, loadTatoeba, type TatoebaReport } from "../eval/tatoeba.ts";
import { compareRuns, type Comparison, type PairedMetric } from "../eval/compare.ts";
import { fixed } from "../util/format.ts";
import type { TrainOptions } from "./train.ts";
import { groupMeans, meanStd, runSweep, type SweepVariant } from "./sweep.ts";

/** Settings of {@linkcode runStudy}. */
export interface StudyOptions {
  /** Training settings shared by every run; `out` is the study folder (runs under `runs/`). */
  base: TrainOptions;
  /** LAReQA folders every run is evaluated on (the first one selects the best α). */
  evalDirs: string[];
  /** A Tatoeba folder (the domain-shift check); none: question 3 is left unanswered. */
  tatoebaDir?: string;
  /** Language groups of the LAReQA languages, e.g. `{"low": ["hi", "th"], "high": [...]}`. */
  groups: Record<string, string[]>;
  alphas: number[];
  seeds: number[];
  limitQuestions?: number;
  /** Tatoeba pairs per language (default all). */
  limitPairs?: number;
  /** Bootstrap replicates (default 2,000). */
  resamples?: number;
  /** Caveats printed in the report's setup section (e.g. the CLI's warnings). */
  notes?: string[];
  log?: (line: string) => void;
}

/** One trained run and its evaluations. */
interface StudyRun {
  variant: SweepVariant;
  seed: number;
  dir: string;
  skipped: boolean;
  lareqa: LareqaReport[];
  tatoeba?: TatoebaReport;
}

/** What {@linkcode runStudy} returns. */
export interface StudyResult {
  reportPaths: string[];
  /** Runs finished before this study started (not trained again). */
  skipped: number;
  trained: number;
  /** The whole study.json. */
  json: Record<string, unknown>;
  /** Set when the stop signal ended the study inside a run's training. */
  stopped?: { variant: SweepVariant; step: number; checkpoint: string };
}

/** The variants of a study: xx, xy, hybrid at each α, lang-sim (α of the base options). */
export function studyVariants(alphas: number[], alpha = 0.5): SweepVariant[] {
  return [
    { name: "xx", sampler: "xx", alpha },
    { name: "xy", sampler: "xy", alpha },
    ...alphas.map((a) => ({ name: `hybrid α=${a}`, sampler: "hybrid" as const, alpha: a })),
    { name: "lang-sim", sampler: "lang-sim", alpha },
  ];
}

/** The folder `runSweep` trains a variant's seed in. */
function runDir(out: string, v: SweepVariant, seed: number): string {
  return join(out, v.name.replace(/[^A-Za-z0-9.=-]+/g, "_"), `seed-${seed}`);
}

/** A LAReQA report reduced to the queries of some languages (for per-group comparisons). */
export function restrictQueries(report: LareqaReport, langs: string[]): Record<string, unknown> {
  const pq = report.per_query;
  if (!pq) throw new TypeError("restrictQueries: the report has no per_query columns");
  const keep = new Set(langs);
  const rows = pq.lang.map((l, i) => (keep.has(l) ? i : -1)).filter((i) => i >= 0);
  const pick = <T>(c: T[]) => rows.map((i) => c[i]);
  return {
    dataset: report.dataset,
    per_query: {
      lang: pick(pq.lang),
      id: pick(pq.id),
      ap: pick(pq.ap),
      first_rank: pick(pq.first_rank),
      ap_by_language: Object.fromEntries(
        Object.entries(pq.ap_by_language).map(([l, c]) => [l, pick(c)]),
      ),
    },
  };
}

/** Mean ± std of numbers over seeds. */
interface Stat {
  mean: number;
  std: number;
  n: number;
}

function stat(xs: number[]): Stat {
  const finite = xs.filter((x) => Number.isFinite(x));
  const { mean, std } = finite.length ? meanStd(finite) : { mean: NaN, std: NaN };
  return { mean, std, n: finite.length };
}

const pm = (s: Stat, d = 3) => `${fixed(s.mean, d)} ± ${fixed(s.std, d)}`;

/**
 * A line chart as SVG: x in [0, 1] (α), one line per series with ±std whiskers, and horizontal
 * dashed reference lines (xx, xy, lang-sim, the untrained model).
 */
export function lineChartSvg(
  title: string,
  yLabel: string,
  series: { name: string; points: { x: number; y: number; err?: number }[] }[],
  refs: { name: string; y: number }[] = [],
): string {
  const W = 560, H = 320, L = 60, R = 150, T = 30, B = 45;
  const ys = [
    ...series.flatMap((s) => s.points.flatMap((p) => [p.y - (p.err || 0), p.y + (p.err || 0)])),
    ...refs.map((r) => r.y),
  ].filter((v) => Number.isFinite(v));
  let lo = ys.length ? Math.min(...ys) : 0, hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.05, hi + 0.05];
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const px = (x: number) => L + x * (W - L - R);
  const py = (y: number) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"];
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif" font-size="11"><title>${esc(title)}</title>`,
    `<text x="${L}" y="18" font-size="13" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const x = k / 4, y = lo + (k / 4) * (hi - lo);
    parts.push(
      `<text x="${px(x)}" y="${H - B + 15}" text-anchor="middle">${x}</text>`,
      `<text x="${L - 5}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(3)}</text>`,
      `<line x1="${L}" y1="${py(y)}" x2="${W - R}" y2="${py(y)}" stroke="#eee"/>`,
    );
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${
      H - 8
    }" text-anchor="middle">α (share of X-X batches)</text>`,
    `<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" ` +
      `text-anchor="middle">${esc(yLabel)}</text>`,
  );
  let legend = T;
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const pts = s.points.filter((p) => Number.isFinite(p.y));
    if (pts.length) {
      parts.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${
          pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")
        }"/>`,
      );
    }
    for (const p of pts) {
      parts.push(
        `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${c}"/>`,
      );
      if (p.err && Number.isFinite(p.err)) {
        parts.push(
          `<line x1="${px(p.x).toFixed(1)}" x2="${px(p.x).toFixed(1)}" y1="${
            py(p.y - p.err).toFixed(1)
          }" y2="${py(p.y + p.err).toFixed(1)}" stroke="${c}"/>`,
        );
      }
    }
    parts.push(
      `<rect x="${W - R + 10}" y="${legend}" width="10" height="10" fill="${c}"/>`,
      `<text x="${W - R + 25}" y="${legend + 9}">${esc(s.name)}</text>`,
    );
    legend += 16;
  });
  refs.forEach((r, i) => {
    if (!Number.isFinite(r.y)) return;
    const c = ["#555", "#999", "#b8860b", "#000"][i % 4];
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(r.y).toFixed(1)}" y2="${py(r.y).toFixed(1)}" ` +
        `stroke="${c}" stroke-dasharray="5 3"/>`,
      `<line x1="${W - R + 8}" x2="${W - R + 22}" y1="${legend + 5}" y2="${legend + 5}" ` +
        `stroke="${c}" stroke-dasharray="5 3"/>`,
      `<text x="${W - R + 25}" y="${legend + 9}">${esc(r.name)}</text>`,
    );
    legend += 16;
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** One section of the report, rendered to Markdown and HTML alike. */
interface Section {
  title: string;
  blocks: ({ p: string } | { table: string[][] } | { svg: string; file: string })[];
}

function renderMd(title: string, sections: Section[]): string {
  const out = [`# ${title}`, ""];
  for (const s of sections) {
    out.push(`## ${s.title}`, "");
    for (const b of s.blocks) {
      if ("p" in b) out.push(b.p, "");
      else if ("table" in b) {
        const [head, ...rows] = b.table;
        out.push(`| ${head.join(" | ")} |`, `|${head.map(() => " --- |").join("")}`);
        for (const r of rows) out.push(`| ${r.join(" | ")} |`);
        out.push("");
      } else out.push(`![${b.file}](${b.file})`, "");
    }
  }
  return out.join("\n");
}

function renderHtml(title: string, sections: Section[]): string {
  const esc = (s: string) =>
    s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>").replace(/`([^`]+)`/g, "<code>$1</code>");
  const out = [
    `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>`,
    "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:" +
    "collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child," +
    "th:first-child{text-align:left}</style></head><body>",
    `<h1>${esc(title)}</h1>`,
  ];
  for (const s of sections) {
    out.push(`<section><h2>${esc(s.title)}</h2>`);
    for (const b of s.blocks) {
      if ("p" in b) out.push(`<p>${esc(b.p)}</p>`);
      else if ("table" in b) {
        const [head, ...rows] = b.table;
        out.push(
          `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>` +
            rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("") +
            "</table>",
        );
      } else out.push(`<figure>${b.svg}</figure>`);
    }
    out.push("</section>");
  }
  out.push("</body></html>");
  return out.join("\n");
}

function metric(c: Comparison, name: string): PairedMetric {
  const m = c.metrics.find((x) => x.name === name);
  if (!m) throw new Error(`study: the comparison has no metric "${name}"`);
  return m;
}

function diffText(m: PairedMetric): string {
  return `${m.diff >= 0 ? "+" : ""}${m.diff.toFixed(4)} [${m.ci[0].toFixed(4)}, ${
    m.ci[1].toFixed(4)
  }], p = ${m.p.toFixed(4)}${m.significant ? " (significant)" : " (not significant)"}`;
}

/**
 * Trains every variant for every seed (finished runs skipped), evaluates them and writes the
 * report under `opts.base.out` (`study.md`, `study.html`, `study.json`, `plots/*.svg`).
 */
export async function runStudy(gpu: Gpu, opts: StudyOptions): Promise<StudyResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const out = opts.base.out;
  const runsOut = join(out, "runs");
  const resamples = opts.resamples ?? 2000;
  const t0 = performance.now();
  if (!opts.evalDirs.length) throw new RangeError("study: give at least one --eval set");
  if (!opts.alphas.length) throw new RangeError("study: give at least one --alphas value");
  const groupNames = Object.keys(opts.groups);
  if (!groupNames.length) throw new RangeError("study: the language grouping has no group");
  const variants = studyVariants(opts.alphas, opts.base.alpha);
  const sets: LareqaSet[] = [];
  for (const d of opts.evalDirs) {
    sets.push(await loadLareqa(d, { limitQuestions: opts.limitQuestions }));
  }
  for (const [g, langs] of Object.entries(opts.groups)) {
    const known = langs.filter((l) => sets[0].languages.includes(l));
    if (!known.length) {
      throw new Error(
        `study: group "${g}" has none of ${opts.evalDirs[0]}'s languages (${
          sets[0].languages.join(", ")
        })`,
      );
    }
  }
  const tatoebaSet = opts.tatoebaDir
    ? await loadTatoeba(opts.tatoebaDir, { limit: opts.limitPairs })
    : undefined;

  // 1. Training (and the first set's evaluation) through the sweep, resumable.
  const sweep = await runSweep(gpu, {
    base: { ...opts.base, out: runsOut, resume: opts.base.resume ?? "auto", eval: undefined },
    variants,
    evalDir: opts.evalDirs[0],
    limitQuestions: opts.limitQuestions,
    seeds: opts.seeds,
  });
  if (sweep.stopped) {
    return { reportPaths: [], skipped: 0, trained: 0, json: {}, stopped: sweep.stopped };
  }

  // 2. The other evaluations, of every run and of the untrained model.
  const embedWith = (enc: Encoder) => (items: { text: string }[], role?: string) => {
    const prefix = role === "query"
      ? opts.base.queryPrefix ?? ""
      : role === "passage"
      ? opts.base.passagePrefix ?? ""
      : "";
    return enc.embed(items.map((x) => ({ ...x, text: prefix + x.text })), {
      pooling: opts.base.pooling ?? "cls",
      maxLength: opts.base.maxLength ?? 128,
    });
  };
  const evaluateDir = async (dir: string, first?: LareqaReport) => {
    const enc = await Encoder.load(gpu, dir, opts.base.tokenizer);
    try {
      const embed = embedWith(enc);
      const lareqa: LareqaReport[] = [];
      for (let i = 0; i < sets.length; i++) {
        lareqa.push(
          i === 0 && first ? first : await evaluateLareqa(gpu, sets[i], embed as never),
        );
      }
      const tatoeba = tatoebaSet
        ? await evaluateTatoeba(gpu, tatoebaSet, (items) => embed(items))
        : undefined;
      return { lareqa, tatoeba };
    } finally {
      enc.release();
    }
  };
  log("\n== evaluating the untrained model and every run");
  const baseline = await evaluateDir(opts.base.model);
  const runs: StudyRun[] = [];
  for (const r of sweep.runs) {
    const seed = r.seed!;
    const dir = runDir(runsOut, r.variant, seed);
    const ev = await evaluateDir(dir, r.report);
    runs.push({ variant: r.variant, seed, dir, skipped: r.skipped ?? false, ...ev });
  }
  const of = (v: SweepVariant) => runs.filter((r) => r.variant === v);
  const [xx, xy] = variants;
  const hybrids = variants.filter((v) => v.sampler === "hybrid");
  const langSim = variants.at(-1)!;

  // Numbers per variant, set and group.
  const langsOf = (g: string, set: LareqaSet) =>
    opts.groups[g].filter((l) => set.languages.includes(l));
  const groupMap = (rep: LareqaReport, g: string, set: LareqaSet) =>
    groupMeans(rep.multilingual_by_language, { [g]: langsOf(g, set) })[g];
  const groupMono = (rep: LareqaReport, g: string, set: LareqaSet) =>
    groupMeans(
      Object.fromEntries(Object.keys(rep.pairs).map((l) => [l, rep.pairs[l][l]])),
      { [g]: langsOf(g, set) },
    )[g];
  const numbers = (v: SweepVariant, si: number) => {
    const rs = of(v).map((r) => r.lareqa[si]);
    return {
      multi: stat(rs.map((r) => r.map.multilingual ?? NaN)),
      mono: stat(rs.map((r) => r.map.monolingual ?? NaN)),
      cross: stat(rs.map((r) => r.map.crosslingual ?? NaN)),
      bias: stat(rs.map((r) => r.language_bias.mean ?? NaN)),
      groups: Object.fromEntries(groupNames.map((g) => [g, {
        multi: stat(rs.map((r) => groupMap(r, g, sets[si]))),
        mono: stat(rs.map((r) => groupMono(r, g, sets[si]))),
      }])),
    };
  };
  const tatoebaNumbers = (v: SweepVariant) => stat(of(v).map((r) => r.tatoeba?.average ?? NaN));

  // Choices: the best α overall and per group (first set, mean multilingual mAP over seeds).
  const best = (vs: SweepVariant[], score: (v: SweepVariant) => number) =>
    vs.reduce((a, b) => (score(b) > score(a) ? b : a));
  const bestHybrid = best(hybrids, (v) => numbers(v, 0).multi.mean);
  const cmp = (a: unknown[], b: unknown[], names: { a: string; b: string }) =>
    compareRuns(a, b, { resamples, seed: 0, names });
  const lareqaJson = (v: SweepVariant, si: number, g?: string) =>
    of(v).map((r) =>
      g ? restrictQueries(r.lareqa[si], langsOf(g, sets[si])) : r.lareqa[si] as unknown
    );

  const sections: Section[] = [];
  const plots: Record<string, string> = {};
  const setup: Section = {
    title: "Setup",
    blocks: [
      {
        p: `Training data \`${opts.base.train}\` from \`${opts.base.model}\`, ${
          opts.base.steps ?? "default"
        } steps, batch ${opts.base.batchSize ?? "default"}; seeds ${
          opts.seeds.join(", ")
        }; variants ${variants.map((v) => v.name).join(", ")} (${runs.length} runs, ${
          runs.filter((r) => r.skipped).length
        } finished before this study started and not trained again). Evaluated on ${
          sets.map((s) => `\`${s.dir}\` (${s.languages.length} languages)`).join(", ")
        }${
          tatoebaSet
            ? ` and Tatoeba \`${tatoebaSet.dir}\` (${tatoebaSet.languages.length} languages)`
            : ""
        }. Groups: ${groupNames.map((g) => `${g} = ${opts.groups[g].join(", ")}`).join("; ")}.`,
      },
      {
        p: `Intervals: ${resamples} paired bootstrap resamples over question clusters and over ` +
          `seeds (eval/compare.ts), 95% percentile intervals; a difference is called ` +
          `significant only when its interval excludes 0. The best α is chosen on the same ` +
          `evaluation data (mean multilingual mAP over seeds on the first set), so its advantage ` +
          `is an optimistic estimate.`,
      },
      ...(opts.notes ?? []).map((n) => ({ p: `**Note:** ${n}` })),
    ],
  };
  sections.push(setup);

  // Per set: the table of all variants.
  sets.forEach((set, si) => {
    const head = [
      "run",
      "multi mAP",
      "mono mAP",
      "cross mAP",
      "bias ↓",
      ...groupNames.map((g) => `multi ${g}`),
    ];
    const rows = [
      [
        "untrained",
        fixed(baseline.lareqa[si].map.multilingual, 3),
        fixed(baseline.lareqa[si].map.monolingual, 3),
        fixed(baseline.lareqa[si].map.crosslingual, 3),
        fixed(baseline.lareqa[si].language_bias.mean, 1),
        ...groupNames.map((g) => fixed(groupMap(baseline.lareqa[si], g, set), 3)),
      ],
      ...variants.map((v) => {
        const n = numbers(v, si);
        return [
          `${v.name} (${n.multi.n} seeds)`,
          pm(n.multi),
          pm(n.mono),
          pm(n.cross),
          pm(n.bias, 1),
          ...groupNames.map((g) => pm(n.groups[g].multi)),
        ];
      }),
    ];
    sections.push({
      title: `All runs on ${set.dataset} (${set.dir})`,
      blocks: [{ p: "Mean ± sample std over seeds." }, { table: [head, ...rows] }],
    });
  });

  // Question 1: lang-sim vs the best fixed α.
  const q1: Section = {
    title: "Question 1: does language-similarity batching beat a fixed α?",
    blocks: [],
  };
  const q1json: Record<string, unknown>[] = [];
  sets.forEach((set, si) => {
    const rows: string[][] = [[
      "group",
      "lang-sim",
      `best fixed (${bestHybrid.name})`,
      "lang-sim − fixed [95% CI], p",
    ]];
    for (const g of [undefined, ...groupNames]) {
      const c = cmp(lareqaJson(bestHybrid, si, g), lareqaJson(langSim, si, g), {
        a: bestHybrid.name,
        b: "lang-sim",
      });
      const m = metric(c, "mAP multilingual");
      rows.push([g ?? "all", m.b.toFixed(4), m.a.toFixed(4), diffText(m)]);
      q1json.push({
        set: set.dir,
        group: g ?? "all",
        metric: m.name,
        fixed: bestHybrid.name,
        ...m,
      });
    }
    const all = q1json.find((x) =>
      x.set === set.dir && x.group === "all"
    ) as unknown as PairedMetric;
    q1.blocks.push(
      {
        p: `**Answer (${set.dataset}):** lang-sim's multilingual mAP is ${all.b.toFixed(4)} vs ${
          all.a.toFixed(4)
        } for the best fixed α (${bestHybrid.name}): difference ${diffText(all)}. ${
          all.significant
            ? all.diff > 0
              ? "Language-similarity batching beats the best fixed α here."
              : "The best fixed α beats language-similarity batching here."
            : "No significant difference: this study cannot tell them apart."
        }`,
      },
      { table: rows },
    );
  });
  sections.push(q1);

  // Question 2: α per group, hybrid vs the best of xx/xy per group.
  const q2: Section = {
    title: "Question 2: how does the X-X : X-Y ratio play out per language group?",
    blocks: [],
  };
  const q2json: Record<string, unknown>[] = [];
  sets.forEach((set, si) => {
    const rows: string[][] = [[
      "group",
      "best α",
      "hybrid",
      "best of xx/xy",
      "hybrid − best of xx/xy [95% CI], p",
    ]];
    const answers: string[] = [];
    for (const g of groupNames) {
      const score = (v: SweepVariant) => numbers(v, si).groups[g].multi.mean;
      const h = best(hybrids, score), single = best([xx, xy], score);
      const c = cmp(lareqaJson(single, si, g), lareqaJson(h, si, g), { a: single.name, b: h.name });
      const m = metric(c, "mAP multilingual");
      rows.push([g, h.name, m.b.toFixed(4), `${single.name} ${m.a.toFixed(4)}`, diffText(m)]);
      q2json.push({ set: set.dir, group: g, hybrid: h.name, single: single.name, ...m });
      answers.push(
        `${g}: best ${h.name} (${m.b.toFixed(4)}) vs ${single.name} (${m.a.toFixed(4)}), ` +
          `difference ${diffText(m)}: ${
            m.significant
              ? (m.diff > 0 ? "hybrid better" : `${single.name} better`)
              : "no significant difference"
          }`,
      );
    }
    const head = ["α", ...groupNames.flatMap((g) => [`multi ${g}`, `mono ${g}`])];
    const alphaRows = hybrids.map((v) => {
      const n = numbers(v, si);
      return [
        String(v.alpha),
        ...groupNames.flatMap((g) => [pm(n.groups[g].multi), pm(n.groups[g].mono)]),
      ];
    });
    const file = `plots/map_vs_alpha_${si}.svg`;
    plots[file] = lineChartSvg(
      `multilingual mAP vs α per group (${set.dataset})`,
      "multilingual mAP",
      groupNames.map((g) => ({
        name: g,
        points: hybrids.map((v) => {
          const s = numbers(v, si).groups[g].multi;
          return { x: v.alpha, y: s.mean, err: s.std };
        }),
      })),
      [
        { name: "xx (all groups)", y: numbers(xx, si).multi.mean },
        { name: "xy (all groups)", y: numbers(xy, si).multi.mean },
        { name: "lang-sim (all)", y: numbers(langSim, si).multi.mean },
        { name: "untrained (all)", y: baseline.lareqa[si].map.multilingual ?? NaN },
      ],
    );
    const biasFile = `plots/bias_vs_alpha_${si}.svg`;
    plots[biasFile] = lineChartSvg(
      `language bias vs α (${set.dataset}; lower is better)`,
      "mean language bias",
      [{
        name: "hybrid",
        points: hybrids.map((v) => {
          const s = numbers(v, si).bias;
          return { x: v.alpha, y: s.mean, err: s.std };
        }),
      }],
      [
        { name: "xx", y: numbers(xx, si).bias.mean },
        { name: "xy", y: numbers(xy, si).bias.mean },
        { name: "lang-sim", y: numbers(langSim, si).bias.mean },
        { name: "untrained", y: baseline.lareqa[si].language_bias.mean ?? NaN },
      ],
    );
    q2.blocks.push(
      { p: `**Answer (${set.dataset}):** ${answers.join("; ")}.` },
      { table: rows },
      { table: [head, ...alphaRows] },
      { svg: plots[file], file },
      {
        p: `Language bias (mean rank distance between a question's answers in different ` +
          `languages; lower is better) by α: ${
            hybrids.map((v) => `α=${v.alpha} ${pm(numbers(v, si).bias, 1)}`).join(", ")
          }; xx ${pm(numbers(xx, si).bias, 1)}, xy ${pm(numbers(xy, si).bias, 1)}.`,
      },
      { svg: plots[biasFile], file: biasFile },
    );
  });
  sections.push(q2);

  // Question 3: Tatoeba.
  const q3: Section = {
    title: "Question 3: does joint training hurt another domain (Tatoeba)?",
    blocks: [],
  };
  let q3json: Record<string, unknown> | null = null;
  if (!tatoebaSet) {
    q3.blocks.push({ p: "**Answer:** not measured: the study was run without `--tatoeba`." });
  } else {
    const base = baseline.tatoeba!;
    const tat = (v: SweepVariant) => of(v).map((r) => r.tatoeba as unknown);
    const bestT = best(hybrids, (v) => tatoebaNumbers(v).mean);
    const single = best([xx, xy], (v) => tatoebaNumbers(v).mean);
    const vsBase = metric(
      cmp([base], tat(bestHybrid), { a: "untrained", b: bestHybrid.name }),
      "accuracy@1 average",
    );
    const vsSingle = metric(
      cmp(tat(single), tat(bestHybrid), { a: single.name, b: bestHybrid.name }),
      "accuracy@1 average",
    );
    const rows = [
      ["run", "Tatoeba accuracy@1 (mean of directions)"],
      ["untrained", base.average.toFixed(4)],
      ...variants.map((v) => [v.name, pm(tatoebaNumbers(v), 4)]),
    ];
    const file = "plots/tatoeba_vs_alpha.svg";
    plots[file] = lineChartSvg(
      "Tatoeba accuracy@1 vs α",
      "accuracy@1 (average)",
      [{
        name: "hybrid",
        points: hybrids.map((v) => {
          const s = tatoebaNumbers(v);
          return { x: v.alpha, y: s.mean, err: s.std };
        }),
      }],
      [
        { name: "xx", y: tatoebaNumbers(xx).mean },
        { name: "xy", y: tatoebaNumbers(xy).mean },
        { name: "lang-sim", y: tatoebaNumbers(langSim).mean },
        { name: "untrained", y: base.average },
      ],
    );
    q3.blocks.push(
      {
        p: `**Answer:** Tatoeba accuracy@1 of ${bestHybrid.name} (the best α on ${
          sets[0].dataset
        }) ` +
          `vs the untrained model: ${diffText(vsBase)} — ${
            vsBase.significant
              ? vsBase.diff < 0
                ? "joint training hurt this domain"
                : "joint training helped this domain"
              : "no significant change"
          }. Against ${single.name} (the better single-mode run on Tatoeba): ${
            diffText(vsSingle)
          }. ` +
          `The best α on Tatoeba itself is ${bestT.name} (${pm(tatoebaNumbers(bestT), 4)}).`,
      },
      { table: rows },
      { svg: plots[file], file },
    );
    q3json = {
      dataset: tatoebaSet.dir,
      untrained: base.average,
      by_variant: Object.fromEntries(variants.map((v) => [v.name, tatoebaNumbers(v)])),
      hybrid_vs_untrained: vsBase,
      hybrid_vs_single: { single: single.name, ...vsSingle },
      best_alpha_on_tatoeba: bestT.name,
    };
  }
  sections.push(q3);

  const seconds = (performance.now() - t0) / 1000;
  const json = {
    study: {
      seeds: opts.seeds,
      alphas: opts.alphas,
      variants: variants.map((v) => v.name),
      groups: opts.groups,
      eval: opts.evalDirs,
      tatoeba: opts.tatoebaDir ?? null,
      resamples,
      best_alpha: bestHybrid.name,
      seconds,
    },
    runs: runs.map((r) => ({
      variant: r.variant.name,
      sampler: r.variant.sampler,
      alpha: r.variant.alpha,
      seed: r.seed,
      dir: r.dir,
      skipped: r.skipped,
      lareqa: r.lareqa.map((x) => ({
        dataset: x.dataset,
        map: x.map,
        language_bias: x.language_bias.mean,
        multilingual_by_language: x.multilingual_by_language,
      })),
      tatoeba: r.tatoeba ? { average: r.tatoeba.average, accuracy: r.tatoeba.accuracy } : null,
    })),
    baseline: {
      lareqa: baseline.lareqa.map((x) => ({
        dataset: x.dataset,
        map: x.map,
        language_bias: x.language_bias.mean,
      })),
      tatoeba: baseline.tatoeba ? baseline.tatoeba.average : null,
    },
    questions: {
      lang_sim_vs_fixed_alpha: q1json,
      alpha_by_group: q2json,
      tatoeba: q3json,
    },
    plots: Object.keys(plots),
  };
  const title = "Study: X-X, X-Y, hybrid α and language-similarity batches";
  const paths: string[] = [];
  for (const [file, svg] of Object.entries(plots)) {
    await Deno.mkdir(join(out, "plots"), { recursive: true });
    await writeFileAtomic(join(out, file), svg + "\n");
  }
  await writeFileAtomic(join(out, "study.md"), renderMd(title, sections));
  await writeFileAtomic(join(out, "study.html"), renderHtml(title, sections));
  await writeJsonAtomic(join(out, "study.json"), json);
  paths.push(join(out, "study.md"), join(out, "study.html"), join(out, "study.json"));
  return {
    reportPaths: paths,
    skipped: runs.filter((r) => r.skipped).length,
    trained: runs.filter((r) => !r.skipped).length,
    json,
  };
}
