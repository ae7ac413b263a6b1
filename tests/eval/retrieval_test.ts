import { deepEqual, equal, ok } from "node:assert/strict";
import { lareqaCandidates, type LareqaSet, loadLareqa } from "../../eval/lareqa.ts";
import { loadBeir } from "../../eval/beir.ts";
import {
  type EmbedFn,
  evaluateBeir,
  evaluateLareqa,
  type LareqaReport,
} from "../../eval/retrieval.ts";
import { gpuTest } from "../_helpers.ts";
import { hashEmbed, type SynParagraph, taggedEmbed, writeSet } from "./_synthetic.ts";

const close = (got: number | null | undefined, want: number, what: string) =>
  ok(typeof got === "number" && Math.abs(got - want) < 1e-12, `${what}: got ${got}, want ${want}`);

// Three languages, ids missing from some (as in MLQA-R), astral characters, a question whose
// answer lies in no sentence. Candidates: aa 7, bb 6, cc 4.
const SPEC: Record<string, SynParagraph[]> = {
  aa: [
    {
      sentences: ["Alpha one 𝒜.", "[q1] Beta two.", "Gamma 😀 three.", "[q2] Delta four."],
      qas: [
        { id: "q1", question: "[q1] Where is beta?", answer: 1 },
        { id: "q2", question: "[q2] Where is delta?", answer: 3 },
      ],
    },
    {
      sentences: ["[q3] Eps.", "Zeta.", "[q4] Eta 🎉."],
      qas: [
        { id: "q3", question: "[q3] Eps?", answer: 0 },
        { id: "q4", question: "[q4] Eta?", answer: 2 },
      ],
    },
  ],
  bb: [
    {
      sentences: ["[q2] B one.", "[q1] B two 𝔹."],
      qas: [
        { id: "q2", question: "[q2] B delta?", answer: 0 },
        { id: "q1", question: "[q1] B beta?", answer: 1 },
      ],
    },
    {
      sentences: ["B three.", "[q3] B four.", "B five."],
      qas: [{ id: "q3", question: "[q3] B?", answer: 1 }],
    },
    { sentences: ["[q4] B six."], qas: [{ id: "q4", question: "[q4] B eta?", answer: 0 }] },
  ],
  cc: [
    {
      sentences: ["[q1] C one 🙂.", "C two.", "[q3] C three."],
      qas: [
        { id: "q1", question: "[q1] C beta?", answer: 0 },
        { id: "q3", question: "[q3] C eps?", answer: 2 },
        { id: "qx", question: "[q1] unanswerable?", answer: "gap" },
      ],
    },
    { sentences: ["[q2] C four."], qas: [{ id: "q2", question: "[q2] C delta?", answer: 0 }] },
  ],
};
const IDS = ["q1", "q2", "q3", "q4"];
const NC: Record<string, number> = { aa: 7, bb: 6, cc: 4 };

let synthetic: Promise<LareqaSet> | null = null;
const syntheticSet = () => synthetic ??= writeSet(SPEC).then((dir) => loadLareqa(dir));

gpuTest("a perfect scorer gets mAP 1 in every setting", async (gpu) => {
  const set = await syntheticSet();
  ok(set.warnings.some((w) => /cc\.json: question qx/.test(w)), "the gap answer is reported");
  const r = await evaluateLareqa(gpu, set, taggedEmbed(IDS));
  deepEqual(r.languages, ["aa", "bb", "cc"]);
  deepEqual(r.map, { monolingual: 1, crosslingual: 1, multilingual: 1, multilingual_micro: 1 });
  deepEqual(r.counts.questions, { aa: 4, bb: 4, cc: 3 });
  deepEqual(r.counts.candidates, NC);
  equal(r.pairs.cc.aa, 1);
  equal(r.pairs.aa.cc, 1, "only aa queries whose id has an answer in cc count");
  equal(r.counts.pair_queries.aa.cc, 3);
  equal(r.recall.monolingual["r@1"], 1);
  // Multilingual recall@1: 1 of the query's R relevant items fits in the top 1.
  close(r.recall.multilingual["r@1"], ((3 * (1 / 3) + 1 / 2) / 4 * 2 + 1 / 3) / 3, "multi r@1");
  // Rank distance: q1–q3 have 3 answers (ranks 1–3, distance 2), q4 has 2 (distance 1).
  close(r.language_bias.by_language.aa, (2 + 2 + 2 + 1) / 4, "bias aa");
  close(r.language_bias.by_language.cc, 2, "bias cc");
  close(r.language_bias.mean, (1.75 + 1.75 + 2) / 3, "bias mean");
});

