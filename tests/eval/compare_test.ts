/**
 * `compare`: identical runs give intervals containing 0 and p = 1, clearly different runs give
 * intervals excluding 0, the bootstrap replays for a seed, its interval equals a brute-force
 * float64 percentile computation over the same resamples, real eval JSONs carry per-query results
 * that reproduce their metrics, and the command's errors name the file, query or flag.
 */
import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compareRuns, quantileSorted } from "../../eval/compare.ts";
import { evaluateBeir, evaluateLareqa } from "../../eval/retrieval.ts";
import { loadBeir } from "../../eval/beir.ts";
import { loadLareqa } from "../../eval/lareqa.ts";
import { mulberry32 } from "../../model/init.ts";
import { freshSeed, gpuTest, rng, seededTest } from "../_helpers.ts";
import { hashEmbed, taggedEmbed, writeSet } from "./_synthetic.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const LANGS = ["aa", "bb", "cc"];

interface LareqaJson {
  dataset: string;
  per_query: {
    lang: string[];
    id: string[];
    ap: number[];
    first_rank: number[];
    ap_by_language: Record<string, (number | null)[]>;
  };
}

/** A hand-made LAReQA eval JSON: ids missing from some languages, random APs. */
function lareqaRun(seed: number, ids = 40): LareqaJson {
  const r = rng(seed);
  const present = Array.from(
    { length: ids },
    (_, i) => LANGS.filter((_, k) => k === 0 || (i * 7 + k) % 5 !== 0),
  );
  const pq: LareqaJson["per_query"] = {
    lang: [],
    id: [],
    ap: [],
    first_rank: [],
    ap_by_language: {},
  };
  for (const l of LANGS) pq.ap_by_language[l] = [];
  for (const l of LANGS) {
    for (let i = 0; i < ids; i++) {
      if (!present[i].includes(l)) continue;
      pq.lang.push(l);
      pq.id.push(`q${i}`);
      const rank = 1 + Math.floor(r() * 6);
      pq.first_rank.push(rank);
      pq.ap.push(Math.min(1, (1 / rank) * (0.5 + r())));
      for (const cl of LANGS) pq.ap_by_language[cl].push(present[i].includes(cl) ? r() : null);
    }
  }
  return { dataset: "synthetic", per_query: pq };
}

/** The same queries with every value moved towards 1 by `gain` (a better run). */
function improved(run: LareqaJson, gain: number): LareqaJson {
  const up = (x: number) => x + (1 - x) * gain;
  const pq = run.per_query;
  const byLang: Record<string, (number | null)[]> = {};
  for (const [l, col] of Object.entries(pq.ap_by_language)) {
    byLang[l] = col.map((x) => (x === null ? null : up(x)));
  }
  return {
    dataset: run.dataset,
    per_query: {
      ...pq,
      ap: pq.ap.map(up),
      first_rank: pq.first_rank.map(() => 1),
      ap_by_language: byLang,
    },
  };
}

interface TatoebaJson {
  dataset: "tatoeba";
  per_query: { lang: string[]; index: number[]; to_eng_rank: number[]; from_eng_rank: number[] };
}

function tatoebaRun(seed: number, hitRate: number): TatoebaJson {
  const r = rng(seed);
  const pq: TatoebaJson["per_query"] = { lang: [], index: [], to_eng_rank: [], from_eng_rank: [] };
  for (const [l, n] of [["deu", 30], ["cmn", 20], ["swh", 12]] as const) {
    for (let i = 0; i < n; i++) {
      pq.lang.push(l);
      pq.index.push(i);
      pq.to_eng_rank.push(r() < hitRate ? 1 : 2 + Math.floor(r() * 5));
      pq.from_eng_rank.push(r() < hitRate ? 1 : 2);
    }
  }
  return { dataset: "tatoeba", per_query: pq };
}

seededTest("two identical runs: every interval contains 0 and p = 1", () => {
  const a = lareqaRun(freshSeed("run"));
  const c = compareRuns(a, structuredClone(a), { resamples: 500 });
  equal(c.kind, "lareqa");
  ok(c.metrics.length >= 6 + LANGS.length);
  for (const m of c.metrics) {
    equal(m.diff, 0, m.name);
    ok(m.ci[0] <= 0 && m.ci[1] >= 0, `${m.name}: ${m.ci}`);
    equal(m.p, 1, m.name);
    equal(m.significant, false, m.name);
  }
  const t = tatoebaRun(freshSeed("tatoeba"), 0.6);
  for (const m of compareRuns(t, structuredClone(t), { resamples: 500 }).metrics) {
    ok(m.ci[0] <= 0 && m.ci[1] >= 0 && m.p === 1 && !m.significant, m.name);
  }
});

