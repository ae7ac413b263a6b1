/**
 * `mine`: the mined negatives equal a float64 brute force over the same embeddings (ranks, range,
 * margins, max score, every langs-from mode), never carry the item's id, do not depend on chunking
 * and replay for a seed; the CLI's output trains with `--hard-negatives`; bad flags exit 2.
 */
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { loadQaData, type QaDataset, type QaItem } from "../../training/data.ts";
import {
  mineHardNegatives,
  type MineOptions,
  mineRandom,
  topIndices,
} from "../../training/mine.ts";
import { train } from "../../training/train.ts";
import type { EmbedFn } from "../../eval/retrieval.ts";
import { freshSeed, gpuTest, rng, seededTest } from "../_helpers.ts";
import { writeSet } from "../eval/_synthetic.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");
const DIM = 12;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Items "[id] text": every text of an id shares a random direction with a random weight (so
 * translations and the answer tend to rank high), plus its own random part. Some items lack a language; item 1's German answer
 * is item 0's English answer (same text, another id) and items 2 and 3 share an English answer.
 */
function syntheticData(seed: number): { data: QaDataset; embed: EmbedFn } {
  const r = rng(seed);
  const langs = ["de", "en", "sw"];
  const items: QaItem[] = [];
  for (let i = 0; i < 30; i++) {
    const question: Record<string, string> = {}, answer: Record<string, string> = {};
    for (const l of langs) {
      if (l !== "en" && i > 3 && r() < 0.2) continue;
      question[l] = `[${i}] q ${l} ${i}`;
      answer[l] = `[${i}] a ${l} ${i}`;
    }
    items.push({ id: `id${i}`, question, answer });
  }
  items[1].answer.de = items[0].answer.en;
  items[3].answer.en = items[2].answer.en;
  const vec = new Map<string, number[]>();
  const gauss = (rand: () => number) =>
    Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  const dir = (key: string) => {
    if (!vec.has(key)) vec.set(key, Array.from({ length: DIM }, () => gauss(r)));
    return vec.get(key)!;
  };
  // How strongly an id's texts agree: from unrelated (0) to near-paraphrases (3); items 0-3 high.
  const weights = Array.from({ length: 30 }, (_, i) => i <= 3 ? 3 : 3 * r());
  const weight = (id: string) => weights[Number(id)];
  const embed: EmbedFn = (xs) => {
    const out = new Float32Array(xs.length * DIM);
    xs.forEach((x, i) => {
      const id = /^\[(\d+)\]/.exec(x.text)![1];
      const base = dir(`id${id}`), own = dir(`text ${x.text}`), w = weight(id);
      for (let k = 0; k < DIM; k++) out[i * DIM + k] = w * base[k] + own[k];
    });
    return Promise.resolve(out);
  };
  return { data: { items, languages: langs, source: "synthetic" }, embed };
}

/**
 * The rules of training/mine.ts in float64, or null when a near tie (< 2e-6, 10x float32's error
 * here) makes the answer unsure.
 */
