import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import { buildSyntheticCorpus, writeSyntheticCorpus } from "../../demo/synthetic.ts";
import { loadQaData } from "../../training/data.ts";
import { BatchSampler } from "../../training/sampler.ts";

const corpus = buildSyntheticCorpus({ seed: 7, items: 400 });
const codes = corpus.languages.map((l) => l.code);

/** Best-score segmentation of one word ("▁" + word) over the vocabulary; null if impossible. */
function segment(word: string, scores: Map<string, number>, maxLen: number): string[] | null {
  const chars = [..."▁" + word];
  const best: { score: number; from: number }[] = [{ score: 0, from: -1 }];
  for (let end = 1; end <= chars.length; end++) {
    best[end] = { score: -Infinity, from: -1 };
    for (let start = Math.max(0, end - maxLen); start < end; start++) {
      const s = scores.get(chars.slice(start, end).join(""));
      if (s !== undefined && best[start].score + s > best[end].score) {
        best[end] = { score: best[start].score + s, from: start };
      }
    }
  }
  if (best[chars.length].from < 0) return null;
  const out: string[] = [];
  for (let end = chars.length; end > 0; end = best[end].from) {
    out.unshift(chars.slice(best[end].from, end).join(""));
  }
  return out;
}

const scores = new Map(corpus.vocabulary);
const maxLen = Math.max(...corpus.vocabulary.map(([p]) => [...p].length));
const tokenize = (text: string) =>
  text.replace(/([.?])/g, " $1").split(/\s+/).filter(Boolean).flatMap((w) =>
    /^[.?]$/.test(w) ? [w] : segment(w, scores, maxLen)!
  );

interface Para {
  context: string;
  sentences: string[];
  qas: { id: string; question: string; answers: { answer_start: number; text: string }[] }[];
  sentence_breaks: [number, number][];
}
const testParas = (lang: string): Para[] =>
  (corpus.test.find((t) => t.lang === lang)!.json as { data: { paragraphs: Para[] }[] }).data
    .flatMap((a) => a.paragraphs);

Deno.test("the synthetic corpus is deterministic for a seed", () => {
  const again = buildSyntheticCorpus({ seed: 7, items: 400 });
  equal(JSON.stringify(again), JSON.stringify(corpus));
  notDeepEqual(buildSyntheticCorpus({ seed: 8, items: 400 }).train, corpus.train);
  // The test set does not depend on the number of training items.
  deepEqual(buildSyntheticCorpus({ seed: 7, items: 50, testItems: 80 }).test, corpus.test);
});

Deno.test("six languages in three related pairs, two of them low-resource", () => {
  deepEqual(corpus.languages, [
    { code: "qaa", group: "alpha", resource: "high", relatedTo: "qab" },
    { code: "qab", group: "alpha", resource: "high", relatedTo: "qaa" },
    { code: "qba", group: "beta", resource: "high", relatedTo: "qbb" },
    { code: "qbb", group: "beta", resource: "low", relatedTo: "qba" },
    { code: "qca", group: "gamma", resource: "high", relatedTo: "qcb" },
    { code: "qcb", group: "gamma", resource: "low", relatedTo: "qca" },
  ]);
  equal(corpus.train.length, 400);
  for (const l of corpus.languages) {
    const n = corpus.train.filter((it) => l.code in it.answer).length;
    if (l.resource === "high") equal(n, 400, l.code);
    else ok(n > 40 && n < 130, `${l.code}: ${n} of 400 items (expected about 20%)`);
  }
  const three = buildSyntheticCorpus({ seed: 1, items: 10, languages: 3 }).languages;
  deepEqual(three.map((l) => [l.code, l.resource, l.relatedTo]), [
    ["qaa", "high", "qab"],
    ["qab", "high", "qaa"],
    ["qba", "high", undefined],
  ]);
  throws(() => buildSyntheticCorpus({ seed: 1, items: 10, languages: 1 }), /languages in 2\.\.12/);
  throws(() => buildSyntheticCorpus({ seed: 1, items: 0 }), /items must be >= 1/);
});

Deno.test("items are linked by id, test ids are disjoint from training, every test id is in every language", () => {
  const trainIds = new Set(corpus.train.map((it) => it.id));
  equal(trainIds.size, corpus.train.length);
  for (const it of corpus.train) {
    deepEqual(Object.keys(it.question), Object.keys(it.answer));
    deepEqual(Object.keys(it.negatives!), Object.keys(it.answer));
    for (const l of Object.keys(it.answer)) {
      equal(it.negatives![l].length, 3);
      ok(!it.negatives![l].includes(it.answer[l]));
    }
  }
  const idsOf = (lang: string) => testParas(lang).flatMap((p) => p.qas.map((q) => q.id));
  const testIds = idsOf("qaa");
  equal(testIds.length, 80);
  for (const c of codes) deepEqual(idsOf(c), testIds);
  ok(testIds.every((id) => !trainIds.has(id)));
});

