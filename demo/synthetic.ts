/**
 * A deterministic synthetic multilingual parallel QA corpus for the demo: small enough for a tiny
 * transformer to learn in a few hundred steps, hard enough cross-lingually that an untrained model
 * is far from perfect.
 *
 * Construction:
 * - Concepts (nouns, verbs, adjectives, places) are shared by all languages. Each language writes a
 *   content word as a stem plus a part-of-speech suffix (`stem` + `suffix`, 4–8 letters); stems
 *   use letters that suffixes never start with, so the split is unambiguous.
 * - Languages come in groups of two ("related"): the second member reuses the first one's stem for
 *   about half of the concepts, with its own suffixes and function words. Groups use different
 *   scripts (Latin, Greek, Cyrillic, then Latin again with fresh stems) and different word orders
 *   (SVO, SOV, VSO), so distant languages share no piece at all.
 * - The second member of every group but the first is low-resource: it appears in only a fraction
 *   (`lowResourceFraction`, 0.2) of the training items. Test questions exist in every language.
 * - A paragraph is `sentencesPerParagraph` facts about a topic noun (subject, verb, object, place,
 *   optional adjectives and a second clause), with distinct verbs and places. A question asks for
 *   the object (what), the place (where) or the subject (who) of one fact and repeats the fact's
 *   other content words; the answer sentence is that fact, the other sentences are distractors.
 * - Training ids are `train-NNNNNN`, test ids `test-NNNNNN`: disjoint. Lexicon, training and test
 *   set draw from three generators split off the seed, so the test set does not depend on `items`.
 * @module
 */
import type { QaItem } from "../training/data.ts";
import { writeQaJsonl } from "../training/data.ts";
import { Random } from "../training/random.ts";

/** Options of {@linkcode buildSyntheticCorpus}. */
export interface SyntheticOptions {
  seed: number;
  /** Training questions. */
  items: number;
  /** Number of languages, 2–12; default 6 (three related pairs, two of them low-resource). */
  languages?: number;
  /** Sentences per paragraph, 2–8; default 4. */
  sentencesPerParagraph?: number;
  /** Held-out test questions; default max(10, round(items / 5)). */
  testItems?: number;
  /** Share of training items that carry a low-resource language; default 0.2. */
  lowResourceFraction?: number;
}

/** A synthetic language and where it stands. */
export interface SyntheticLanguage {
  code: string;
  group: string;
  resource: "high" | "low";
  relatedTo?: string;
}

/** The corpus: training items, LAReQA-format test files, languages and a covering vocabulary. */
export interface SyntheticCorpus {
  train: QaItem[];
  /** One LAReQA/XQuAD-R-format file per language (SQuAD v1.1 + sentences + sentence_breaks). */
  test: { lang: string; json: unknown }[];
  languages: SyntheticLanguage[];
  /**
   * SentencePiece-style unigram pieces with log-probability scores, best first: `▁stem`, suffixes,
   * `▁function-word`, punctuation, and every letter alone and with `▁`, so no text is unknown.
   * Special tokens (`<s>`, `<pad>`, `</s>`, `<unk>`) are left to the tokenizer builder.
   */
  vocabulary: [string, number][];
}

interface Script {
  name: string;
  /** Letters of stems and function words (consonants). */
  stem: string;
  vowels: string;
  /** Letters that start suffixes and never occur in stems. */
  suffix: string;
}

const SCRIPTS: Script[] = [
  { name: "latin", stem: "bdfgklmnprstvz", vowels: "aeiou", suffix: "hjwxy" },
  { name: "greek", stem: "βγδθκλμνπρστφ", vowels: "αεηιουω", suffix: "ζξχψ" },
  { name: "cyrillic", stem: "бвгдзклмнпрстф", vowels: "аеиоуыэ", suffix: "жшщцч" },
];
const GROUPS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
const ORDERS = ["svo", "sov", "vso"] as const;
type Order = typeof ORDERS[number];

type Pos = "noun" | "verb" | "adj" | "place";
const CONCEPTS: [Pos, number][] = [["noun", 100], ["verb", 40], ["adj", 40], ["place", 30]];
const FUNCTION_WORDS = ["what", "where", "who", "in", "and"] as const;
type FunctionWord = typeof FUNCTION_WORDS[number];