async function bruteForce(
  data: QaDataset,
  embed: EmbedFn,
  o: MineOptions,
): Promise<Record<string, string[]>[] | null> {
  const norm = async (texts: string[]) => {
    const raw = await embed(texts.map((text) => ({ text })));
    return texts.map((_, i) => {
      const v = Array.from(raw.subarray(i * DIM, (i + 1) * DIM));
      const s = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
      return v.map((x) => x / s);
    });
  };
  const dot = (a: number[], b: number[]) => a.reduce((s, x, k) => s + x * b[k], 0);
  const langs = [...data.languages].sort();
  const pool: { text: string; lang: string; ids: Set<string> }[] = [];
  for (const l of langs) {
    for (const it of data.items) {
      const t = it.answer[l];
      if (t === undefined) continue;
      const c = pool.find((p) => p.lang === l && p.text === t);
      if (c) c.ids.add(it.id);
      else pool.push({ text: t, lang: l, ids: new Set([it.id]) });
    }
  }
  const pe = await norm(pool.map((p) => p.text));
  const n = o.negatives ?? 5;
  let unsure = false;
  const out = await Promise.all(data.items.map(async (it) => {
    const res: Record<string, string[]> = {};
    for (const l of Object.keys(it.answer).sort()) {
      const cand = pool.map((_, j) => j).filter((j) => o.langsFrom === "all" || pool[j].lang === l);
      const qLangs = o.langsFrom === "passage" ? Object.keys(it.question).sort() : [l];
      const qs = await norm(qLangs.map((q) => it.question[q]));
      const pos = pool.findIndex((p) => p.lang === l && p.text === it.answer[l]);
      const rows = qs.map((q) => new Map(cand.map((j) => [j, dot(q, pe[j])])));
      const best = new Map<number, number>(), inWin = new Set<number>();
      for (const row of rows) {
        const order = [...cand].sort((a, b) => row.get(b)! - row.get(a)! || a - b);
        for (let k = 1; k < order.length; k++) {
          // Copies of one text score bit-identically on the GPU too: not a near tie.
          const same = pool[order[k - 1]].text === pool[order[k]].text;
          if (!same && row.get(order[k - 1])! - row.get(order[k])! < 2e-6) unsure = true;
        }
        order.forEach((j, p) => {
          const r = p + 1;
          if (!best.has(j) || r < best.get(j)!) best.set(j, r);
          if (o.range && r >= o.range[0] && r <= o.range[1]) inWin.add(j);
        });
      }
      const near = (s: number, t: number) => {
        if (Math.abs(s - t) < 2e-6) unsure = true;
        return s > t;
      };
      const eligible = (j: number) => {
        if (j === pos || pool[j].ids.has(it.id)) return false;
        if (Object.values(it.answer).includes(pool[j].text)) return false;
        return rows.every((row) => {
          const s = row.get(j)!, ps = row.get(pos)!;
          return !(o.maxScore !== undefined && near(s, o.maxScore)) &&
            !(o.margin !== undefined && near(s, ps - o.margin)) &&
            !(o.relativeMargin !== undefined && near(s, ps * (1 - o.relativeMargin)));
        });
      };
      const ranked = cand.filter((j) => !o.range || inWin.has(j))
        .sort((a, b) => best.get(a)! - best.get(b)! || a - b).filter(eligible)
        .filter((j, k, all) => all.findIndex((x) => pool[x].text === pool[j].text) === k);
      let chosen = ranked.slice(0, n);
      if (o.range && ranked.length > n) {
        const rnd = mineRandom(o.seed ?? 0, it.id, l);
        const e = [...ranked];
        for (let i = 0; i < n; i++) {
          const j = i + rnd.int(e.length - i);
          [e[i], e[j]] = [e[j], e[i]];
        }
        chosen = e.slice(0, n).sort((a, b) => best.get(a)! - best.get(b)! || a - b);
      }
      if (chosen.length > 0) res[l] = chosen.map((j) => pool[j].text);
    }
    return res;
  }));
  return unsure ? null : out;
}