seededTest("two clearly different runs: the interval excludes 0", () => {
  const a = lareqaRun(freshSeed("run"));
  const c = compareRuns(a, improved(a, 0.5), { resamples: 2000 });
  for (
    const name of ["mAP monolingual", "mAP cross-lingual", "mAP multilingual", "MRR multilingual"]
  ) {
    const m = c.metrics.find((x) => x.name === name)!;
    ok(m.diff > 0.1 && m.ci[0] > 0 && m.significant, `${name}: ${m.diff} ${m.ci}`);
    ok(m.p < 0.01, `${name}: p ${m.p}`);
  }
  const t = compareRuns(tatoebaRun(1, 0.3), tatoebaRun(2, 0.95), { resamples: 2000 });
  const avg = t.metrics.find((m) => m.name === "accuracy@1 average")!;
  ok(avg.ci[0] > 0 && avg.significant, `${avg.ci}`);
  // Reversed, the difference is negative with the interval below 0.
  const back = compareRuns(improved(a, 0.5), a, { resamples: 2000 }).metrics[0];
  ok(back.ci[1] < 0 && back.significant, `${back.ci}`);
});

seededTest("the bootstrap is deterministic for a seed", () => {
  const a = lareqaRun(freshSeed("run a")), b = lareqaRun(freshSeed("run b"));
  const x = compareRuns(a, b, { resamples: 800, seed: 5 });
  deepEqual(compareRuns(a, b, { resamples: 800, seed: 5 }), x);
  const y = compareRuns(a, b, { resamples: 800, seed: 6 });
  notDeepEqual(y.metrics.map((m) => m.ci), x.metrics.map((m) => m.ci));
  deepEqual(y.metrics.map((m) => m.diff), x.metrics.map((m) => m.diff), "the observed difference");
});

/** Mean over cells (skipping empty ones) of the mean of each cell's values. */
function macro(cells: number[][]): number {
  const used = cells.filter((c) => c.length > 0);
  return used.reduce((s, c) => s + c.reduce((x, y) => x + y, 0) / c.length, 0) / used.length;
}