interface Lang extends SyntheticLanguage {
  script: Script;
  order: Order;
  /** Stem per concept id. */
  stems: string[];
  suffix: Record<Pos, string>;
  fw: Record<FunctionWord, string>;
}

interface Fact {
  subj: number;
  subjAdj: number | null;
  verb: number;
  obj: number;
  objAdj: number | null;
  place: number;
  extra: { verb: number; obj: number } | null;
}

type Asked = "what" | "where" | "who";

/** Concept ids by part of speech. */
function conceptTable(): { pos: Pos[]; byPos: Record<Pos, number[]> } {
  const pos: Pos[] = [];
  const byPos: Record<Pos, number[]> = { noun: [], verb: [], adj: [], place: [] };
  for (const [p, n] of CONCEPTS) {
    for (let i = 0; i < n; i++) {
      byPos[p].push(pos.length);
      pos.push(p);
    }
  }
  return { pos, byPos };
}

function makeLanguages(count: number, rng: Random, pos: Pos[]): Lang[] {
  const used = new Map<string, Set<string>>(); // per script: stems and function words taken
  const usedSuffix = new Map<string, Set<string>>();
  const fresh = (script: Script, patterns: string[]): string => {
    const taken = used.get(script.name) ?? used.set(script.name, new Set()).get(script.name)!;
    for (;;) {
      const pattern = rng.pick(patterns);
      let w = "";
      for (const ch of pattern) w += rng.pick([...(ch === "C" ? script.stem : script.vowels)]);
      if (!taken.has(w)) {
        taken.add(w);
        return w;
      }
    }
  };
  const freshSuffix = (script: Script): string => {
    const taken = usedSuffix.get(script.name) ??
      usedSuffix.set(script.name, new Set()).get(script.name)!;
    for (;;) {
      let s = rng.pick([...script.suffix]) + rng.pick([...script.vowels]);
      if (rng.bernoulli(0.4)) s += rng.pick([...script.stem]);
      if (!taken.has(s)) {
        taken.add(s);
        return s;
      }
    }
  };
  const stemPatterns = ["CV", "CVC", "CVC", "CVCV", "CVCV", "CVCVC", "CVCVC"];
  const langs: Lang[] = [];
  for (let g = 0; g * 2 < count; g++) {
    const script = SCRIPTS[g % SCRIPTS.length];
    const order = ORDERS[g % ORDERS.length];
    const members = Math.min(2, count - 2 * g);
    for (let m = 0; m < members; m++) {
      const code = `q${String.fromCharCode(97 + g)}${String.fromCharCode(97 + m)}`;
      const first = m === 1 ? langs[langs.length - 1] : null;
      const stems = pos.map((_, c) =>
        first && rng.bernoulli(0.5) ? first.stems[c] : fresh(script, stemPatterns)
      );
      const suffix = {
        noun: freshSuffix(script),
        verb: freshSuffix(script),
        adj: freshSuffix(script),
      } as Record<Pos, string>;
      suffix.place = suffix.noun;
      const fw = Object.fromEntries(
        FUNCTION_WORDS.map((f) => [f, fresh(script, ["CV", "CVC"])]),
      ) as Record<FunctionWord, string>;
      const lang: Lang = {
        code,
        group: GROUPS[g] ?? `group${g}`,
        resource: m === 1 && g > 0 ? "low" : "high",
        script,
        order,
        stems,
        suffix,
        fw,
      };
      if (first) {
        lang.relatedTo = first.code;
        first.relatedTo = code;
      }
      langs.push(lang);
    }
  }
  return langs;
}

/** A sentence: words plus the word index of each slot a question can ask for. */
interface Rendered {
  words: string[];
  slots: Record<Asked, number>;
}

function word(lang: Lang, pos: Pos[], c: number): string {
  return lang.stems[c] + lang.suffix[pos[c]];
}

