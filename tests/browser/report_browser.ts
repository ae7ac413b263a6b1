/**
 * The HTML reports, opened in a real headless Chromium (`deno task test:browser`; not part of the
 * default suite, which needs only Deno and a WebGPU adapter). Each test writes real reports with
 * the product's own writers (no GPU: the reports are rendered from report objects), opens them as
 * file:// URLs over the DevTools protocol and checks that the page renders: the expected title and
 * headings, at least as many inline SVG charts as the report has, every SVG laid out with a
 * non-zero box, no markup shown as text, no broken images, and no console error, uncaught
 * exception or error log entry. One screenshot is decoded and checked for painted charts.
 *
 * Without Chromium the tests fail and say how to install it (`apt-get install -y chromium`).
 */
import { ok } from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { writeReportDir } from "../../eval/report.ts";
import type { LareqaReport } from "../../eval/retrieval.ts";
import { renderTatoebaReport, type TatoebaReport } from "../../eval/tatoeba.ts";
import { addProvenanceToReports } from "../../cli/provenance.ts";
import { writeCurves } from "../../training/curves.ts";
import { Chromium, decodePng, type Page } from "./_chromium.ts";

/** A LAReQA report as `eval` produces it (numbers made up, one pair left empty). */
function fakeReport(shift: number, langs = ["en", "de", "zh"]): LareqaReport {
  const pairs: Record<string, Record<string, number | null>> = {};
  langs.forEach((q, i) => {
    pairs[q] = {};
    langs.forEach((c, j) => pairs[q][c] = i === j ? 0.8 + shift : 0.3 + shift + 0.03 * j);
  });
  pairs[langs[langs.length - 1]][langs[0]] = null;
  const by = (v: (i: number) => number) => Object.fromEntries(langs.map((l, i) => [l, v(i)]));
  return {
    dataset: "xquad-r <test>",
    languages: langs,
    map: {
      monolingual: 0.8 + shift,
      crosslingual: 0.51 + shift,
      multilingual: 0.4 + shift,
      multilingual_micro: 0.4 + shift,
    },
    pairs,
    multilingual_by_language: by((i) => 0.41 + shift - 0.01 * i),
    language_bias: { mean: 20 - 10 * shift, by_language: by((i) => 19 + i - 10 * shift) },
    recall: {
      monolingual: { "r@1": 0.7, "r@10": 0.95 },
      crosslingual: { "r@1": 0.4 + shift, "r@10": 0.8 },
      multilingual: { "r@1": 0.2, "r@10": 0.5 + shift },
    },
    counts: {
      questions: by(() => 40),
      candidates: by((i) => 13 + i),
      queries: 40 * langs.length,
      candidates_total: langs.length * 14,
      relevant_pairs: 360,
      pair_queries: {},
    },
    timing: { embed_ms: 1200, score_ms: 35 },
  };
}

/** A run folder's metrics.jsonl (and eval.jsonl when `evals`), then its training_curves.svg. */
async function runFolder(dir: string, title: string, evals: boolean): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const metrics = Array.from({ length: 40 }, (_, i) => ({
    step: i + 1,
    loss: 3 * Math.exp(-i / 12) + 0.05 * Math.sin(i),
    lr: 3e-5 * Math.min(1, (i + 1) / 8) * (1 - i / 40),
    grad_norm: 2 / (1 + i / 10),
    accuracy: Math.min(1, 0.1 + i / 35),
    kind: "train",
  }));
  await Deno.writeTextFile(
    join(dir, "metrics.jsonl"),
    metrics.map((m) => JSON.stringify(m)).join("\n") + "\n",
  );
  if (evals) {
    const lines = [10, 20, 30, 40].map((step, k) =>
      JSON.stringify({
        step,
        map: {
          monolingual: 0.6 + 0.08 * k,
          crosslingual: 0.2 + 0.05 * k,
          multilingual: 0.3 + 0.04 * k,
        },
      })
    );
    await Deno.writeTextFile(join(dir, "eval.jsonl"), lines.join("\n") + "\n");
  }
  return await writeCurves(dir, title);
}