seededTest("the interval equals a brute-force float64 percentile over the same resamples", () => {
  const R = 400, seed = freshSeed("bootstrap seed");
  const a = lareqaRun(freshSeed("run a")), b = lareqaRun(freshSeed("run b"));
  const pq = a.per_query;
  const clusters = [...new Set(pq.id)]; // order of first appearance
  const rowsOf = new Map(clusters.map((c) => [c, pq.id.flatMap((id, i) => (id === c ? [i] : []))]));
  const metrics: Record<string, (run: LareqaJson, rows: number[]) => number> = {
    "mAP monolingual": (run, rows) =>
      macro(
        LANGS.map((l) =>
          rows.filter((i) =>
            run.per_query.lang[i] === l && run.per_query.ap_by_language[l][i] !== null
          )
            .map((i) => run.per_query.ap_by_language[l][i]!)
        ),
      ),
    "mAP cross-lingual": (run, rows) =>
      macro(
        LANGS.flatMap((ql) =>
          LANGS.filter((cl) => cl !== ql).map((cl) =>
            rows.filter((i) =>
              run.per_query.lang[i] === ql && run.per_query.ap_by_language[cl][i] !== null
            )
              .map((i) => run.per_query.ap_by_language[cl][i]!)
          )
        ),
      ),
    "mAP multilingual": (run, rows) =>
      macro(
        LANGS.map((l) =>
          rows.filter((i) => run.per_query.lang[i] === l).map((i) => run.per_query.ap[i])
        ),
      ),
    "mAP multilingual (micro)": (run, rows) => macro([rows.map((i) => run.per_query.ap[i])]),
    "MRR multilingual": (run, rows) =>
      macro(
        LANGS.map((l) =>
          rows.filter((i) => run.per_query.lang[i] === l).map((i) =>
            1 / run.per_query.first_rank[i]
          )
        ),
      ),
  };
  const got = compareRuns(a, b, { resamples: R, seed });
  const rnd = mulberry32(seed);
  const diffs: Record<string, number[]> = Object.fromEntries(
    Object.keys(metrics).map((k) => [k, []]),
  );
  for (let r = 0; r < R; r++) {
    const rows = Array.from(
      { length: clusters.length },
      () => clusters[Math.floor(rnd() * clusters.length)],
    )
      .flatMap((c) => rowsOf.get(c)!);
    for (const [k, f] of Object.entries(metrics)) diffs[k].push(f(b, rows) - f(a, rows));
  }
  const all = pq.lang.map((_, i) => i);
  for (const [k, f] of Object.entries(metrics)) {
    const m = got.metrics.find((x) => x.name === k)!;
    const d = diffs[k].sort((x, y) => x - y);
    const want = [quantile(d, 0.025), quantile(d, 0.975)];
    ok(
      Math.abs(m.ci[0] - want[0]) < 1e-12 && Math.abs(m.ci[1] - want[1]) < 1e-12,
      `${k}: ${m.ci} vs ${want}`,
    );
    ok(Math.abs(m.diff - (f(b, all) - f(a, all))) < 1e-12, `${k}: observed difference`);
    const far = m.diff > 0 ? d.filter((x) => x <= 0).length : d.filter((x) => x >= 0).length;
    ok(Math.abs(m.p - Math.min(1, 2 * (1 + far) / (R + 1))) < 1e-15, `${k}: p`);
  }
  // Tatoeba: pairs resampled within each language (sorted), both directions together.
  const ta = tatoebaRun(freshSeed("tatoeba a"), 0.5), tb = tatoebaRun(freshSeed("tatoeba b"), 0.6);
  const tg = compareRuns(ta, tb, { resamples: R, seed }).metrics[0];
  equal(tg.name, "accuracy@1 average");
  const rt = mulberry32(seed);
  const langs = [...new Set(ta.per_query.lang)].sort();
  const avg = (run: TatoebaJson, rows: number[]) =>
    macro(
      langs.map((l) =>
        rows.filter((i) => run.per_query.lang[i] === l).map((i) =>
          (Number(run.per_query.to_eng_rank[i] === 1) +
            Number(run.per_query.from_eng_rank[i] === 1)) / 2
        )
      ),
    );
  const td: number[] = [];
  for (let r = 0; r < R; r++) {
    const rows = langs.flatMap((l) => {
      const own = ta.per_query.lang.flatMap((x, i) => (x === l ? [i] : []));
      return own.map(() => own[Math.floor(rt() * own.length)]);
    });
    td.push(avg(tb, rows) - avg(ta, rows));
  }
  td.sort((x, y) => x - y);
  ok(
    Math.abs(tg.ci[0] - quantile(td, 0.025)) < 1e-12 &&
      Math.abs(tg.ci[1] - quantile(td, 0.975)) < 1e-12,
    `${tg.ci}`,
  );
});

/** numpy.percentile's default (linear) on sorted values, written out independently. */
function quantile(sorted: number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  return i + 1 < sorted.length
    ? sorted[i] * (1 - (pos - i)) + sorted[i + 1] * (pos - i)
    : sorted[i];
}

Deno.test("quantileSorted is numpy's linear percentile", () => {
  deepEqual([0, 0.25, 0.5, 1].map((q) => quantileSorted([1, 2, 4, 8, 16], q)), [1, 2, 4, 16]);
  equal(quantileSorted([0, 10], 0.975), 9.75);
});

const SPEC = {
  aa: [{
    sentences: ["[q1] One.", "[q2] Two.", "Three.", "[q3] Four."],
    qas: [{ id: "q1", question: "[q1] one?", answer: 0 }, {
      id: "q2",
      question: "[q2] two?",
      answer: 1,
    }, {
      id: "q3",
      question: "[q3] four?",
      answer: 3,
    }],
  }],
  bb: [{
    sentences: ["[q2] Zwei.", "[q1] Eins.", "Drei."],
    qas: [{ id: "q1", question: "[q1] eins?", answer: 1 }, {
      id: "q2",
      question: "[q2] zwei?",
      answer: 0,
    }],
  }],
};