/** Renders a fact (or its question when `asked` is given) in `lang`'s word order. */
function render(lang: Lang, pos: Pos[], f: Fact, asked: Asked | null): Rendered {
  const w = (c: number) => word(lang, pos, c);
  const adjFirst = lang.order === "svo";
  const np = (noun: number, adj: number | null) =>
    adj === null ? [w(noun)] : adjFirst ? [w(adj), w(noun)] : [w(noun), w(adj)];
  type Part = { slot?: Asked; words: string[] };
  const subj: Part = { slot: "who", words: np(f.subj, f.subjAdj) };
  const obj: Part = { slot: "what", words: np(f.obj, f.objAdj) };
  const verb: Part = { words: [w(f.verb)] };
  const place: Part = {
    slot: "where",
    words: lang.order === "sov" ? [w(f.place), lang.fw.in] : [lang.fw.in, w(f.place)],
  };
  let parts: Part[] = lang.order === "svo"
    ? [subj, verb, obj, place]
    : lang.order === "sov"
    ? [subj, obj, place, verb]
    : [verb, subj, obj, place];
  if (asked === null && f.extra) {
    const v2 = w(f.extra.verb), o2 = w(f.extra.obj);
    parts.push({
      words: lang.order === "sov" ? [lang.fw.and, o2, v2] : [lang.fw.and, v2, o2],
    });
  }
  if (asked !== null) {
    parts = parts.filter((p) => p.slot !== asked);
    const q: Part = { words: [lang.fw[asked]] };
    parts = lang.order === "sov" ? [...parts, q] : [q, ...parts];
  }
  const words: string[] = [];
  const slots = {} as Record<Asked, number>;
  for (const p of parts) {
    // The slot's answer word is the noun (place: the place, not the preposition).
    if (p.slot) {
      const head = p.slot === "where" ? w(f.place) : p.slot === "who" ? w(f.subj) : w(f.obj);
      slots[p.slot] = words.length + p.words.indexOf(head);
    }
    words.push(...p.words);
  }
  return { words, slots };
}

interface Paragraph {
  facts: Fact[];
  questions: { sentence: number; asked: Asked }[];
}

function makeParagraph(
  rng: Random,
  byPos: Record<Pos, number[]>,
  sentences: number,
  questions: number,
): Paragraph {
  const nouns = byPos.noun;
  const topic = rng.pick(nouns);
  const verbs = rng.shuffle([...byPos.verb]);
  const places = rng.shuffle([...byPos.place]).slice(0, sentences);
  const mainVerbs = verbs.slice(0, sentences);
  const otherVerbs = verbs.slice(sentences);
  const adj = () => (rng.bernoulli(0.4) ? rng.pick(byPos.adj) : null);
  const facts: Fact[] = [];
  for (let s = 0; s < sentences; s++) {
    const subj = rng.bernoulli(0.6) ? topic : rng.pick(nouns);
    let obj = rng.pick(nouns);
    while (obj === subj) obj = rng.pick(nouns);
    facts.push({
      subj,
      subjAdj: adj(),
      verb: mainVerbs[s],
      obj,
      objAdj: adj(),
      place: places[s],
      extra: rng.bernoulli(0.3) ? { verb: rng.pick(otherVerbs), obj: rng.pick(nouns) } : null,
    });
  }
  const picked = rng.shuffle([...Array(sentences).keys()]).slice(0, questions).sort((a, b) =>
    a - b
  );
  const asks: Asked[] = ["what", "where", "who"];
  return { facts, questions: picked.map((sentence) => ({ sentence, asked: rng.pick(asks) })) };
}

function sentenceText(r: Rendered, end: string): string {
  return r.words.join(" ") + end;
}

/**
 * Builds the corpus; the same options give the same corpus, byte for byte.
 *
 * @example
 * ```ts
 * import { buildSyntheticCorpus } from "./synthetic.ts";
 * const corpus = buildSyntheticCorpus({ seed: 1, items: 40 });
 * console.log(corpus.languages.map((l) => l.code)); // ["qaa", "qab", "qba", "qbb", "qca", "qcb"]
 * console.log(corpus.train.length, corpus.test.length); // 40 6
 * ```
 */