seededTest("topIndices orders by score, then index, like a full sort", () => {
  const r = rng(freshSeed("scores"));
  for (let t = 0; t < 50; t++) {
    const n = 1 + Math.floor(r() * 300);
    // Few distinct values: many ties.
    const row = Float32Array.from({ length: n }, () => Math.floor(r() * 7) / 7);
    const all = Array.from({ length: n }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
    const k = 1 + Math.floor(r() * n);
    deepEqual(Array.from(topIndices(row, k)), all.slice(0, k), `n ${n} k ${k}`);
  }
});

const CONFIGS: MineOptions[] = [
  { negatives: 3 },
  { negatives: 4, langsFrom: "same", range: [2, 12], margin: 0.05 },
  { negatives: 3, langsFrom: "passage", range: [1, 15], relativeMargin: 0.1 },
  { negatives: 5, langsFrom: "passage", maxScore: 0.5 },
  { negatives: 4, langsFrom: "all", margin: 0.02, seed: 7 },
  { negatives: 6, langsFrom: "all", range: [3, 40], maxScore: 0.6, relativeMargin: 0.05 },
];

gpuTest("mined negatives equal a float64 brute force of the same embeddings", async (gpu) => {
  const skips = { skippedMargin: 0, skippedRelativeMargin: 0, skippedMaxScore: 0 };
  for (const o of CONFIGS) {
    let checked = false;
    for (let attempt = 0; attempt < 8 && !checked; attempt++) {
      const { data, embed } = syntheticData(freshSeed("synthetic embeddings"));
      const want = await bruteForce(data, embed, o);
      if (!want) continue; // a near tie (< 2e-6) somewhere: float32 may order it either way
      const got = await mineHardNegatives(gpu, data, embed, { ...o, chunkBytes: 4096 });
      for (const k of Object.keys(skips) as (keyof typeof skips)[]) skips[k] += got.stats[k];
      got.items.forEach((it, i) => {
        deepEqual(it.negatives ?? {}, want[i], `${JSON.stringify(o)}: item ${it.id}`);
        for (const [l, list] of Object.entries(got.trace[i])) {
          for (const neg of list) {
            if (o.range) ok(neg.rank >= 1 && neg.rank <= o.range[1], `rank ${neg.rank}`);
            ok(neg.lang === l || o.langsFrom === "all", "language of the pool");
          }
        }
      });
      checked = true;
    }
    ok(checked, `${JSON.stringify(o)}: no data set free of near ties in 8 draws`);
  }
  for (const [k, v] of Object.entries(skips)) ok(v > 0, `the filters bind: ${k} ${v}`);
});

gpuTest("no negative carries its item's id; the skips are counted", async (gpu) => {
  const { data, embed } = syntheticData(freshSeed("synthetic embeddings"));
  const idsOf = new Map<string, Set<string>>();
  for (const it of data.items) {
    for (const t of Object.values(it.answer)) {
      if (!idsOf.has(t)) idsOf.set(t, new Set());
      idsOf.get(t)!.add(it.id);
    }
  }
  const r = await mineHardNegatives(gpu, data, embed, { negatives: 8, langsFrom: "all" });
  // Translations share a direction, so they rank right behind the positive and must be skipped.
  ok(r.stats.skippedSameId > 0, `skippedSameId ${r.stats.skippedSameId}`);
  ok(r.stats.skippedSameText > 0, "item 0's English answer is item 1's German one");
  for (const it of r.items) {
    for (const list of Object.values(it.negatives ?? {})) {
      for (const t of list) {
        ok(!idsOf.get(t)!.has(it.id), `${it.id} got its own answer ${t}`);
        ok(!Object.values(it.answer).includes(t), `${it.id} got one of its answers' texts`);
      }
    }
  }
  equal(
    r.stats.negatives,
    r.items.reduce((s, it) => s + Object.values(it.negatives ?? {}).flat().length, 0),
  );
});

gpuTest("mining is deterministic for a seed and independent of chunking", async (gpu) => {
  const { data, embed } = syntheticData(freshSeed("synthetic embeddings"));
  const o: MineOptions = { negatives: 3, range: [2, 25], langsFrom: "passage", seed: 11 };
  const a = await mineHardNegatives(gpu, data, embed, o);
  const b = await mineHardNegatives(gpu, data, embed, { ...o, chunkBytes: 256 });
  deepEqual(b.items, a.items);
  deepEqual(b.stats, a.stats);
  const c = await mineHardNegatives(gpu, data, embed, { ...o, seed: 12 });
  notDeepEqual(c.items, a.items, "another seed draws other negatives");
});

async function tinyModel(dir: string): Promise<string> {
  const config = presetConfig("tiny", {
    vocabSize: 16002,
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 2,
    intermediateSize: 64,
    maxPositions: 42,
  });
  await initModelDir(dir, config, { seed: 4, tokenizerDir: TOKENIZER });
  return dir;
}

gpuTest(
  "cli mine: a LAReQA folder becomes training JSONL that trains with --hard-negatives",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const model = await tinyModel(join(root, "model"));
    const dir = await writeSet({
      en: [
        {
          sentences: ["The river is long.", "It flows north.", "Fish live in it."],
          qas: [
            { id: "q1", question: "How long is the river?", answer: 0 },
            { id: "q2", question: "Where does it flow?", answer: 1 },
          ],
        },
        {
          sentences: ["The city is old.", "Many people live there."],
          qas: [{ id: "q3", question: "How old is the city?", answer: 0 }, {
            id: "q4",
            question: "Who lives there?",
            answer: 1,
          }],
        },
      ],
      de: [
        {
          sentences: ["Der Fluss ist lang.", "Er fließt nach Norden."],
          qas: [
            { id: "q1", question: "Wie lang ist der Fluss?", answer: 0 },
            { id: "q2", question: "Wohin fließt er?", answer: 1 },
          ],
        },
        {
          sentences: ["Die Stadt ist alt.", "Viele Menschen leben dort."],
          qas: [{ id: "q3", question: "Wie alt ist die Stadt?", answer: 0 }, {
            id: "q4",
            question: "Wer lebt dort?",
            answer: 1,
          }],
        },
      ],
    });
    const out = join(root, "mined.jsonl"), trace = join(root, "trace.jsonl");
    const r = await cli(
      "mine",
      "--trace",
      trace,
      "--model",
      model,
      "--train",
      dir,
      "--out",
      out,
      "--negatives",
      "2",
      "--langs-from",
      "all",
      "--pooling",
      "mean",
      "--max-length",
      "32",
    );
    equal(r.code, 0, r.stderr);
    ok(/skipped: \d+ with the item's own id/.test(r.stdout), r.stdout);
    ok(/mined \d+\/8 \(item, language\) keys/.test(r.stderr), "progress is shown");
    const mined = await loadQaData(out);
    const traced = (await Deno.readTextFile(trace)).trim().split("\n").map((l) => JSON.parse(l));
    deepEqual(traced.map((t) => t.id), ["q1", "q2", "q3", "q4"]);
    ok(
      traced.every((t) =>
        t.negatives.en.every((n: { rank: number }) => Number.isInteger(n.rank) && n.rank >= 1)
      ),
      "ranks",
    );
    deepEqual(mined.items.map((it) => it.id), ["q1", "q2", "q3", "q4"]);
    for (const it of mined.items) {
      deepEqual(Object.keys(it.negatives!).sort(), ["de", "en"]);
      for (const list of Object.values(it.negatives!)) {
        equal(list.length, 2);
        for (const t of list) ok(!Object.values(it.answer).includes(t), `${it.id}: own answer`);
      }
    }
    const run = await train(gpu, {
      model,
      train: out,
      out: join(root, "run"),
      steps: 2,
      batchSize: 2,
      hardNegatives: 2,
      maxLength: 32,
      pooling: "mean",
      logEvery: 1,
      quiet: true,
    });
    equal(run.stats.length, 2);
    ok(run.stats.every((s) => Number.isFinite(s.loss)), "finite losses");
    // Every batch's 2 pairs bring their 2 negatives each: 2 + 4 passages, so log(6) at random.
    ok(
      run.stats.every((s) => s.loss > Math.log(2) + 0.1),
      `losses ${run.stats.map((s) => s.loss)}`,
    );
    await Deno.remove(root, { recursive: true });
  },
);

Deno.test("cli mine: bad flags exit 2 naming the flag", async () => {
  const base = ["mine", "--model", "m", "--train", "t.jsonl", "--out", "o.jsonl"];
  for (
    const [args, flag] of [
      [["--range", "5:2"], "--range"],
      [["--range", "x"], "--range"],
      [["--negatives", "0"], "--negatives"],
      [["--langs-from", "other"], "--langs-from"],
      [["--margin", "abc"], "--margin"],
      [["--relative-margin", "1.5"], "--relative-margin"],
      [["--seed", "-1"], "--seed"],
    ] as [string[], string][]
  ) {
    const r = await cli(...base, ...args);
    equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    ok(r.stderr.includes(flag), `${args.join(" ")}: ${r.stderr}`);
  }
  const r = await cli("mine", "--train", "t.jsonl", "--out", "o.jsonl");
  equal(r.code, 2);
  ok(r.stderr.includes("--model"), r.stderr);
});