gpuTest("a reversed scorer gets the known minimum mAP", async (gpu) => {
  const set = await syntheticSet();
  const r = await evaluateLareqa(gpu, set, taggedEmbed(IDS, -1));
  // Relevant candidates score −1, everything else 0: the R relevant items take the last R ranks.
  const worst = (n: number, rel: number) => {
    let s = 0;
    for (let k = 1; k <= rel; k++) s += k / (n - rel + k);
    return s / rel;
  };
  for (const ql of ["aa", "bb", "cc"]) {
    for (const cl of ["aa", "bb", "cc"]) close(r.pairs[ql][cl], 1 / NC[cl], `${ql}→${cl}`);
  }
  close(r.map.monolingual, (1 / 7 + 1 / 6 + 1 / 4) / 3, "mono");
  close(r.map.crosslingual, (1 / 6 + 1 / 4 + 1 / 7 + 1 / 4 + 1 / 7 + 1 / 6) / 6, "cross");
  const w3 = worst(17, 3), w2 = worst(17, 2);
  close(r.multilingual_by_language.aa, (3 * w3 + w2) / 4, "multi aa");
  close(r.multilingual_by_language.cc, w3, "multi cc");
  close(r.map.multilingual, ((3 * w3 + w2) / 4 * 2 + w3) / 3, "multi");
  close(r.map.multilingual_micro, (9 * w3 + 2 * w2) / 11, "micro");
  equal(r.recall.monolingual["r@10"], 1, "the corpora are smaller than 10");
  equal(r.recall.multilingual["r@1"], 0);
});

gpuTest("language bias follows the ranks of a constructed case", async (gpu) => {
  // Scores are set by the tags: query q1 ranks aa's answer 1st and bb's answer 4th.
  const dir = await writeSet({
    aa: [{
      sentences: ["[q1:0.9] a1.", "[q1:0.8] a2.", "[q1:0.3] a3.", "[q2:0.95] a4."],
      qas: [{ id: "q1", question: "[q1] a?", answer: 0 }, {
        id: "q2",
        question: "[q2] a?",
        answer: 3,
      }],
    }],
    bb: [{
      sentences: ["[q1:0.5] b1.", "[q2:0.2] b2.", "[q2:0.8][q1:0.55] b3."],
      qas: [{ id: "q1", question: "[q1] b?", answer: 0 }, {
        id: "q2",
        question: "[q2] b?",
        answer: 1,
      }],
    }],
  });
  const r = await evaluateLareqa(gpu, await loadLareqa(dir), taggedEmbed(["q1", "q2"]));
  // q1 pool order a1 .9, a2 .8, b3 .55, b1 .5, …: relevant at ranks 1 and 4 → distance 3, AP .75.
  // q2: a4 .95, b3 .8, b2 .2: relevant at ranks 1 and 3 → distance 2, AP (1 + 2/3) / 2.
  deepEqual(r.language_bias, { mean: 2.5, by_language: { aa: 2.5, bb: 2.5 } });
  close(r.multilingual_by_language.aa, (0.75 + 5 / 6) / 2, "multi aa");
  deepEqual(r.pairs, { aa: { aa: 1, bb: 0.5 }, bb: { aa: 1, bb: 0.5 } });
  deepEqual(r.recall.multilingual, { "r@1": 0.5, "r@10": 1 });
  deepEqual(r.recall.monolingual, { "r@1": 0.5, "r@10": 1 });
});