export function buildSyntheticCorpus(opts: SyntheticOptions): SyntheticCorpus {
  const nLangs = opts.languages ?? 6;
  const perPara = opts.sentencesPerParagraph ?? 4;
  const testItems = opts.testItems ?? Math.max(10, Math.round(opts.items / 5));
  const lowFraction = opts.lowResourceFraction ?? 0.2;
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`buildSyntheticCorpus: ${what}`);
  };
  check(Number.isSafeInteger(opts.seed), `seed must be a safe integer, got ${opts.seed}`);
  check(Number.isInteger(opts.items) && opts.items >= 1, `items must be >= 1, got ${opts.items}`);
  check(Number.isInteger(nLangs) && nLangs >= 2 && nLangs <= 12, `languages in 2..12: ${nLangs}`);
  check(Number.isInteger(perPara) && perPara >= 2 && perPara <= 8, `sentencesPerParagraph 2..8`);
  check(Number.isInteger(testItems) && testItems >= 1, `testItems must be >= 1`);
  check(lowFraction > 0 && lowFraction <= 1, `lowResourceFraction in (0, 1]`);

  const root = new Random(opts.seed);
  const lexRng = new Random(root.u32());
  const trainRng = new Random(root.u32());
  const testRng = new Random(root.u32());
  const { pos, byPos } = conceptTable();
  const langs = makeLanguages(nLangs, lexRng, pos);
  const questionsPerPara = Math.min(2, perPara);

  const counts = new Map<string, number>();
  const count = (piece: string) => counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const countText = (lang: Lang, r: Rendered, end: string) => {
    const fws = new Set(Object.values(lang.fw));
    for (const w of r.words) {
      if (fws.has(w)) count("▁" + w);
      else {
        const cut = [...w].findIndex((ch) => lang.script.suffix.includes(ch));
        count("▁" + w.slice(0, cut));
        count(w.slice(cut));
      }
    }
    count(end);
  };

  // Training items: paragraphs of facts, two questions each.
  const train: QaItem[] = [];
  while (train.length < opts.items) {
    const para = makeParagraph(trainRng, byPos, perPara, questionsPerPara);
    const present = langs.filter((l) => l.resource === "high" || trainRng.bernoulli(lowFraction));
    const sentences = new Map(present.map((l) => {
      const rs = para.facts.map((f) => render(l, pos, f, null));
      rs.forEach((r) => countText(l, r, "."));
      return [l.code, rs.map((r) => sentenceText(r, "."))];
    }));
    for (const q of para.questions) {
      if (train.length >= opts.items) break;
      const item: QaItem = {
        id: `train-${String(train.length).padStart(6, "0")}`,
        question: {},
        answer: {},
        negatives: {},
      };
      for (const l of present) {
        const r = render(l, pos, para.facts[q.sentence], q.asked);
        countText(l, r, "?");
        item.question[l.code] = sentenceText(r, "?");
        const ss = sentences.get(l.code)!;
        item.answer[l.code] = ss[q.sentence];
        item.negatives![l.code] = ss.filter((_, j) => j !== q.sentence);
      }
      train.push(item);
    }
  }

  // Test set: the same paragraphs and ids in every language, LAReQA layout.
  const testParas: Paragraph[] = [];
  for (let n = 0; n < testItems; n += questionsPerPara) {
    testParas.push(
      makeParagraph(testRng, byPos, perPara, Math.min(questionsPerPara, testItems - n)),
    );
  }
  const test = langs.map((l) => {
    const articles: { title: string; paragraphs: unknown[] }[] = [];
    let qid = 0;
    testParas.forEach((para, p) => {
      if (p % 5 === 0) articles.push({ title: `synthetic-${p / 5}`, paragraphs: [] });
      const rendered = para.facts.map((f) => render(l, pos, f, null));
      const breaks: [number, number][] = [];
      const starts: number[][] = []; // per sentence: offset of each word in the context
      let context = "";
      rendered.forEach((r, i) => {
        countText(l, r, ".");
        if (i > 0) context += " ";
        const begin = context.length;
        const offs: number[] = [];
        r.words.forEach((w, k) => {
          if (k > 0) context += " ";
          offs.push(context.length);
          context += w;
        });
        context += ".";
        breaks.push([begin, context.length]);
        starts.push(offs);
      });
      const qas = para.questions.map((q) => {
        const r = render(l, pos, para.facts[q.sentence], q.asked);
        countText(l, r, "?");
        const k = rendered[q.sentence].slots[q.asked];
        return {
          id: `test-${String(qid++).padStart(6, "0")}`,
          question: sentenceText(r, "?"),
          answers: [{ answer_start: starts[q.sentence][k], text: rendered[q.sentence].words[k] }],
        };
      });
      articles[articles.length - 1].paragraphs.push({
        context,
        qas,
        sentences: breaks.map(([s, e]) => context.slice(s, e)),
        sentence_breaks: breaks,
      });
    });
    return { lang: l.code, json: { version: "1.1", data: articles } };
  });

  return {
    train,
    test,
    languages: langs.map(({ code, group, resource, relatedTo }) =>
      relatedTo ? { code, group, resource, relatedTo } : { code, group, resource }
    ),
    vocabulary: buildVocabulary(langs, counts),
  };
}

