/**
 * Reports of LAReQA evaluations as Markdown or HTML (templates in `templates/`, bundled into
 * `_templates.gen.ts` by `deno task assets` and rendered with `@huggingface/jinja`): a settings
 * table, the language × language mAP heatmap as inline SVG, the per-language multilingual mAP and
 * language bias; and side-by-side comparisons of several runs with the differences to the first
 * run and the best value per row marked.
 *
 * Numbers are formatted here (three decimals for mAP and recall, one for rank distances) and text
 * is escaped here, so the templates only lay things out.
 * @module
 */
import { Template } from "@huggingface/jinja";
import type { LareqaReport } from "./retrieval.ts";
import { TEMPLATES } from "./_templates.gen.ts";

type Format = "md" | "html";
const templates = new Map<string, Template>();

function template(name: string): Template {
  let t = templates.get(name);
  if (!t) {
    const text = Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name] : undefined;
    if (text === undefined) {
      throw new Error(
        `report template ${name}: unknown template (eval/templates/ has ` +
          `${Object.keys(TEMPLATES).join(", ")}; after adding one run \`deno task assets\`)`,
      );
    }
    t = new Template(text);
    templates.set(name, t);
  }
  return t;
}

function checkFormat(op: string, format: string): asserts format is Format {
  if (format !== "md" && format !== "html") {
    throw new TypeError(`${op}: format must be "md" or "html", got ${JSON.stringify(format)}`);
  }
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** Markdown table cells must not contain pipes or newlines. */
const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
const f3 = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(3));
const f1 = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(1));

/** Blue scale for a value in [0, 1]: white at 0, dark blue at 1. */
function color(v: number): string {
  const t = Math.max(0, Math.min(1, v));
  const mix = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${mix(247, 8)},${mix(251, 48)},${mix(255, 107)})`;
}

/**
 * The language × language mAP heatmap of a report as a standalone SVG (rows: query language,
 * columns: candidate language; empty pairs grey).
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./report.ts";
 * import type { LareqaReport } from "./retrieval.ts";
 * const report = { languages: ["en", "de"], pairs: { en: { en: 0.9, de: 0.5 },
 *   de: { en: 0.4, de: 0.8 } } } as unknown as LareqaReport;
 * console.log(heatmapSvg(report).startsWith("<svg")); // true
 * ```
 */