gpuTest("eval JSONs carry per-query results that reproduce their metrics", async (gpu) => {
  const set = await loadLareqa(await writeSet(SPEC));
  const good = await evaluateLareqa(gpu, set, taggedEmbed(["q1", "q2", "q3"]));
  const noisy = await evaluateLareqa(gpu, set, hashEmbed);
  equal(good.per_query!.ap.length, good.counts.queries);
  deepEqual(good.per_query!.lang, ["aa", "aa", "aa", "bb", "bb"]);
  deepEqual(good.per_query!.ap_by_language.bb, [1, 1, null, 1, 1], "q3 has no answer in bb");
  const back = (x: unknown) => JSON.parse(JSON.stringify(x));
  const c = compareRuns(back(noisy), back(good), { resamples: 300 });
  const multi = c.metrics.find((m) => m.name === "mAP multilingual")!;
  equal(multi.b, 1);
  ok(Math.abs(multi.a - noisy.map.multilingual!) < 1e-12);
  const bad = back(good);
  bad.map.monolingual = 0.5;
  throws(
    () => compareRuns(back(noisy), bad, { names: { a: "x.json", b: "y.json" } }),
    /y\.json: its per-query results give mAP monolingual 1, but the file reports 0\.5/,
  );
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1" },
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cli compare: run folders or JSONs in, a report with intervals out; errors name the cause", async () => {
  const dir = await Deno.makeTempDir();
  const a = lareqaRun(3);
  await Deno.mkdir(join(dir, "run-a"));
  await Deno.mkdir(join(dir, "run-b"));
  await Deno.writeTextFile(join(dir, "run-a/eval.json"), JSON.stringify(a));
  await Deno.writeTextFile(join(dir, "run-a/metrics.json"), "{}");
  await Deno.writeTextFile(join(dir, "run-b/eval.json"), JSON.stringify(improved(a, 0.5)));
  const out = join(dir, "cmp.json");
  let r = await cli(
    "compare",
    join(dir, "run-a"),
    join(dir, "run-b"),
    "--resamples",
    "1000",
    "--out",
    out,
    "--report",
    join(dir, "rep"),
  );
  equal(r.code, 0, r.stderr);
  ok(/\| mAP multilingual \| .* \| yes \(run-b better\) \|/.test(r.stdout), r.stdout);
  ok(r.stdout.includes("1,000 resamples (seed 0)"), "the method states the resample count");
  const j = JSON.parse(await Deno.readTextFile(out));
  equal(j.resamples, 1000);
  ok(
    j.metrics.every((m: { significant: boolean; ci: number[] }) =>
      m.significant === (m.ci[0] > 0 || m.ci[1] < 0)
    ),
  );
  ok((await Deno.readTextFile(join(dir, "rep/report.html"))).includes("<table>"));

  // Several seeds per side, separated by commas.
  await Deno.writeTextFile(join(dir, "a2.json"), JSON.stringify(lareqaRun(4)));
  await Deno.writeTextFile(join(dir, "b2.json"), JSON.stringify(improved(lareqaRun(4), 0.5)));
  r = await cli(
    "compare",
    `${join(dir, "run-a")},${join(dir, "a2.json")}`,
    `${join(dir, "run-b")},${join(dir, "b2.json")}`,
    "--resamples",
    "500",
    "--out",
    out,
  );
  equal(r.code, 0, r.stderr);
  deepEqual(JSON.parse(await Deno.readTextFile(out)).runs, { a: 2, b: 2 });
  ok(r.stdout.includes("run-a +1: mean of 2 runs"), r.stdout);
  r = await cli("compare", join(dir, "run-a"));
  equal(r.code, 2);
  ok(r.stderr.includes("expected two runs"), r.stderr);
  r = await cli("compare", join(dir, "run-a"), join(dir, "run-b"), "--resamples", "5");
  equal(r.code, 2);
  ok(r.stderr.includes("--resamples"), r.stderr);
  await Deno.writeTextFile(join(dir, "old.json"), JSON.stringify({ dataset: "xquad-r", map: {} }));
  r = await cli("compare", join(dir, "old.json"), join(dir, "run-b/eval.json"));
  equal(r.code, 1);
  ok(/old: has no per-query results/.test(r.stderr), r.stderr);
  const fewer = structuredClone(a);
  for (const k of ["lang", "id", "ap", "first_rank"] as const) fewer.per_query[k].pop();
  for (const col of Object.values(fewer.per_query.ap_by_language)) col.pop();
  await Deno.writeTextFile(join(dir, "fewer.json"), JSON.stringify(fewer));
  r = await cli("compare", join(dir, "run-a/eval.json"), join(dir, "fewer.json"));
  equal(r.code, 1);
  ok(/query cc\/q\d+ of eval is not in fewer/.test(r.stderr), r.stderr);
});

