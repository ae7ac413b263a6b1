import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import { loadQaData, type QaDataset } from "../../training/data.ts";
import {
  alphaAt,
  type Batch,
  batchFromJson,
  BatchSampler,
  batchToJson,
  parseAlphaSchedule,
  type SamplerOptions,
  similarityFromGroups,
  similarityFromJson,
} from "../../training/sampler.ts";

const fixture = (p: string) => new URL(`../fixtures/${p}`, import.meta.url).pathname;
const pairs = await loadQaData(fixture("xlmr-tiny/pairs.jsonl"));
const LANGS = pairs.languages; // ar de en hi zh

/** `n` items; item i has the languages `langsOf(i)`. */
function dataset(n: number, langsOf: (i: number) => string[]): QaDataset {
  const items = Array.from({ length: n }, (_, i) => {
    const ls = langsOf(i);
    return {
      id: `id${i}`,
      question: Object.fromEntries(ls.map((l) => [l, `q${i}${l}`])),
      answer: Object.fromEntries(ls.map((l) => [l, `a${i}${l}`])),
    };
  });
  const languages = [...new Set(items.flatMap((it) => Object.keys(it.question)))].sort();
  return { items, languages, source: "test" };
}

function take(s: BatchSampler, n: number): Batch[] {
  return Array.from({ length: n }, () => s.next());
}

function checkBatch(b: Batch, data: QaDataset, size: number): void {
  equal(b.pairs.length, size);
  equal(new Set(b.pairs.map((p) => p.id)).size, size, `step ${b.step}: an id twice`);
  for (const p of b.pairs) {
    const item = data.items[p.itemIndex];
    equal(item.id, p.id);
    ok(p.queryLang in item.question && p.passageLang in item.answer);
    if (b.kind === "xx") equal(p.queryLang, p.passageLang);
    else ok(p.queryLang !== p.passageLang, `step ${b.step}: xy pair in one language`);
  }
  if (b.kind === "xx") equal(new Set(b.pairs.map((p) => p.queryLang)).size, 1);
}

/** |k − n·p| within 4.5 binomial standard deviations. */
function assertBinomial(k: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  ok(Math.abs(k - n * p) <= 4.5 * sd + 1, `${what}: ${k} of ${n}, expected ${n * p} ± ${4.5 * sd}`);
}

Deno.test("xx batches hold one language each, drawn uniformly, with unique ids", () => {
  const s = new BatchSampler(pairs, { kind: "xx", batchSize: 6, seed: 3 });
  const batches = take(s, 500);
  const perLang = new Map<string, number>();
  for (const b of batches) {
    equal(b.kind, "xx");
    checkBatch(b, pairs, 6);
    perLang.set(b.pairs[0].queryLang, (perLang.get(b.pairs[0].queryLang) ?? 0) + 1);
  }
  for (const l of LANGS) assertBinomial(perLang.get(l) ?? 0, 500, 1 / 5, `xx language ${l}`);
});

