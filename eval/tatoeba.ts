/**
 * Tatoeba bitext retrieval, as XTREME evaluates it: for each language xxx the folder holds
 * `tatoeba.xxx-eng.xxx` and `tatoeba.xxx-eng.eng`, line i of one the translation of line i of the
 * other. Every sentence of one side is a query against all sentences of the other side, scored by
 * cosine similarity; it is correct when the best-scoring sentence is its own translation (the same
 * line index). On equal scores the lower index wins, as numpy's `argmax` in XTREME's scorer: the
 * GPU ranking (`kernels/retrieval_rank.ts`) breaks ties by candidate order, so a query is correct
 * exactly when its translation has rank 1. Reported per language: accuracy@1 `to_eng` (xxx
 * queries, English candidates), `from_eng` (the reverse), their mean; and the macro averages over
 * languages. Both sides are embedded the same way (no query/passage prompt: bitext is symmetric).
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import { rankRelevant } from "../kernels/retrieval_rank.ts";
import { readTextStrict } from "../util/text_file.ts";
import { type EmbedFn, embedNormalised } from "./retrieval.ts";

/** One language pair: the sentences of both sides, line by line. */
export interface TatoebaLanguage {
  lang: string;
  /** `tatoeba.xxx-eng.xxx`, `tatoeba.xxx-eng.eng`. */
  files: [string, string];
  src: string[];
  eng: string[];
}

/** A loaded Tatoeba folder (languages sorted). */
export interface TatoebaSet {
  dataset: "tatoeba";
  dir: string;
  languages: string[];
  byLanguage: Record<string, TatoebaLanguage>;
}

/** Options of {@linkcode loadTatoeba}. */
export interface TatoebaOptions {
  /** Languages to keep (ISO 639-3 codes as in the file names); default all. */
  langs?: string[];
  /** Keep the first N pairs of each language. */
  limit?: number;
  /** Candidates per GPU block when ranking (results do not depend on it). */
  blockSize?: number;
  onProgress?: (msg: string) => void;
}

/** Accuracy@1 of one language (fractions in [0, 1]). */
export interface TatoebaAccuracy {
  to_eng: number;
  from_eng: number;
  mean: number;
}

/** The Tatoeba evaluation result. */
export interface TatoebaReport {
  dataset: "tatoeba";
  languages: string[];
  accuracy: Record<string, TatoebaAccuracy>;
  /** Macro average over languages of each language's mean accuracy. */
  average: number;
  /** Macro averages per direction. */
  average_by_direction: { to_eng: number; from_eng: number };
  counts: { pairs: Record<string, number>; total: number };
  /**
   * One row per sentence pair: its language, line index (0-based) and the rank of its translation
   * in each direction (1 = correct), so runs can be compared pair by pair (`cli.ts compare`).
   */
  per_query: { lang: string[]; index: number[]; to_eng_rank: number[]; from_eng_rank: number[] };
  timing: { embed_ms: number; score_ms: number };
}

const FILE = /^tatoeba\.([A-Za-z0-9_]+)-eng\.([A-Za-z0-9_]+)$/;

async function listDir(dir: string): Promise<string[]> {
  try {
    // Symlinked files count (a Hugging Face cache snapshot is all symlinks).
    return (await Array.fromAsync(Deno.readDir(dir))).filter((e) => e.isFile || e.isSymlink)
      .map((e) => e.name);
  } catch (e) {
    throw new Error(`loadTatoeba: cannot read ${dir}: ${(e as Error).message}`);
  }
}

/**
 * Whether `dir` is a folder with Tatoeba files (`tatoeba.xxx-eng.xxx`).
 *
 * @example
 * ```ts
 * import { isTatoebaDir } from "./tatoeba.ts";
 * console.log(await isTatoebaDir(await Deno.makeTempDir())); // false
 * ```
 */
