/**
 * `study --quick` with minimal steps: the report files exist (Markdown, HTML, JSON, SVG plots),
 * every question has an answer section with numbers and intervals, and a rerun skips the runs
 * that finished (not trained again, same numbers).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { lineChartSvg, studyVariants } from "../../training/study.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

async function study(out: string) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLI,
      "study",
      "--quick",
      "--out",
      out,
      "--steps",
      "3",
      "--alphas",
      "0.25,0.75",
      "--seeds",
      "1,2",
      "--resamples",
      "200",
      "--quiet",
    ],
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  equal(o.code, 0, text);
  return text;
}

Deno.test("study variants: xx, xy, one hybrid per α, lang-sim; a chart is an SVG", () => {
  deepEqual(studyVariants([0.25, 0.75]).map((v) => v.name), [
    "xx",
    "xy",
    "hybrid α=0.25",
    "hybrid α=0.75",
    "lang-sim",
  ]);
  const svg = lineChartSvg("t", "y", [{ name: "low", points: [{ x: 0, y: 1, err: 0.1 }] }], [
    { name: "xx", y: 0.5 },
  ]);
  match(svg, /^<svg[^]*<circle[^]*stroke-dasharray[^]*<\/svg>$/);
});

Deno.test({
  name:
    "study --quick writes the report answering the three questions; a rerun skips finished runs",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "study_" });
    try {
      const first = await study(out);
      match(first, /study: 10 runs trained, 0 finished before/);
      const md = await Deno.readTextFile(join(out, "study.md"));
      const html = await Deno.readTextFile(join(out, "study.html"));
      const json = JSON.parse(await Deno.readTextFile(join(out, "study.json")));
      const sections = md.split(/^## /m).slice(1);
      for (const q of [1, 2, 3]) {
        const s = sections.find((x) => x.startsWith(`Question ${q}:`));
        ok(s, `a section for question ${q}`);
        // An answer with numbers and a 95% interval.
        match(s!, /\*\*Answer[^*]*:\*\* .*\d\.\d{4}.*\[-?\d\.\d{4}, -?\d\.\d{4}\], p = \d\.\d{4}/);
      }
      for (const p of ["map_vs_alpha_0.svg", "bias_vs_alpha_0.svg", "tatoeba_vs_alpha.svg"]) {
        match(await Deno.readTextFile(join(out, "plots", p)), /^<svg/);
        ok(md.includes(`plots/${p}`), p);
      }
      equal(html.match(/<svg/g)?.length, 3);
      equal(json.runs.length, 10);
      ok(json.runs.every((r: { skipped: boolean }) => !r.skipped));
      equal(json.questions.lang_sim_vs_fixed_alpha.length, 3); // all + two groups
      equal(json.questions.alpha_by_group.length, 2);
      ok(typeof json.questions.tatoeba.hybrid_vs_untrained.ci[0] === "number");
      // Rerun: every run finished, none trained again, the same numbers.
      const second = await study(out);
      match(second, /study: 0 runs trained, 10 finished before \(skipped\)/);
      const again = JSON.parse(await Deno.readTextFile(join(out, "study.json")));
      ok(again.runs.every((r: { skipped: boolean }) => r.skipped));
      deepEqual(again.questions, json.questions);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test({
  name: "study on LAReQA and Tatoeba folders with a --groups file answers per group",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const FIX = fileURLToPath(new URL("../fixtures/", import.meta.url));
    const out = await Deno.makeTempDir({ prefix: "study_real_" });
    try {
      const groups = join(out, "groups.json");
      await Deno.writeTextFile(groups, JSON.stringify({ low: ["hi", "tr"], high: ["en", "de"] }));
      const o = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLI,
          "study",
          "--model",
          join(FIX, "xlmr-tiny/model"),
          "--tokenizer",
          join(FIX, "tokenizer"),
          "--train",
          join(FIX, "xlmr-tiny/pairs.jsonl"),
          "--eval",
          join(FIX, "xquad-r"),
          "--groups",
          groups,
          "--tatoeba",
          join(FIX, "tatoeba"),
          "--alphas",
          "0.5",
          "--seeds",
          "1,2",
          "--steps",
          "2",
          "--batch-size",
          "4",
          "--max-length",
          "16",
          "--limit-questions",
          "8",
          "--limit-pairs",
          "20",
          "--resamples",
          "200",
          "--quiet",
          "--out",
          join(out, "study"),
        ],
        env: { NO_COLOR: "1" },
      }).output();
      const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
      equal(o.code, 0, text);
      match(text, /warning: lang-sim measures its language similarity every 100 steps/);
      const md = await Deno.readTextFile(join(out, "study", "study.md"));
      match(md, /\*\*Note:\*\* lang-sim measures/);
      match(md, /\*\*Answer \(xquad-r\):\*\* low: best hybrid α=0\.5 .*; high: best hybrid α=0\.5/);
      match(md, /Tatoeba accuracy@1 of hybrid α=0\.5 \(the best α on xquad-r\) vs the untrained/);
      const json = JSON.parse(await Deno.readTextFile(join(out, "study", "study.json")));
      deepEqual(json.questions.alpha_by_group.map((g: { group: string }) => g.group), [
        "low",
        "high",
      ]);
      deepEqual(Object.keys(json.questions.tatoeba.by_variant), [
        "xx",
        "xy",
        "hybrid α=0.5",
        "lang-sim",
      ]);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