Deno.test("words, sentences and vocabulary stay small, and the vocabulary covers every word", () => {
  ok(corpus.vocabulary.length < 3000, `${corpus.vocabulary.length} pieces`);
  equal(new Set(corpus.vocabulary.map(([p]) => p)).size, corpus.vocabulary.length);
  ok(corpus.vocabulary.every(([, s], i) => s < 0 && (i === 0 || s <= corpus.vocabulary[i - 1][1])));
  const texts = corpus.train.flatMap((
    it,
  ) => [...Object.values(it.answer), ...Object.values(it.negatives!).flat()]);
  for (const c of codes) texts.push(...testParas(c).flatMap((p) => p.sentences));
  for (const t of texts) {
    const words = t.slice(0, -1).split(" ");
    ok(words.length >= 5 && words.length <= 15, `${words.length} words: ${t}`);
    for (const w of words) ok([...w].length >= 2 && [...w].length <= 8, `word "${w}"`);
  }
  for (const t of [...texts, ...corpus.train.flatMap((it) => Object.values(it.question))]) {
    for (const w of t.split(/[ .?]+/).filter(Boolean)) {
      const seg = segment(w, scores, maxLen);
      ok(seg && seg.length <= 2, `"${w}" segments into ${seg}`);
    }
  }
});

Deno.test("related languages share about half their stems, distant ones share no piece", () => {
  const piecesOf = (lang: string) => {
    const out = new Set<string>();
    for (const it of corpus.train) {
      if (lang in it.answer) tokenize(it.answer[lang]).forEach((p) => out.add(p));
    }
    out.delete(".");
    return out;
  };
  const sets = new Map(codes.map((c) => [c, piecesOf(c)]));
  const overlap = (a: string, b: string) => {
    const x = sets.get(a)!, y = sets.get(b)!;
    return [...x].filter((p) => y.has(p)).length / Math.min(x.size, y.size);
  };
  for (const [a, b] of [["qaa", "qab"], ["qba", "qbb"], ["qca", "qcb"]]) {
    const o = overlap(a, b);
    ok(o > 0.3 && o < 0.7, `${a}/${b} share ${o}`);
  }
  for (const [a, b] of [["qaa", "qba"], ["qaa", "qcb"], ["qbb", "qca"]]) {
    equal(overlap(a, b), 0, `${a}/${b}`);
  }
});

/** Precision@1 of bag-of-pieces cosine retrieval from `ql` questions to all `pl` test sentences. */
function lexicalP1(ql: string, pl: string): number {
  const vec = (t: string) => {
    const m = new Map<string, number>();
    for (const p of tokenize(t)) if (p !== "." && p !== "?") m.set(p, (m.get(p) ?? 0) + 1);
    return m;
  };
  const cos = (a: Map<string, number>, b: Map<string, number>) => {
    let d = 0, na = 0, nb = 0;
    for (const [k, v] of a) (d += v * (b.get(k) ?? 0)), (na += v * v);
    for (const v of b.values()) nb += v * v;
    return d / Math.sqrt(na * nb || 1);
  };
  const cands: { id: Set<string>; v: Map<string, number> }[] = [];
  for (const para of testParas(pl)) {
    para.sentences.forEach((s, i) => {
      const [b0, b1] = para.sentence_breaks[i];
      const ids = new Set(
        para.qas.filter((q) => b0 <= q.answers[0].answer_start && q.answers[0].answer_start < b1)
          .map((q) => q.id),
      );
      cands.push({ id: ids, v: vec(s) });
    });
  }
  let hits = 0, n = 0;
  for (const para of testParas(ql)) {
    for (const q of para.qas) {
      const qv = vec(q.question);
      let best = -1, arg = 0;
      cands.forEach((c, k) => {
        const s = cos(qv, c.v);
        if (s > best) (best = s), (arg = k);
      });
      hits += cands[arg].id.has(q.id) ? 1 : 0;
      n++;
    }
  }
  return hits / n;
}

Deno.test("word overlap solves monolingual retrieval but not distant cross-lingual retrieval", () => {
  const mono = codes.map((c) => lexicalP1(c, c));
  const related = lexicalP1("qaa", "qab");
  const distant = lexicalP1("qaa", "qba");
  ok(mono.every((p) => p > 0.85), `mono P@1 ${mono}`);
  ok(related > distant + 0.2 && related < mono[0], `related ${related}, mono ${mono[0]}`);
  ok(distant < 0.1, `distant P@1 ${distant}`);
});

Deno.test("the written files load with the QA loader and work with the sampler", async () => {
  const dir = await Deno.makeTempDir();
  const paths = await writeSyntheticCorpus(`${dir}/corpus`, corpus);
  equal(paths.trainJsonl, `${dir}/corpus/train.jsonl`);
  const train = await loadQaData(paths.trainJsonl);
  deepEqual(train.items, corpus.train);
  deepEqual(train.languages, codes);
  const test = await loadQaData(paths.testDir);
  equal(test.items.length, 80);
  deepEqual(test.languages, codes);
  for (const it of test.items) {
    equal(Object.keys(it.answer).length, 6);
    for (const l of codes) equal(it.negatives![l].length, 3);
  }
  // The loader's answer sentence holds the SQuAD answer text.
  const para = testParas("qba")[3];
  const q = para.qas[0];
  const loaded = test.items.find((it) => it.id === q.id)!;
  equal(loaded.question.qba, q.question);
  ok(loaded.answer.qba.includes(q.answers[0].text));
  equal(para.context.slice(q.answers[0].answer_start).indexOf(q.answers[0].text), 0);
  deepEqual(JSON.parse(await Deno.readTextFile(paths.groupsJson)), {
    alpha: ["qaa", "qab"],
    beta: ["qba", "qbb"],
    gamma: ["qca", "qcb"],
  });
  const s = new BatchSampler(train, { kind: "hybrid", batchSize: 16, seed: 1 });
  for (let i = 0; i < 50; i++) equal(new Set(s.next().pairs.map((p) => p.id)).size, 16);
});