interface PageFacts {
  title: string;
  h1: string[];
  h2: string[];
  html: boolean;
  compatMode: string;
  charset: string;
  parserError: string | null;
  svgs: { w: number; h: number; title: string; shapes: number; clipped: string[] }[];
  brokenImages: string[];
  markupAsText: string | null;
}

/** What the page shows, measured in the browser. */
const FACTS = `(() => {
  const svgs = [...document.querySelectorAll("svg")];
  const text = document.body ? document.body.innerText : "";
  return {
    title: document.title,
    h1: [...document.querySelectorAll("h1")].map((h) => h.textContent.trim()),
    h2: [...document.querySelectorAll("h2")].map((h) => h.textContent.trim()),
    html: document instanceof HTMLDocument,
    compatMode: document.compatMode,
    charset: document.characterSet,
    parserError: document.querySelector("parsererror")?.textContent ?? null,
    svgs: svgs.map((s) => {
      const r = s.getBoundingClientRect();
      return {
        w: r.width,
        h: r.height,
        title: s.querySelector("title")?.textContent ?? "",
        shapes: s.querySelectorAll("rect, polyline, circle, path, line").length,
        // Text the svg's box cuts off (the outer svg clips its content).
        clipped: [...s.querySelectorAll("text")].flatMap((t) => {
          const b = t.getBoundingClientRect();
          const over = Math.max(r.left - b.left, b.right - r.right, r.top - b.top, b.bottom - r.bottom);
          return over > 1 ? [t.textContent + " (" + Math.ceil(over) + " px)"] : [];
        }),
      };
    }),
    brokenImages: [...document.images].filter((i) => !i.complete || i.naturalWidth === 0)
      .map((i) => i.currentSrc || i.src),
    markupAsText: (text.match(/<\\/?(svg|rect|text|polyline|title|g|tr|td|table)\\b[^>]*>?/) ?? [null])[0],
  };
})()`;

interface Expect {
  /** The document title, exactly. */
  title: string;
  /** The first h1, exactly (HTML pages). */
  h1?: string;
  /** h2 headings that must be there. */
  h2?: string[];
  /** At least this many svg elements. */
  svgs: number;
  /** Substrings of svg titles that must be there (one svg each). */
  svgTitles?: string[];
}

/** Opens `file`, checks it against `want`, and returns the facts; fails naming `label`. */
async function checkPage(
  page: Page,
  label: string,
  file: string,
  want: Expect,
): Promise<PageFacts> {
  await page.goto(pathToFileURL(file).href);
  const f = await page.evaluate<PageFacts>(FACTS);
  const bad: string[] = [];
  for (const p of page.problems) bad.push(`${p.kind}: ${p.text}`);
  if (f.title !== want.title) {
    bad.push(`title is ${JSON.stringify(f.title)}, expected ${JSON.stringify(want.title)}`);
  }
  if (want.h1 !== undefined && f.h1[0] !== want.h1) {
    bad.push(`h1 is ${JSON.stringify(f.h1[0])}, expected ${JSON.stringify(want.h1)}`);
  }
  for (const h of want.h2 ?? []) {
    if (!f.h2.includes(h)) bad.push(`no h2 "${h}" (has ${JSON.stringify(f.h2)})`);
  }
  if (f.html && f.compatMode !== "CSS1Compat") {
    bad.push(`quirks mode (${f.compatMode}): no doctype?`);
  }
  if (f.charset !== "UTF-8") bad.push(`character set ${f.charset}, expected UTF-8`);
  if (f.parserError) bad.push(`XML parse error: ${f.parserError.slice(0, 300)}`);
  if (f.svgs.length < want.svgs) {
    bad.push(`${f.svgs.length} svg elements, expected at least ${want.svgs}`);
  }
  f.svgs.forEach((s, i) => {
    if (!(s.w > 0 && s.h > 0)) {
      bad.push(`svg #${i} ("${s.title}") is not rendered: box ${s.w}×${s.h}`);
    }
    if (s.shapes === 0) bad.push(`svg #${i} ("${s.title}") draws no shapes`);
    for (const t of s.clipped) bad.push(`svg #${i} ("${s.title}") cuts off its text "${t}"`);
  });
  for (const t of want.svgTitles ?? []) {
    if (!f.svgs.some((s) => s.title.includes(t))) bad.push(`no svg titled "…${t}…"`);
  }
  for (const src of f.brokenImages) bad.push(`broken image ${src}`);
  if (f.markupAsText) bad.push(`markup shown as text: ${f.markupAsText}`);
  if (page.warnings.length) {
    console.log(`${label}: browser warnings:\n  ${page.warnings.join("\n  ")}`);
  }
  if (bad.length) throw new Error(`${label} (${file}) in Chromium:\n  ${bad.join("\n  ")}`);
  return f;
}

