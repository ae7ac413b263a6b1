import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { heatmapSvg, renderComparison, renderReport, writeReportDir } from "../../eval/report.ts";
import type { LareqaReport } from "../../eval/retrieval.ts";

function fakeReport(shift: number): LareqaReport {
  const langs = ["en", "de", "zh"];
  const pairs: Record<string, Record<string, number | null>> = {};
  langs.forEach((q, i) => {
    pairs[q] = {};
    langs.forEach((c, j) => pairs[q][c] = i === j ? 0.8 + shift : 0.5 + shift + 0.01 * j);
  });
  pairs.zh.en = null;
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
    multilingual_by_language: { en: 0.41 + shift, de: 0.4 + shift, zh: 0.39 + shift },
    language_bias: { mean: 20 - 10 * shift, by_language: { en: 19 - 10 * shift, de: 20, zh: 21 } },
    recall: {
      monolingual: { "r@1": 0.7, "r@10": 0.95 },
      crosslingual: { "r@1": 0.4 + shift, "r@10": 0.8 },
      multilingual: { "r@1": 0.2, "r@10": 0.5 + shift },
    },
    counts: {
      questions: { en: 40, de: 40, zh: 40 },
      candidates: { en: 13, de: 13, zh: 14 },
      queries: 120,
      candidates_total: 40,
      relevant_pairs: 360,
      pair_queries: {},
    },
    timing: { embed_ms: 1200, score_ms: 35 },
  };
}

Deno.test("a report shows the settings, the heatmap and the bias table in both formats", () => {
  const r = fakeReport(0);
  const md = renderReport(r, "md");
  ok(md.includes("| monolingual | 0.800 | 0.700 | 0.950 |"), md);
  ok(md.includes("| multilingual (micro, LAReQA) | 0.400 |"), md);
  ok(md.includes("| zh | – | 0.510 | 0.800 |"), "empty pair shown as a dash");
  ok(md.includes("| en | 40 | 13 | 0.800 | 0.410 | 19.0 |"), md);
  ok(md.includes("<svg"), "inline heatmap");
  const html = renderReport(r, "html");
  ok(html.includes("xquad-r &lt;test&gt;"), "text is escaped in HTML");
  ok(!html.includes("<test>"));
  ok(html.includes("<svg") && html.includes("</html>"));
  throws(() => renderReport(r, "pdf" as "md"), TypeError);
});

Deno.test("the heatmap has one cell per language pair with its value", () => {
  const svg = heatmapSvg(fakeReport(0));
  equal(svg.match(/<rect /g)?.length, 9);
  ok(svg.includes("<title>en → de: 0.510</title>"));
  ok(svg.includes("<title>zh → en: –</title>"));
});

Deno.test("a comparison marks differences against the first run and the best per row", () => {
  const runs = [
    { name: "x-x", report: fakeReport(0) },
    { name: "hybrid", report: fakeReport(0.05) },
    { name: "x-y", report: fakeReport(0.02) },
  ];
  const md = renderComparison(runs, "md");
  ok(md.includes("| mAP monolingual | 0.800 | **0.850** ★ (+0.050 ▲) | 0.820 (+0.020 ▲) |"), md);
  // Lower rank distance is better: hybrid has the lowest.
  ok(
    md.includes("| language bias (rank distance) | 20.0 | **19.5** ★ (−0.5 ▲) | 19.8 (−0.2 ▲) |"),
    md,
  );
  // Equal values: no arrow, every run best.
  ok(
    md.includes("| R@1 monolingual | **0.700** ★ | **0.700** ★ (+0.000) | **0.700** ★ (+0.000) |"),
    md,
  );
  const html = renderComparison(runs, "html");
  ok(html.includes('class="num best">0.850 ★ <span class="better">(+0.050)</span>'), html);
  equal(html.match(/<svg/g)?.length, 3, "one heatmap per run");
});

Deno.test("writeReportDir writes the reports and one heatmap per run atomically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_" });
  const paths = await writeReportDir(`${dir}/out`, [
    { name: "run a/1", report: fakeReport(0) },
    { name: "run a/1", report: fakeReport(0.01) },
  ]);
  deepEqual(paths.map((p) => p.slice(dir.length + 1)), [
    "out/heatmap_run_a_1.svg",
    "out/heatmap_run_a_1_2.svg",
    "out/report.md",
    "out/report.html",
  ]);
  const names = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name).sort();
  deepEqual(names, ["heatmap_run_a_1.svg", "heatmap_run_a_1_2.svg", "report.html", "report.md"]);
  ok(Deno.readTextFileSync(`${dir}/out/report.md`).startsWith("# Retrieval comparison"));
  const single = await writeReportDir(`${dir}/one`, [{ name: "only", report: fakeReport(0) }]);
  ok(Deno.readTextFileSync(single[1]).startsWith("# Retrieval evaluation"));
});

Deno.test("report titles name the model or runs and the dataset", async () => {
  const dir = await Deno.makeTempDir({ prefix: "report_title_" });
  const r = fakeReport(0);
  const single = await writeReportDir(`${dir}/one`, [{
    name: "FacebookAI/xlm-roberta-base",
    report: r,
  }]);
  const md = Deno.readTextFileSync(single.find((p) => p.endsWith(".md"))!);
  equal(md.split("\n")[0], `# Retrieval evaluation: FacebookAI/xlm-roberta-base on ${r.dataset}`);
  const html = Deno.readTextFileSync(single.find((p) => p.endsWith(".html"))!);
  const escaped = r.dataset.replace(/</g, "&lt;").replace(/>/g, "&gt;");
  ok(html.includes(`<h1>Retrieval evaluation: FacebookAI/xlm-roberta-base on ${escaped}</h1>`));
  const cmp = renderComparison([{ name: "X-X", report: r }, { name: "hybrid", report: r }], "md");
  equal(cmp.split("\n")[0], `# Retrieval comparison: X-X, hybrid on ${r.dataset}`);
  // Without a name (library callers): the dataset alone, as before.
  equal(renderReport(r, "md").split("\n")[0], `# Retrieval evaluation: ${r.dataset}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("comparison reports show each run's training curves when given", () => {
  const r = fakeReport(0);
  const svg = '<svg xmlns="http://www.w3.org/2000/svg"><polyline points="0,0 1,1"/></svg>';
  const runs = [{ name: "untrained", report: r }, { name: "X-Y", report: r, curves: svg }];
  const md = renderComparison(runs, "md");
  ok(md.includes(`### X-Y: training curves\n\n${svg}`));
  ok(!md.includes("untrained: training curves"));
  const html = renderComparison(runs, "html");
  ok(html.includes(`<figcaption>X-Y: training curves</figcaption>\n${svg}`));
});