export async function isTatoebaDir(dir: string): Promise<boolean> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) return false;
    return (await listDir(dir)).some((n) => {
      const m = FILE.exec(n);
      return m !== null && m[1] === m[2];
    });
  } catch {
    return false;
  }
}

/** The lines of a file (one trailing newline dropped; `\r\n` accepted); errors name file:line. */
async function readLines(path: string): Promise<string[]> {
  const text = await readTextStrict(path);
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l, i) => {
    const s = l.endsWith("\r") ? l.slice(0, -1) : l;
    if (s.trim() === "") throw new RangeError(`${path}:${i + 1}: empty line`);
    return s;
  });
}

/**
 * Loads the `tatoeba.xxx-eng.{xxx,eng}` pairs of `dir`. Errors name the file and line: invalid
 * UTF-8, an empty line, two files of different lengths (the first line without a partner), a
 * language without its English side, a requested language that is missing.
 *
 * @example
 * ```ts
 * import { loadTatoeba } from "./tatoeba.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/tatoeba.deu-eng.deu`, "Hallo.\nDanke.\n");
 * await Deno.writeTextFile(`${dir}/tatoeba.deu-eng.eng`, "Hello.\nThanks.\n");
 * const set = await loadTatoeba(dir);
 * console.log(set.languages, set.byLanguage.deu.eng[1]); // ["deu"] "Thanks."
 * ```
 */
export async function loadTatoeba(dir: string, opts: TatoebaOptions = {}): Promise<TatoebaSet> {
  const names = await listDir(dir);
  const base = dir.replace(/[\\/]+$/, "");
  const available = names.map((n) => FILE.exec(n)).filter((m) => m !== null && m[1] === m[2])
    .map((m) => m![1]).sort();
  if (available.length === 0) {
    throw new RangeError(`loadTatoeba: ${dir}: no tatoeba.xxx-eng.xxx files`);
  }
  const langs = opts.langs ?? available;
  for (const l of langs) {
    if (!available.includes(l)) {
      throw new RangeError(
        `loadTatoeba: ${base}/tatoeba.${l}-eng.${l} does not exist (languages in ${dir}: ` +
          `${available.join(", ")})`,
      );
    }
  }
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) {
    throw new RangeError(`loadTatoeba: limit must be a positive integer, got ${opts.limit}`);
  }
  const byLanguage: Record<string, TatoebaLanguage> = {};
  for (const l of [...langs].sort()) {
    const files: [string, string] = [
      `${base}/tatoeba.${l}-eng.${l}`,
      `${base}/tatoeba.${l}-eng.eng`,
    ];
    if (!names.includes(`tatoeba.${l}-eng.eng`)) {
      throw new RangeError(`loadTatoeba: ${files[1]} is missing (the English side of ${files[0]})`);
    }
    let [src, eng] = await Promise.all(files.map(readLines));
    if (src.length !== eng.length) {
      const [longer, shorter] = src.length > eng.length ? [0, 1] : [1, 0];
      const n = Math.min(src.length, eng.length);
      throw new RangeError(
        `loadTatoeba: ${files[longer]}:${n + 1}: no translation in ${files[shorter]} ` +
          `(${src.length} lines vs ${eng.length})`,
      );
    }
    if (opts.limit !== undefined) [src, eng] = [src.slice(0, opts.limit), eng.slice(0, opts.limit)];
    byLanguage[l] = { lang: l, files, src, eng };
    opts.onProgress?.(`loaded ${files[0]}: ${src.length} pairs`);
  }
  return { dataset: "tatoeba", dir, languages: [...langs].sort(), byLanguage };
}

/**
 * Evaluates a loaded Tatoeba set (see the module doc).
 *
 * @example
 * ```ts ignore
 * const set = await loadTatoeba("path/to/tatoeba", { langs: ["deu", "cmn"] });
 * const report = await evaluateTatoeba(gpu, set, embed);
 * console.log(report.accuracy.deu.mean, report.average);
 * ```
 */