Deno.test("xy pairs always cross languages and cover the ordered pairs uniformly", () => {
  const s = new BatchSampler(pairs, { kind: "xy", batchSize: 8, seed: 4 });
  const counts = new Map<string, number>();
  for (const b of take(s, 500)) {
    equal(b.kind, "xy");
    checkBatch(b, pairs, 8);
    for (const p of b.pairs) {
      const k = `${p.queryLang}-${p.passageLang}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  equal(counts.size, 20);
  for (const [k, c] of counts) assertBinomial(c, 4000, 1 / 20, `xy pair ${k}`);
});

Deno.test("xy only pairs languages an item actually has", () => {
  // Items alternate between {en, de} and {en, fr, es}.
  const data = dataset(40, (i) => (i % 2 ? ["de", "en"] : ["en", "es", "fr"]));
  const s = new BatchSampler(data, { kind: "hybrid", batchSize: 5, seed: 9, alpha: 0.3 });
  for (const b of take(s, 300)) checkBatch(b, data, 5);
});

Deno.test("hybrid makes xx batches with probability alpha", () => {
  for (const alpha of [0.2, 0.5, 0.9]) {
    const s = new BatchSampler(pairs, { kind: "hybrid", batchSize: 4, seed: 11, alpha });
    const batches = take(s, 2000);
    batches.forEach((b) => checkBatch(b, pairs, 4));
    assertBinomial(batches.filter((b) => b.kind === "xx").length, 2000, alpha, `alpha ${alpha}`);
  }
  const def = take(new BatchSampler(pairs, { kind: "hybrid", batchSize: 4, seed: 1 }), 2000);
  assertBinomial(def.filter((b) => b.kind === "xx").length, 2000, 0.5, "default alpha");
});

Deno.test("an alpha schedule moves the xx fraction over time", () => {
  const schedule = { kind: "linear" as const, from: 0.9, to: 0.1, steps: 2000 };
  const s = new BatchSampler(pairs, {
    kind: "hybrid",
    batchSize: 4,
    seed: 5,
    alphaSchedule: schedule,
  });
  const batches = take(s, 2000);
  const early = batches.slice(0, 400).filter((b) => b.kind === "xx").length;
  const late = batches.slice(1600).filter((b) => b.kind === "xx").length;
  ok(early > 300 && late < 100, `xx early ${early}/400, late ${late}/400`);
  equal(s.alpha(1), 0.9);
  ok(Math.abs(s.alpha(2000) - 0.1) < 1e-12);
  equal(alphaAt(schedule, 5000), 0.1);
});

Deno.test("the same seed gives the same batches and another seed other batches", () => {
  for (const kind of ["xx", "xy", "hybrid", "lang-sim"] as const) {
    const a = take(new BatchSampler(pairs, { kind, batchSize: 6, seed: 21 }), 50);
    const b = take(new BatchSampler(pairs, { kind, batchSize: 6, seed: 21 }), 50);
    const c = take(new BatchSampler(pairs, { kind, batchSize: 6, seed: 22 }), 50);
    deepEqual(a, b, kind);
    notDeepEqual(a, c, kind);
  }
});

Deno.test("state() and restore() continue identically, similarity included", () => {
  const sim = LANGS.map((_a, i) => LANGS.map((_, j) => (i === j ? 1 : (i + j) % 3 / 3)));
  for (const kind of ["xx", "xy", "hybrid", "lang-sim"] as const) {
    const opts: SamplerOptions = { kind, batchSize: 7, seed: 8, alpha: 0.4 };
    const s = new BatchSampler(pairs, opts);
    take(s, 37);
    if (kind === "lang-sim") s.setSimilarity(sim);
    const saved = JSON.parse(JSON.stringify(s.state()));
    const r = BatchSampler.restore(pairs, opts, saved);
    deepEqual(take(r, 60), take(s, 60), kind);
    if (kind === "lang-sim") deepEqual(r.similarity, sim);
  }
  const s = new BatchSampler(pairs, { kind: "hybrid", batchSize: 7, seed: 8 });
  throws(
    () => BatchSampler.restore(pairs, { kind: "hybrid", batchSize: 7, seed: 9 }, s.state()),
    /other data or options/,
  );
  throws(
    () => BatchSampler.restore(pairs, { kind: "hybrid", batchSize: 7, seed: 8 }, {}),
    /not a sampler state/,
  );
});

Deno.test("items are consumed epoch-wise without replacement, also across the epoch boundary", () => {
  const one = dataset(12, () => ["en"]);
  const s = new BatchSampler(one, { kind: "xx", batchSize: 4, seed: 2 });
  const ids = take(s, 3).flatMap((b) => b.pairs.map((p) => p.id));
  equal(new Set(ids).size, 12);
  // 10 items, batches of 4: batch 3 straddles two epochs; after 5 batches each item came twice.
  const ten = dataset(10, () => ["de", "en"]);
  for (const kind of ["xx", "xy"] as const) {
    for (let seed = 0; seed < 20; seed++) {
      const langs = kind === "xx" ? ["en"] : undefined;
      const t = new BatchSampler(ten, { kind, batchSize: 4, seed, langs });
      const counts = new Map<string, number>();
      for (const b of take(t, 5)) {
        checkBatch(b, ten, 4);
        for (const p of b.pairs) counts.set(p.id, (counts.get(p.id) ?? 0) + 1);
      }
      deepEqual([...counts.values()], Array(10).fill(2), `${kind} seed ${seed}`);
    }
  }
  equal(new BatchSampler(ten, { kind: "xy", batchSize: 4, seed: 1 }).epochSize(), 3);
  equal(new BatchSampler(pairs, { kind: "hybrid", batchSize: 6, seed: 1 }).epochSize(), 20);
});

Deno.test("lang-sim prefers the passage languages most similar to the query language", () => {
  // en is close to de, far from the rest; everything else is uniform.
  const sim = LANGS.map((a) => LANGS.map((b) => ((a === "en" && b === "de") ? 1 : 0)));
  const opts: SamplerOptions = {
    kind: "lang-sim",
    batchSize: 6,
    seed: 13,
    alpha: 0,
    similarity: sim,
    similarityTemperature: 0.25,
  };
  const passageOfEn = (s: BatchSampler, n: number) => {
    const out: string[] = [];
    for (const b of take(s, n)) {
      checkBatch(b, pairs, 6);
      for (const p of b.pairs) if (p.queryLang === "en") out.push(p.passageLang);
    }
    return out;
  };
  const sims = passageOfEn(new BatchSampler(pairs, opts), 500);
  // P(de | en) = e^4 / (e^4 + 3) ≈ 0.948.
  const pDe = Math.exp(4) / (Math.exp(4) + 3);
  assertBinomial(sims.filter((l) => l === "de").length, sims.length, pDe, "lang-sim en→de");
  const plain = passageOfEn(new BatchSampler(pairs, { ...opts, kind: "hybrid" }), 500);
  assertBinomial(plain.filter((l) => l === "de").length, plain.length, 0.25, "hybrid en→de");
  // A negative temperature prefers distant languages; no matrix means uniform.
  const far = passageOfEn(new BatchSampler(pairs, { ...opts, similarityTemperature: -0.25 }), 500);
  assertBinomial(
    far.filter((l) => l === "de").length,
    far.length,
    1 / (3 * Math.exp(4) + 1),
    "far",
  );
  const none = passageOfEn(new BatchSampler(pairs, { ...opts, similarity: undefined }), 500);
  assertBinomial(none.filter((l) => l === "de").length, none.length, 0.25, "uniform");
  // setSimilarity refreshes the weights mid-run.
  const s = new BatchSampler(pairs, { ...opts, similarity: undefined });
  take(s, 10);
  s.setSimilarity(sim);
  const after = passageOfEn(s, 300);
  assertBinomial(after.filter((l) => l === "de").length, after.length, pDe, "after refresh");
  throws(
    () => s.setSimilarity([[1, 2], [3, 4]]),
    /expected a finite 5×5 matrix for \[ar, de, en, hi, zh\]/,
  );
});

Deno.test("bad sizes and language sets fail with the counts, thin languages are skipped with a warning", () => {
  throws(
    () => new BatchSampler(pairs, { kind: "xx", batchSize: 121, seed: 1 }),
    /batch size 121 is larger than the 120 items/,
  );
  // de has only 3 items.
  const data = dataset(20, (i) => (i < 3 ? ["de", "en"] : ["en"]));
  const warnings: string[] = [];
  const s = new BatchSampler(data, {
    kind: "xx",
    batchSize: 4,
    seed: 1,
    warn: (m) => warnings.push(m),
  });
  equal(warnings.length, 1);
  ok(
    /skipping language "de" for X-X batches: 3 items < batch size 4/.test(warnings[0]),
    warnings[0],
  );
  for (const b of take(s, 50)) equal(b.pairs[0].queryLang, "en");
  const twoLangs = dataset(6, (i) => (i < 3 ? ["de"] : ["en"]));
  throws(
    () => new BatchSampler(twoLangs, { kind: "xx", batchSize: 4, seed: 1, warn: () => {} }),
    /no language has batch size 4 items for X-X batches \(de: 3, en: 3\)/,
  );
  throws(
    () => new BatchSampler(twoLangs, { kind: "xx", batchSize: 4, seed: 1, langs: ["de"] }),
    /batch size 4 is larger than the 3 items available in de/,
  );
  throws(
    () => new BatchSampler(dataset(20, () => ["en"]), { kind: "xy", batchSize: 4, seed: 1 }),
    /X-Y batches need at least 2 languages/,
  );
  throws(
    () => new BatchSampler(data, { kind: "xy", batchSize: 4, seed: 1 }),
    /batch size 4 is larger than the 3 items with at least two of the languages de, en/,
  );
  // alpha 1 never needs X-Y batches, so one language is fine.
  new BatchSampler(dataset(20, () => ["en"]), { kind: "hybrid", batchSize: 4, seed: 1, alpha: 1 });
  throws(
    () => new BatchSampler(pairs, { kind: "xx", batchSize: 4, seed: 1, langs: ["fr"] }),
    /"fr" is not in/,
  );
  throws(() => new BatchSampler(pairs, { kind: "hybrid", batchSize: 0, seed: 1 }), /batchSize/);
  throws(
    () => new BatchSampler(pairs, { kind: "hybrid", batchSize: 4, seed: 1, alpha: 2 }),
    /alpha 2/,
  );
  throws(
    () =>
      new BatchSampler(pairs, {
        kind: "hybrid",
        batchSize: 4,
        seed: 1,
        alphaSchedule: parseAlphaSchedule("0.8:0.2"),
      }),
    /--alpha-schedule: linear schedule needs steps >= 1/,
  );
});

Deno.test("parseAlphaSchedule reads constant and linear specs and names the flag on errors", () => {
  deepEqual(parseAlphaSchedule("0.5"), { kind: "constant", alpha: 0.5 });
  deepEqual(parseAlphaSchedule("constant:0.3"), { kind: "constant", alpha: 0.3 });
  deepEqual(parseAlphaSchedule("0.8:0.2"), { kind: "linear", from: 0.8, to: 0.2, steps: 0 });
  deepEqual(parseAlphaSchedule("linear:0.8:0.2"), { kind: "linear", from: 0.8, to: 0.2, steps: 0 });
  deepEqual(parseAlphaSchedule("linear:0:1:300"), { kind: "linear", from: 0, to: 1, steps: 300 });
  for (
    const bad of [
      "",
      "x",
      "1.5",
      "0.8:",
      "0.8:0.2:0.1",
      "linear:0.5",
      "constant:0.1:0.2",
      "linear:1:0:2.5",
    ]
  ) {
    throws(() => parseAlphaSchedule(bad), /--alpha-schedule/, bad);
  }
  const s = { kind: "linear" as const, from: 1, to: 0, steps: 11 };
  deepEqual([1, 6, 11, 20].map((t) => alphaAt(s, t)), [1, 0.5, 0, 0]);
});

Deno.test("batchToJson writes the train log format of the fixture batches", async () => {
  const lines = (await Deno.readTextFile(fixture("xlmr-tiny/batches.jsonl")))
    .trim().split("\n").map((l) => JSON.parse(l));
  equal(lines.length, 4);
  for (const line of lines) {
    const batch = batchFromJson(line, pairs);
    checkBatch(batch, pairs, 6);
    deepEqual(batchToJson(batch), line);
    equal(JSON.stringify(batchToJson(batch)), JSON.stringify(line));
  }
  const ours = batchToJson(
    new BatchSampler(pairs, { kind: "hybrid", batchSize: 6, seed: 1 }).next(),
  );
  deepEqual(Object.keys(ours), Object.keys(lines[0]));
  deepEqual(Object.keys(ours.pairs[0]), Object.keys(lines[0].pairs[0]));
  throws(
    () => batchFromJson({ ...lines[0], pairs: [lines[0].pairs[0], lines[0].pairs[0]] }, pairs),
    /twice/,
  );
  throws(
    () => batchFromJson({ step: 1, kind: "xx", pairs: [{ id: "nope" }] }, pairs),
    /"nope" not in data/,
  );
});

Deno.test("the seeded generator restores its state and draws unbiased integers", async () => {
  const { Random } = await import("../../training/random.ts");
  const r = new Random(123);
  r.float();
  const saved = JSON.parse(JSON.stringify(r.state()));
  const a = Array.from({ length: 20 }, () => r.u32());
  const b = Random.restore(saved);
  deepEqual(Array.from({ length: 20 }, () => b.u32()), a);
  notDeepEqual(new Random(-1).state(), new Random(2 ** 32 - 1).state());
  notDeepEqual(new Random(2 ** 40).state(), new Random(0).state());
  const counts = [0, 0, 0];
  for (let i = 0; i < 30000; i++) counts[r.int(3)]++;
  for (const c of counts) assertBinomial(c, 30000, 1 / 3, "int(3)");
  for (let i = 0; i < 1000; i++) {
    const x = r.float();
    ok(x >= 0 && x < 1);
  }
  throws(() => Random.restore({ sfc32: [1, 2, 3] }), /expected/);
});

Deno.test("similarity files and language groups become matrices in the sampler's language order", () => {
  const langs = ["de", "en", "fr"];
  const nested = { en: { de: 0.9, fr: 0.1 }, de: { en: 0.8, fr: 0.2 }, fr: { en: 0.3, de: 0.4 } };
  deepEqual(similarityFromJson(nested, langs), [[0, 0.8, 0.2], [0.9, 0, 0.1], [0.4, 0.3, 0]]);
  const flat = { langs: ["fr", "en", "de"], matrix: [[1, 0.3, 0.4], [0.1, 1, 0.9], [0.2, 0.8, 1]] };
  deepEqual(similarityFromJson(flat, langs), [[1, 0.8, 0.2], [0.9, 1, 0.1], [0.4, 0.3, 1]]);
  throws(() => similarityFromJson({ en: { de: 1 } }, ["de", "en"]), /no finite weight for de → en/);
  throws(() => similarityFromJson({ langs: ["a"], matrix: [[1, 2]] }, ["a"]), /1×1/);
  deepEqual(similarityFromGroups({ x: ["en", "de"], y: ["fr"] }, langs), [[1, 1, 0], [1, 1, 0], [
    0,
    0,
    1,
  ]]);
  throws(() => similarityFromGroups({ x: ["en"] }, ["en", "zz"]), /"zz" is in no group/);
});