/** Brute force on the CPU: full sort per query and setting (scores in float64). */
async function cpuReference(set: LareqaSet, embed: EmbedFn, pairMode: boolean) {
  const langs = set.languages;
  const cands = langs.flatMap((l) =>
    lareqaCandidates(set.byLanguage[l]).map((c) => ({ ...c, lang: l }))
  );
  const norm = async (items: { text: string; pair?: string }[]) => {
    const e = await embed(items);
    const d = e.length / items.length;
    return items.map((_, i) => {
      const v = Array.from(e.subarray(i * d, (i + 1) * d));
      const n = Math.hypot(...v);
      return v.map((x) => Math.fround(x / n));
    });
  };
  const cv = await norm(
    cands.map((c) => pairMode ? { text: c.text, pair: c.context } : { text: c.text }),
  );
  const relevant = new Map<string, Set<number>>();
  for (const l of langs) {
    const lang = set.byLanguage[l];
    for (const q of lang.questions) {
      const s = relevant.get(q.id) ?? new Set();
      cands.forEach((c, i) => {
        if (c.lang === l && c.paragraph === q.paragraph && q.answers.includes(c.sentence)) s.add(i);
      });
      relevant.set(q.id, s);
    }
  }
  const ranking = (qv: number[], pool: number[]) =>
    pool.map((i) => ({ i, s: qv.reduce((a, x, k) => a + x * cv[i][k], 0) }))
      .sort((a, b) => b.s - a.s || a.i - b.i).map((x) => x.i);
  const ap = (order: number[], rel: Set<number>) => {
    let hits = 0, sum = 0;
    order.forEach((i, pos) => {
      if (rel.has(i)) sum += ++hits / (pos + 1);
    });
    return sum / rel.size;
  };
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const pairs: Record<string, Record<string, number>> = {};
  const multi: Record<string, number> = {}, bias: Record<string, number> = {};
  const all: number[] = [];
  for (const ql of langs) {
    const qs = set.byLanguage[ql].questions;
    const qv = await norm(qs.map((q) => ({ text: q.text })));
    pairs[ql] = {};
    for (const cl of langs) {
      const pool = cands.map((_, i) => i).filter((i) => cands[i].lang === cl);
      const aps = qs.flatMap((q, k) => {
        const rel = new Set([...relevant.get(q.id)!].filter((i) => cands[i].lang === cl));
        return rel.size ? [ap(ranking(qv[k], pool), rel)] : [];
      });
      if (aps.length) pairs[ql][cl] = avg(aps);
    }
    const pool = cands.map((_, i) => i);
    const aps = qs.map((q, k) => ap(ranking(qv[k], pool), relevant.get(q.id)!));
    all.push(...aps);
    multi[ql] = avg(aps);
    const dists = qs.flatMap((q, k) => {
      const order = ranking(qv[k], pool);
      const ranks = [...relevant.get(q.id)!].map((i) => order.indexOf(i) + 1);
      return ranks.length > 1 ? [Math.max(...ranks) - Math.min(...ranks)] : [];
    });
    bias[ql] = avg(dists);
  }
  return { pairs, multi, bias, micro: avg(all) };
}

function assertMatchesReference(r: LareqaReport, ref: Awaited<ReturnType<typeof cpuReference>>) {
  for (const ql of r.languages) {
    for (const cl of r.languages) {
      if (ref.pairs[ql][cl] === undefined) equal(r.pairs[ql][cl], null, `${ql}→${cl} empty`);
      else close(r.pairs[ql][cl], ref.pairs[ql][cl], `${ql}→${cl}`);
    }
    close(r.multilingual_by_language[ql], ref.multi[ql], `multi ${ql}`);
    close(r.language_bias.by_language[ql], ref.bias[ql], `bias ${ql}`);
  }
  close(r.map.multilingual_micro, ref.micro, "micro");
}

gpuTest(
  "every metric matches a CPU brute force and is invariant to the candidate block size",
  async (gpu) => {
    const set = await syntheticSet();
    for (const candidate of ["sentence", "sentence+context"] as const) {
      const ref = await cpuReference(set, hashEmbed, candidate === "sentence+context");
      const reports: LareqaReport[] = [];
      for (const blockSize of [17, 1, 2, 5, 16, 1000]) {
        const r = await evaluateLareqa(gpu, set, hashEmbed, { candidate, blockSize });
        assertMatchesReference(r, ref);
        reports.push(r);
      }
      const strip = ({ timing: _, ...rest }: LareqaReport) => rest;
      for (const r of reports.slice(1)) deepEqual(strip(r), strip(reports[0]), "block invariance");
    }
  },
);