export function heatmapSvg(
  report: LareqaReport,
  title = "mAP by query × candidate language",
): string {
  const langs = report.languages;
  const cell = 46, left = 44, top = 52, n = langs.length;
  // Wide enough for the title too (7 px a character, measured about 6 in Chromium at 12 px; 12 for
  // wide scripts): the svg clips what runs past its width, which cut the title off with few
  // languages (tests/browser/report_browser.ts).
  const titleW = [...title].reduce((a, ch) => a + (ch.codePointAt(0)! >= 0x2e80 ? 12 : 7), 0);
  const w = left + Math.max(n * cell, titleW) + 10, h = top + n * cell + 10;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" ` +
    `viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11" role="img">`,
    `<title>${esc(title)}</title>`,
    `<text x="${left}" y="14" font-size="12">${esc(title)}</text>`,
    `<text x="4" y="${top - 6}" fill="#555">Q \\ C</text>`,
  ];
  langs.forEach((l, j) => {
    parts.push(
      `<text x="${left + j * cell + cell / 2}" y="${top - 6}" text-anchor="middle">${
        esc(l)
      }</text>`,
    );
  });
  langs.forEach((ql, i) => {
    const y = top + i * cell;
    parts.push(`<text x="${left - 6}" y="${y + cell / 2 + 4}" text-anchor="end">${esc(ql)}</text>`);
    langs.forEach((cl, j) => {
      const v = report.pairs[ql]?.[cl] ?? null;
      const x = left + j * cell;
      const fill = v === null ? "#ddd" : color(v);
      const ink = v !== null && v > 0.55 ? "#fff" : "#000";
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell - 2}" height="${cell - 2}" fill="${fill}">` +
          `<title>${esc(ql)} → ${esc(cl)}: ${f3(v)}</title></rect>`,
        `<text x="${x + cell / 2 - 1}" y="${y + cell / 2 + 3}" text-anchor="middle" ` +
          `fill="${ink}">${v === null ? "–" : v.toFixed(3).replace(/^0/, "")}</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}

function settingsRows(r: LareqaReport) {
  return [
    {
      name: "monolingual",
      map: f3(r.map.monolingual),
      r1: f3(r.recall.monolingual["r@1"]),
      r10: f3(r.recall.monolingual["r@10"]),
    },
    {
      name: "cross-lingual",
      map: f3(r.map.crosslingual),
      r1: f3(r.recall.crosslingual["r@1"]),
      r10: f3(r.recall.crosslingual["r@10"]),
    },
    {
      name: "multilingual",
      map: f3(r.map.multilingual),
      r1: f3(r.recall.multilingual["r@1"]),
      r10: f3(r.recall.multilingual["r@10"]),
    },
    { name: "multilingual (micro, LAReQA)", map: f3(r.map.multilingual_micro), r1: "", r10: "" },
  ];
}

function languageRows(r: LareqaReport) {
  return r.languages.map((l) => ({
    lang: l,
    questions: String(r.counts.questions[l] ?? "–"),
    candidates: String(r.counts.candidates[l] ?? "–"),
    mono: f3(r.pairs[l]?.[l]),
    multi: f3(r.multilingual_by_language[l]),
    bias: f1(r.language_bias.by_language[l]),
  }));
}

function pairRows(r: LareqaReport) {
  return r.languages.map((ql) => ({
    lang: ql,
    cells: r.languages.map((cl) => f3(r.pairs[ql]?.[cl])),
  }));
}

function reportContext(r: LareqaReport, format: Format) {
  const text = format === "html" ? esc : mdCell;
  return {
    dataset: text(r.dataset),
    languages: r.languages.map(text),
    settings: settingsRows(r),
    by_language: languageRows(r).map((row) => ({ ...row, lang: text(row.lang) })),
    pairs: pairRows(r).map((row) => ({ ...row, lang: text(row.lang) })),
    bias_mean: f1(r.language_bias.mean),
    queries: String(r.counts.queries ?? ""),
    candidates_total: String(r.counts.candidates_total ?? ""),
    embed_s: (r.timing?.embed_ms / 1000).toFixed(1),
    score_s: (r.timing?.score_ms / 1000).toFixed(2),
    heatmap: heatmapSvg(r),
  };
}

/**
 * One run's report: settings table (mAP, recall@1, recall@10), the mAP heatmap (inline SVG), the
 * pair table, and per language the multilingual mAP and language bias.
 *
 * @example
 * ```ts
 * import { renderReport } from "./report.ts";
 * import type { LareqaReport } from "./retrieval.ts";
 * const toMarkdown = (report: LareqaReport): string => renderReport(report, "md");
 * ```
 */
export function renderReport(report: LareqaReport, format: Format, name?: string): string {
  checkFormat("renderReport", format);
  const text = format === "html" ? esc : mdCell;
  // The title names the model (or run) and the dataset when the caller gives the name.
  const title = text(name ? `${name} on ${report.dataset}` : report.dataset);
  return template(`report.${format}.jinja`).render({ ...reportContext(report, format), title });
}

/** One comparable row: label, values per run, and which direction is better. */
interface MetricRow {
  label: string;
  values: (number | null)[];
  higherIsBetter: boolean;
  digits: number;
}

function comparisonRows(runs: { report: LareqaReport }[]): MetricRow[] {
  const rows: MetricRow[] = [];
  const add = (
    label: string,
    get: (r: LareqaReport) => number | null | undefined,
    hi = true,
    digits = 3,
  ) =>
    rows.push({
      label,
      values: runs.map(({ report }) => get(report) ?? null),
      higherIsBetter: hi,
      digits,
    });
  add("mAP monolingual", (r) => r.map.monolingual);
  add("mAP cross-lingual", (r) => r.map.crosslingual);
  add("mAP multilingual", (r) => r.map.multilingual);
  add("mAP multilingual (micro)", (r) => r.map.multilingual_micro);
  add("R@1 monolingual", (r) => r.recall.monolingual["r@1"]);
  add("R@1 cross-lingual", (r) => r.recall.crosslingual["r@1"]);
  add("R@10 multilingual", (r) => r.recall.multilingual["r@10"]);
  add("language bias (rank distance)", (r) => r.language_bias.mean, false, 1);
  const langs: string[] = [];
  for (const { report } of runs) {
    for (const l of report.languages) if (!langs.includes(l)) langs.push(l);
  }
  for (const l of langs) add(`mAP multilingual, ${l}`, (r) => r.multilingual_by_language[l]);
  for (const l of langs) {
    add(
      `language bias, ${l}`,
      (r) => r.language_bias.by_language[l],
      false,
      1,
    );
  }
  return rows;
}

/**
 * Several runs side by side: each metric row shows every run's value, the difference to the first
 * run, and marks the best run (highest mAP/recall, lowest rank distance).
 *
 * @example
 * ```ts
 * import { renderComparison } from "./report.ts";
 * import type { LareqaReport } from "./retrieval.ts";
 * const compare = (a: LareqaReport, b: LareqaReport): string =>
 *   renderComparison([{ name: "x-x", report: a }, { name: "hybrid", report: b }], "html");
 * ```
 */
export function renderComparison(
  runs: { name: string; report: LareqaReport; curves?: string }[],
  format: Format,
): string {
  checkFormat("renderComparison", format);
  if (runs.length === 0) throw new RangeError("renderComparison: no runs");
  const text = format === "html" ? esc : mdCell;
  const rows = comparisonRows(runs).map((row) => {
    const finite = row.values.filter((v): v is number => v !== null);
    const best = finite.length === 0
      ? null
      : row.higherIsBetter
      ? Math.max(...finite)
      : Math.min(...finite);
    const base = row.values[0];
    const tol = 0.5 * 10 ** -row.digits; // equal at the printed precision counts as equal
    return {
      label: text(row.label),
      cells: row.values.map((v, i) => {
        const diff = i > 0 && v !== null && base !== null ? v - base : null;
        const better = diff === null || Math.abs(diff) < tol
          ? "same"
          : (diff > 0) === row.higherIsBetter
          ? "better"
          : "worse";
        return {
          value: v === null ? "–" : v.toFixed(row.digits),
          diff: diff === null
            ? ""
            : `${diff >= 0 ? "+" : "−"}${Math.abs(diff).toFixed(row.digits)}`,
          cls: i === 0 ? "base" : better,
          best: v !== null && best !== null && Math.abs(v - best) < tol && finite.length > 1,
        };
      }),
    };
  });
  return template(`comparison.${format}.jinja`).render({
    names: runs.map((r) => text(r.name)),
    first: text(runs[0].name),
    datasets: [...new Set(runs.map((r) => r.report.dataset))].map(text),
    rows,
    runs: runs.map((r) => ({
      name: text(r.name),
      ...reportContext(r.report, format),
      // A run's training curves (inline SVG, as made by training/curves.ts), when given.
      curves: r.curves ?? "",
    })),
  });
}

/** A file-name-safe version of a run name. */
function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "") || "run";
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`writeReportDir: cannot write ${path}: ${(e as Error).message}`);
  }
}

/**
 * Writes `report.md`, `report.html` (one run: its report; several: the comparison) and
 * `heatmap_<name>.svg` per run into `dir` (created if needed), each through a temporary file and
 * a rename so readers never see half a file. Returns the paths written.
 *
 * @example
 * ```ts
 * import { writeReportDir } from "./report.ts";
 * import type { LareqaReport } from "./retrieval.ts";
 * const save = (report: LareqaReport): Promise<string[]> =>
 *   writeReportDir("runs/eval", [{ name: "hybrid", report }]);
 * ```
 */
export async function writeReportDir(
  dir: string,
  runs: { name: string; report: LareqaReport; curves?: string }[],
): Promise<string[]> {
  if (runs.length === 0) throw new RangeError("writeReportDir: no runs");
  await Deno.mkdir(dir, { recursive: true });
  const base = dir.replace(/[\\/]+$/, "");
  const paths: string[] = [];
  const used = new Set<string>();
  for (const run of runs) {
    let name = safeName(run.name);
    for (let k = 2; used.has(name); k++) name = `${safeName(run.name)}_${k}`;
    used.add(name);
    const p = `${base}/heatmap_${name}.svg`;
    await writeAtomic(
      p,
      heatmapSvg(run.report, `${run.name}: mAP by query × candidate language`) + "\n",
    );
    paths.push(p);
  }
  for (const format of ["md", "html"] as const) {
    const text = runs.length === 1
      ? renderReport(runs[0].report, format, runs[0].name)
      : renderComparison(runs, format);
    const p = `${base}/report.${format}`;
    await writeAtomic(p, text);
    paths.push(p);
  }
  return paths;
}