const TITLE_NAME = 'FacebookAI/xlm-roberta-base <b>&"x" 多语言';

Deno.test("browser: one run's eval report (with provenance) and its heatmap file render without errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_browser_eval_" });
  try {
    const report = fakeReport(0, ["ar", "de", "en", "hi", "tr", "zh"]);
    const paths = await writeReportDir(join(dir, "report"), [{ name: TITLE_NAME, report }]);
    // What `eval --report` adds after writing (cli/eval.ts).
    await addProvenanceToReports(paths, {
      command: "eval --dataset xquad-r <test>",
      engine: "0.1.0",
    });
    await using browser = await Chromium.launch();
    const page = await browser.newPage();
    const title = `${TITLE_NAME} on ${report.dataset}`;
    const f = await checkPage(page, "eval report.html", join(dir, "report/report.html"), {
      title: `Retrieval evaluation: ${title}`,
      h1: `Retrieval evaluation: ${title}`,
      h2: [
        "mAP by query language × candidate language",
        "By language (multilingual pool)",
        "Provenance",
      ],
      svgs: 1,
      svgTitles: ["mAP by query × candidate language"],
    });
    ok(f.svgs[0].shapes >= 36, `heatmap has ${f.svgs[0].shapes} shapes, expected 6×6 cells`);
    const heatmap = paths.find((p) => p.endsWith(".svg"))!;
    await checkPage(page, "heatmap svg file", heatmap, {
      title: `${TITLE_NAME}: mAP by query × candidate language`,
      svgs: 1,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: a run folder's training_curves.svg renders without errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_browser_curves_" });
  try {
    const svg = await runFolder(join(dir, "run"), "hybrid run from tiny <xlm-r>", true);
    await using browser = await Chromium.launch();
    const page = await browser.newPage();
    await checkPage(page, "training_curves.svg", svg, {
      title: "hybrid run from tiny <xlm-r>: training curves",
      svgs: 1,
    });
    // Loss, accuracy, learning rate, gradient norm and three eval mAP lines.
    const lines = await page.evaluate<number>(`document.querySelectorAll("polyline").length`);
    ok(lines >= 7, `${lines} curves drawn, expected at least 7`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: the demo's comparison report (heatmaps and training curves) renders and paints", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_browser_cmp_" });
  try {
    const runs: { name: string; report: LareqaReport; curves?: string }[] = [
      { name: "untrained", report: fakeReport(-0.2) },
    ];
    for (
      const [name, shift, evals] of [["X-X", 0, false], ["X-Y", 0.05, false], [
        "hybrid α=0.5",
        0.1,
        true,
      ]] as const
    ) {
      const svg = await runFolder(join(dir, name), `${name} run`, evals);
      runs.push({ name, report: fakeReport(shift), curves: await Deno.readTextFile(svg) });
    }
    // As demo/run.ts writes it.
    await writeReportDir(join(dir, "report"), runs);
    await using browser = await Chromium.launch();
    const page = await browser.newPage();
    const title = "Retrieval comparison: untrained, X-X, X-Y, hybrid α=0.5 on xquad-r <test>";
    await checkPage(page, "comparison report.html", join(dir, "report/report.html"), {
      title,
      h1: title,
      svgs: 4 + 3,
      svgTitles: [
        "X-X run: training curves",
        "X-Y run: training curves",
        "hybrid α=0.5 run: training curves",
      ],
    });
    const shot = await page.screenshot();
    // REPORT_BROWSER_SCREENSHOT=FILE keeps the screenshot for a look by eye.
    const keep = Deno.env.get("REPORT_BROWSER_SCREENSHOT");
    if (keep) await Deno.writeFile(keep, shot);
    const png = await decodePng(shot);
    ok(png.width >= 1000 && png.height >= 900, `screenshot is ${png.width}×${png.height}`);
    const colours = new Set<number>();
    let blue = 0, dark = 0;
    for (let i = 0; i < png.width * png.height; i++) {
      const [r, g, b] = png.rgba.subarray(i * 4, i * 4 + 3);
      colours.add((r << 16) | (g << 8) | b);
      if (b > r + 60 && b > 100) blue++; // heatmap cells and the blue curves
      if (r + g + b < 200) dark++; // text
    }
    ok(colours.size >= 32, `screenshot has ${colours.size} colours: blank or unstyled?`);
    ok(blue >= 4 * 9 * 500, `only ${blue} blue pixels: the heatmaps are not painted`);
    ok(dark >= 2000, `only ${dark} dark pixels: no text painted?`);
    console.log(
      `screenshot ${png.width}×${png.height}, ${colours.size} colours, ${blue} blue pixels, ${dark} dark pixels`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: the Tatoeba report renders without errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_browser_tatoeba_" });
  try {
    const langs = ["ara", "cmn", "deu", "rus"];
    const acc = (i: number) => ({
      to_eng: 0.9 - 0.1 * i,
      from_eng: 0.85 - 0.1 * i,
      mean: 0.875 - 0.1 * i,
    });
    const report: TatoebaReport = {
      dataset: "tatoeba",
      languages: langs,
      accuracy: Object.fromEntries(langs.map((l, i) => [l, acc(i)])),
      average: 0.725,
      average_by_direction: { to_eng: 0.75, from_eng: 0.7 },
      counts: { pairs: Object.fromEntries(langs.map((l) => [l, 200])), total: 800 },
      per_query: { lang: [], index: [], to_eng_rank: [], from_eng_rank: [] },
      timing: { embed_ms: 900, score_ms: 12 },
    };
    const file = join(dir, "report.html");
    await Deno.writeTextFile(file, renderTatoebaReport(report, "html", TITLE_NAME));
    await using browser = await Chromium.launch();
    const page = await browser.newPage();
    const f = await checkPage(page, "Tatoeba report.html", file, {
      title: "Tatoeba",
      h1: `Tatoeba bitext retrieval: ${TITLE_NAME}`,
      svgs: 1,
      svgTitles: ["Tatoeba accuracy@1 (mean)"],
    });
    ok(f.svgs[0].shapes >= langs.length, "one bar per language");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: the checker fails on a missing page, a console error, an exception, a broken image and cut-off text", async () => {
  // The checker itself: a file that does not exist must fail the navigation or the title check.
  await using browser = await Chromium.launch();
  const page = await browser.newPage();
  let failed = false;
  try {
    await checkPage(page, "missing", "/nonexistent/report.html", { title: "x", svgs: 1 });
  } catch {
    failed = true;
  }
  ok(failed, "a missing report passed the browser check");
  // And a console error in a page fails it, naming the message.
  const dir = await Deno.makeTempDir({ prefix: "report_browser_err_" });
  try {
    const file = join(dir, "bad.html");
    await Deno.writeTextFile(
      file,
      `<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body><svg width="10" height="10"><rect width="5" height="5"/><text x="2" y="9">cut off</text></svg><img src="missing.png" alt="x"><script>console.error("boom"); undefinedFn();</script></body></html>`,
    );
    const msg = await checkPage(page, "bad page", file, { title: "t", svgs: 1 }).then(
      () => "",
      (e) => (e as Error).message,
    );
    ok(msg.includes("console.error: boom"), msg);
    ok(msg.includes("undefinedFn is not defined"), msg);
    ok(msg.includes("broken image") && msg.includes("missing.png"), msg);
    ok(msg.includes("ERR_FILE_NOT_FOUND"), msg);
    ok(msg.includes('cuts off its text "cut off'), msg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