gpuTest(
  "the en/de/zh XQuAD-R slice has the structure of the expected-evaluation fixture",
  async (gpu) => {
    const fixture = JSON.parse(
      await Deno.readTextFile(
        new URL("../fixtures/xlmr-tiny/eval_expected.json", import.meta.url),
      ),
    );
    const set = await loadLareqa(
      new URL("../fixtures/xquad-r", import.meta.url).pathname,
      {
        langs: ["en", "de", "zh"],
        limitQuestions: 40,
      },
    );
    const r = await evaluateLareqa(gpu, set, hashEmbed) as unknown as Record<string, unknown>;
    // Every key of the fixture exists in the report with the same kind of value, except
    // counts.candidates: the fixture's pooled total is our counts.candidates_total (ours is per
    // language, as the evaluation spec asks).
    const walk = (want: unknown, got: unknown, path: string) => {
      if (path === "counts.candidates") return;
      if (want !== null && typeof want === "object") {
        ok(got !== null && typeof got === "object", `${path} is an object`);
        deepEqual(Object.keys(got as object), Object.keys(want as object), `${path} keys`);
        for (const k of Object.keys(want as object)) {
          walk(
            (want as Record<string, unknown>)[k],
            (got as Record<string, unknown>)[k],
            `${path}.${k}`.replace(/^\./, ""),
          );
        }
      } else equal(typeof got, typeof want, `${path} type`);
    };
    for (const k of Object.keys(fixture)) {
      if (k === "counts") continue;
      walk(fixture[k], r[k], k);
    }
    const counts = r.counts as LareqaReport["counts"];
    equal(counts.queries, fixture.counts.queries);
    equal(counts.candidates_total, fixture.counts.candidates);
  },
);

gpuTest(
  "BEIR sets load and score nDCG@10, recall@100 and MRR@10 with graded judgments",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "beir_" });
    const docs = [
      ["d1", "[q1:0.9] one"],
      ["d2", "[q1:0.5] two"],
      ["d3", "[q1:0.7] three"],
      ["d4", "[q2:0.2] four"],
      ["d5", "[q2:0.6] five"],
      ["d6", "six"],
    ];
    await Deno.writeTextFile(
      `${dir}/corpus.jsonl`,
      docs.map(([id, text]) => JSON.stringify({ _id: id, title: "", text })).join("\n"),
    );
    await Deno.writeTextFile(
      `${dir}/queries.jsonl`,
      [["q1", "[q1] first?"], ["q2", "[q2] second?"], ["q3", "[q1] unjudged?"]]
        .map(([id, text]) => JSON.stringify({ _id: id, text })).join("\n") + "\n",
    );
    await Deno.mkdir(`${dir}/qrels`);
    await Deno.writeTextFile(
      `${dir}/qrels/test.tsv`,
      "query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td3\t1\nq1\td1\t0\nq2\td4\t1\nq2\tdX\t1\n",
    );
    const set = await loadBeir(dir);
    ok(set.warnings.some((w) => /unknown document dX/.test(w)));
    equal(set.queries.length, 2, "only judged queries");
    for (const blockSize of [6, 1, 4]) {
      const r = await evaluateBeir(gpu, set, taggedEmbed(["q1", "q2"]), { blockSize });
      // q1 ranking d1 .9, d3 .7, d2 .5: d3 (grade 1) at 2, d2 (grade 2) at 3.
      // nDCG = (1/log2 3 + 2/log2 4) / (2 + 1/log2 3); MRR 1/2. q2: d5 .6, d4 .2: d4 at 2.
      const n1 = (1 / Math.log2(3) + 1) / (2 + 1 / Math.log2(3));
      const n2 = (1 / Math.log2(3)) / 1;
      close(r.metrics["ndcg@10"], (n1 + n2) / 2, "ndcg@10");
      close(r.metrics["mrr@10"], 0.5, "mrr@10");
      close(r.metrics["recall@100"], 1, "recall@100");
      deepEqual(r.counts, { queries: 2, corpus: 6, relevant_pairs: 3 });
    }
  },
);