/** Pieces with log-probability scores from their counts; letters rank below every word piece. */
function buildVocabulary(langs: Lang[], counts: Map<string, number>): [string, number][] {
  const pieces = new Map<string, number>();
  for (const l of langs) {
    for (const s of l.stems) pieces.set("▁" + s, 0);
    for (const s of Object.values(l.suffix)) pieces.set(s, 0);
    for (const f of Object.values(l.fw)) pieces.set("▁" + f, 0);
  }
  pieces.set(".", 0);
  pieces.set("?", 0);
  for (const [p, c] of counts) pieces.set(p, c);
  let total = 0;
  for (const c of pieces.values()) total += c + 0.5;
  const scored: [string, number][] = [...pieces].map(([p, c]) => [p, Math.log((c + 0.5) / total)]);
  const floor = Math.log(0.5 / total) - 2;
  const letters = new Set<string>();
  for (const l of langs) {
    for (const ch of l.script.stem + l.script.vowels + l.script.suffix) {
      letters.add(ch);
    }
  }
  for (const ch of [...letters].sort()) {
    if (!pieces.has(ch)) scored.push([ch, floor]);
    if (!pieces.has("▁" + ch)) scored.push(["▁" + ch, floor - 1]);
  }
  scored.push(["▁", floor - 2]);
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  return scored.map(([p, s]): [string, number] => [p, round(s)]).sort((a, b) =>
    b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  );
}

/**
 * Writes `train.jsonl`, `test/<lang>.json` (LAReQA format) and `groups.json` (`{group: [langs]}`)
 * under `dir` (created if needed) and returns their paths.
 *
 * @example
 * ```ts
 * import { buildSyntheticCorpus, writeSyntheticCorpus } from "./synthetic.ts";
 * const dir = await Deno.makeTempDir();
 * const paths = await writeSyntheticCorpus(dir, buildSyntheticCorpus({ seed: 1, items: 20 }));
 * console.log(paths.trainJsonl); // `${dir}/train.jsonl`
 * ```
 */
export async function writeSyntheticCorpus(
  dir: string,
  corpus: SyntheticCorpus,
): Promise<{ trainJsonl: string; testDir: string; groupsJson: string }> {
  const base = dir.replace(/\/+$/, "");
  const testDir = `${base}/test`;
  await Deno.mkdir(testDir, { recursive: true });
  const trainJsonl = `${base}/train.jsonl`;
  await writeQaJsonl(trainJsonl, corpus.train);
  for (const { lang, json } of corpus.test) {
    await Deno.writeTextFile(`${testDir}/${lang}.json`, JSON.stringify(json));
  }
  const groups: Record<string, string[]> = {};
  for (const l of corpus.languages) (groups[l.group] ??= []).push(l.code);
  const groupsJson = `${base}/groups.json`;
  await Deno.writeTextFile(groupsJson, JSON.stringify(groups, null, 2) + "\n");
  return { trainJsonl, testDir, groupsJson };
}