export async function evaluateTatoeba(
  gpu: Gpu,
  set: TatoebaSet,
  embed: EmbedFn,
  opts: TatoebaOptions = {},
): Promise<TatoebaReport> {
  const progress = opts.onProgress ?? (() => {});
  const accuracy: Record<string, TatoebaAccuracy> = {};
  const pairs: Record<string, number> = {};
  const per = {
    lang: [] as string[],
    index: [] as number[],
    to_eng_rank: [] as number[],
    from_eng_rank: [] as number[],
  };
  let embedMs = 0, scoreMs = 0;
  for (const l of set.languages) {
    const { src, eng } = set.byLanguage[l];
    const n = src.length;
    progress(`embedding ${l}: ${n} pairs`);
    const t0 = performance.now();
    const a = await embedNormalised(embed, src.map((text) => ({ text })), `${l} sentences`);
    const b = await embedNormalised(embed, eng.map((text) => ({ text })), `${l}-eng English`);
    if (a.dim !== b.dim) {
      throw new RangeError(`evaluateTatoeba: ${l}: widths ${a.dim} and ${b.dim} differ`);
    }
    const t1 = performance.now();
    const diag = new Uint32Array(n).map((_, i) => i);
    const blockSize = opts.blockSize === undefined ? undefined : Math.min(opts.blockSize, n);
    const to = await rankRelevant(gpu, a.data, b.data, a.dim, { query: diag, candidate: diag }, {
      blockSize,
    });
    const from = await rankRelevant(gpu, b.data, a.data, a.dim, { query: diag, candidate: diag }, {
      blockSize,
    });
    const t2 = performance.now();
    embedMs += t1 - t0;
    scoreMs += t2 - t1;
    let hitTo = 0, hitFrom = 0;
    for (let i = 0; i < n; i++) {
      if (to.rank[i] === 1) hitTo++;
      if (from.rank[i] === 1) hitFrom++;
      per.lang.push(l);
      per.index.push(i);
      per.to_eng_rank.push(to.rank[i]);
      per.from_eng_rank.push(from.rank[i]);
    }
    const acc = { to_eng: hitTo / n, from_eng: hitFrom / n, mean: 0 };
    acc.mean = (acc.to_eng + acc.from_eng) / 2;
    accuracy[l] = acc;
    pairs[l] = n;
    progress(
      `${l}: accuracy@1 to eng ${acc.to_eng.toFixed(4)}, from eng ${acc.from_eng.toFixed(4)}`,
    );
  }
  const avg = (k: keyof TatoebaAccuracy) =>
    set.languages.reduce((s, l) => s + accuracy[l][k], 0) / set.languages.length;
  return {
    dataset: "tatoeba",
    languages: [...set.languages],
    accuracy,
    average: avg("mean"),
    average_by_direction: { to_eng: avg("to_eng"), from_eng: avg("from_eng") },
    counts: { pairs, total: per.lang.length },
    per_query: per,
    timing: { embed_ms: embedMs, score_ms: scoreMs },
  };
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
const pct = (x: number) => (100 * x).toFixed(1);

/** Horizontal bars of each language's mean accuracy@1 (inline SVG). */
export function tatoebaBarsSvg(report: TatoebaReport, title = "Tatoeba accuracy@1 (mean)"): string {
  const row = 18, left = 56, width = 300, top = 28;
  const h = top + report.languages.length * row + 10;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 60}" height="${h}" ` +
    `font-family="sans-serif" font-size="11" role="img">`,
    `<title>${esc(title)}</title>`,
    `<text x="4" y="16" font-size="12">${esc(title)}</text>`,
  ];
  report.languages.forEach((l, i) => {
    const a = report.accuracy[l], y = top + i * row;
    parts.push(
      `<text x="${left - 6}" y="${y + 12}" text-anchor="end">${esc(l)}</text>`,
      `<rect x="${left}" y="${y + 2}" width="${(width * a.mean).toFixed(1)}" height="${
        row - 5
      }" fill="rgb(33,102,172)"><title>${esc(l)}: to eng ${pct(a.to_eng)}%, from eng ${
        pct(a.from_eng)
      }%</title></rect>`,
      `<text x="${left + width * a.mean + 4}" y="${y + 12}">${pct(a.mean)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/**
 * The report of a Tatoeba evaluation as Markdown or HTML: the averages, a table per language
 * (pairs, accuracy@1 in both directions, mean) and, in HTML, a bar chart.
 *
 * @example
 * ```ts ignore
 * const md = renderTatoebaReport(report, "md");
 * ```
 */
export function renderTatoebaReport(
  report: TatoebaReport,
  format: "md" | "html",
  name = "",
): string {
  if (format !== "md" && format !== "html") {
    throw new TypeError(`renderTatoebaReport: format must be "md" or "html", got ${format}`);
  }
  const rows = report.languages.map((l) => {
    const a = report.accuracy[l];
    return [l, String(report.counts.pairs[l]), pct(a.to_eng), pct(a.from_eng), pct(a.mean)];
  });
  const avg = [
    "average",
    String(report.counts.total),
    pct(report.average_by_direction.to_eng),
    pct(report.average_by_direction.from_eng),
    pct(report.average),
  ];
  const head = ["language", "pairs", "xxx→eng acc@1 %", "eng→xxx acc@1 %", "mean %"];
  const what = "accuracy@1 of finding each sentence's translation among all sentences of the " +
    "other side (cosine similarity; ties go to the lower line index, as numpy's argmax)";
  if (format === "md") {
    const line = (cells: string[]) => `| ${cells.map(mdCell).join(" | ")} |`;
    return [
      `# Tatoeba bitext retrieval${name ? `: ${mdCell(name)}` : ""}`,
      "",
      `${report.languages.length} languages, ${report.counts.total} sentence pairs; ${what}.`,
      "",
      `**Average over languages: ${pct(report.average)}%** (xxx→eng ${
        pct(report.average_by_direction.to_eng)
      }%, eng→xxx ${pct(report.average_by_direction.from_eng)}%).`,
      "",
      line(head),
      `| --- | ---: | ---: | ---: | ---: |`,
      ...rows.map(line),
      line(avg.map((c, i) => i === 0 ? `**${c}**` : c)),
      "",
      `Embedding ${(report.timing.embed_ms / 1000).toFixed(1)} s, scoring ${
        (report.timing.score_ms / 1000).toFixed(2)
      } s.`,
      "",
    ].join("\n");
  }
  const tr = (cells: string[], tag = "td") =>
    `<tr>${
      cells.map((c, i) => `<${tag}${i > 0 ? ' class="n"' : ""}>${esc(c)}</${tag}>`).join("")
    }</tr>`;
  return [
    "<!doctype html>",
    '<html><head><meta charset="utf-8"><title>Tatoeba</title><style>',
    "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}",
    "td,th{border:1px solid #ccc;padding:2px 8px}.n{text-align:right}tr.avg td{font-weight:bold}",
    "</style></head><body>",
    `<h1>Tatoeba bitext retrieval${name ? `: ${esc(name)}` : ""}</h1>`,
    `<p>${report.languages.length} languages, ${report.counts.total} sentence pairs; ${
      esc(what)
    }.</p>`,
    `<p><b>Average over languages: ${pct(report.average)}%</b> (xxx→eng ${
      pct(report.average_by_direction.to_eng)
    }%, eng→xxx ${pct(report.average_by_direction.from_eng)}%).</p>`,
    "<table>",
    tr(head, "th"),
    ...rows.map((r) => tr(r)),
    tr(avg).replace("<tr>", '<tr class="avg">'),
    "</table>",
    tatoebaBarsSvg(report),
    "</body></html>",
    "",
  ].join("\n");
}