gpuTest("BEIR eval JSONs carry per-query results and compare query by query", async (gpu) => {
  const dir = await Deno.makeTempDir({ prefix: "beir_" });
  const docs = [["d1", "[q1:0.9] one"], ["d2", "[q1:0.5] two"], ["d3", "[q2:0.6] three"], [
    "d4",
    "x",
  ]];
  await Deno.writeTextFile(
    `${dir}/corpus.jsonl`,
    docs.map(([id, text]) => JSON.stringify({ _id: id, title: "", text })).join("\n"),
  );
  await Deno.writeTextFile(
    `${dir}/queries.jsonl`,
    [["q1", "[q1] first?"], ["q2", "[q2] second?"]].map(([id, text]) =>
      JSON.stringify({ _id: id, text })
    )
      .join("\n"),
  );
  await Deno.mkdir(`${dir}/qrels`);
  await Deno.writeTextFile(
    `${dir}/qrels/test.tsv`,
    "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n",
  );
  const set = await loadBeir(dir);
  const a = await evaluateBeir(gpu, set, taggedEmbed(["q1", "q2"]));
  // q1: d1 .9 ahead of its d2 .5 → rank 2, AP 1/2; q2: d3 first.
  deepEqual(a.per_query, {
    id: ["q1", "q2"],
    "ndcg@10": [1 / Math.log2(3), 1],
    "recall@100": [1, 1],
    "mrr@10": [0.5, 1],
    ap: [0.5, 1],
    first_rank: [2, 1],
  });
  const json = JSON.parse(JSON.stringify(a));
  const c = compareRuns(json, structuredClone(json), { resamples: 200 });
  equal(c.kind, "beir");
  deepEqual(c.metrics.map((m) => m.name), [
    "nDCG@10",
    "recall@100",
    "MRR@10",
    "MAP",
    "first relevant at rank 1",
  ]);
  ok(c.metrics.every((m) => m.diff === 0 && m.p === 1 && !m.significant));
  equal(c.metrics[0].a, a.metrics["ndcg@10"]);
});

seededTest(
  "several seeds per side: one run each is the single-run bootstrap, and the interval equals a brute force",
  () => {
    const a = lareqaRun(freshSeed("run a")), b = lareqaRun(freshSeed("run b"));
    deepEqual(
      compareRuns([a], [b], { resamples: 300, seed: 2 }).metrics,
      compareRuns(a, b, { resamples: 300, seed: 2 }).metrics,
    );
    // Side A: 2 seeds, side B: 3 seeds (other runs on the same queries).
    const as = [a, lareqaRun(freshSeed("run a2"))];
    const bs = [b, lareqaRun(freshSeed("run b2")), lareqaRun(freshSeed("run b3"))];
    const R = 300, seed = freshSeed("bootstrap seed");
    const got = compareRuns(as, bs, { resamples: R, seed });
    deepEqual(got.runs, { a: 2, b: 3 });
    ok(got.method.includes("2 and 3 seeds"), got.method);
    const pq = a.per_query;
    const clusters = [...new Set(pq.id)];
    const rowsOf = new Map(
      clusters.map((c) => [c, pq.id.flatMap((id, i) => (id === c ? [i] : []))]),
    );
    const multi = (run: LareqaJson, rows: number[]) =>
      macro(
        LANGS.map((l) =>
          rows.filter((i) => run.per_query.lang[i] === l).map((i) => run.per_query.ap[i])
        ),
      );
    const all = pq.lang.map((_, i) => i);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const m = got.metrics.find((x) => x.name === "mAP multilingual")!;
    ok(
      Math.abs(m.a - mean(as.map((r) => multi(r, all)))) < 1e-12,
      "side A is the mean of its runs",
    );
    ok(
      Math.abs(m.b - mean(bs.map((r) => multi(r, all)))) < 1e-12,
      "side B is the mean of its runs",
    );
    const rnd = mulberry32(seed);
    const d: number[] = [];
    for (let r = 0; r < R; r++) {
      const rows = Array.from(
        { length: clusters.length },
        () => clusters[Math.floor(rnd() * clusters.length)],
      )
        .flatMap((c) => rowsOf.get(c)!);
      const drawA = as.map(() => as[Math.floor(rnd() * as.length)]);
      const drawB = bs.map(() => bs[Math.floor(rnd() * bs.length)]);
      d.push(mean(drawB.map((x) => multi(x, rows))) - mean(drawA.map((x) => multi(x, rows))));
    }
    d.sort((x, y) => x - y);
    ok(
      Math.abs(m.ci[0] - quantile(d, 0.025)) < 1e-12 &&
        Math.abs(m.ci[1] - quantile(d, 0.975)) < 1e-12,
      `${m.ci}`,
    );
    // The same runs on both sides: the interval contains 0; clearly better runs: it excludes 0.
    const same = compareRuns(as, as, { resamples: 1000 }).metrics[0];
    ok(same.ci[0] <= 0 && same.ci[1] >= 0 && !same.significant, `${same.ci}`);
    const better = compareRuns(as, as.map((r) => improved(r, 0.5)), { resamples: 1000 }).metrics[0];
    ok(better.ci[0] > 0 && better.significant, `${better.ci}`);
  },
);
