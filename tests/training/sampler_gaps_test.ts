/**
 * Sampler cases the mutation runner (`deno task mutants`) found untested: lang-sim weights read
 * at a column that differs from the passage language's place among the item's other languages,
 * and a language with exactly `batchSize` items taking part in X-X batches.
 * @module
 */
import { deepEqual, ok } from "node:assert/strict";
import { loadQaData, type QaDataset } from "../../training/data.ts";
import { BatchSampler, type SamplerOptions } from "../../training/sampler.ts";

const pairs = await loadQaData(
  new URL("../fixtures/xlmr-tiny/pairs.jsonl", import.meta.url).pathname,
);

/** |k − n·p| within 4.5 binomial standard deviations. */
function assertBinomial(k: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  ok(Math.abs(k - n * p) <= 4.5 * sd + 1, `${what}: ${k} of ${n}, expected ${n * p} ± ${4.5 * sd}`);
}

Deno.test("lang-sim reads each passage language's weight from its own column of the matrix", () => {
  // Every item has ar de en hi zh. For query en the other languages are [ar, de, hi, zh], so zh
  // is 4th there but column 4 of the matrix; for query ar, hi is 3rd among [de, en, hi, zh] but
  // column 3. Preferring exactly those pairs tells the two indexings apart.
  deepEqual(pairs.languages, ["ar", "de", "en", "hi", "zh"]);
  const L = pairs.languages;
  const sim = L.map((q) =>
    L.map((p) => ((q === "en" && p === "zh") || (q === "ar" && p === "hi") ? 1 : 0))
  );
  const opts: SamplerOptions = {
    kind: "lang-sim",
    batchSize: 6,
    seed: 29,
    alpha: 0,
    similarity: sim,
    similarityTemperature: 0.25,
  };
  const s = new BatchSampler(pairs, opts);
  const byQuery = new Map<string, string[]>();
  for (let i = 0; i < 600; i++) {
    for (const p of s.next().pairs) {
      if (!byQuery.has(p.queryLang)) byQuery.set(p.queryLang, []);
      byQuery.get(p.queryLang)!.push(p.passageLang);
    }
  }
  // softmax over four other languages, one with logit 1 / 0.25 = 4, the rest 0.
  const pBest = Math.exp(4) / (Math.exp(4) + 3);
  for (const [q, best] of [["en", "zh"], ["ar", "hi"]]) {
    const got = byQuery.get(q)!;
    assertBinomial(got.filter((l) => l === best).length, got.length, pBest, `${q}→${best}`);
  }
  // A query language whose row is all zeros stays uniform over its other languages.
  const de = byQuery.get("de")!;
  assertBinomial(de.filter((l) => l === "zh").length, de.length, 0.25, "de→zh (uniform)");
});

Deno.test("a language with exactly batchSize items is used for X-X batches, not skipped", () => {
  // de has exactly 4 items, the batch size.
  const items = Array.from({ length: 20 }, (_, i) => {
    const ls = i < 4 ? ["de", "en"] : ["en"];
    return {
      id: `id${i}`,
      question: Object.fromEntries(ls.map((l) => [l, `q${i}${l}`])),
      answer: Object.fromEntries(ls.map((l) => [l, `a${i}${l}`])),
    };
  });
  const data: QaDataset = { items, languages: ["de", "en"], source: "test" };
  const warnings: string[] = [];
  const s = new BatchSampler(data, {
    kind: "xx",
    batchSize: 4,
    seed: 3,
    warn: (m) => warnings.push(m),
  });
  deepEqual(warnings, []);
  const langs = Array.from({ length: 200 }, () => s.next().pairs[0].queryLang);
  const de = langs.filter((l) => l === "de").length;
  assertBinomial(de, langs.length, 0.5, "X-X batches in de");
  // Such a batch holds all four de items.
  const s2 = new BatchSampler(data, { kind: "xx", batchSize: 4, seed: 3, warn: () => {} });
  for (let i = 0; i < 50; i++) {
    const b = s2.next();
    if (b.pairs[0].queryLang !== "de") continue;
    deepEqual(b.pairs.map((p) => p.id).sort(), ["id0", "id1", "id2", "id3"]);
  }
});
