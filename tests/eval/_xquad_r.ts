/**
 * The XQuAD-R structure check shared by the default suite (six languages in tests/fixtures) and
 * `deno task test:full` (all eleven in ../shared).
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { lareqaCandidates, loadLareqa } from "../../eval/lareqa.ts";

/** Candidate counts per language, from XQuAD-R's README.lareqa.md. */
export const XQUAD_R_CANDIDATES: Record<string, number> = {
  ar: 1222,
  de: 1276,
  el: 1234,
  en: 1180,
  es: 1215,
  hi: 1244,
  ru: 1219,
  th: 852,
  tr: 1167,
  vi: 1209,
  zh: 1196,
};

/** Loads `dir` and checks languages, question and candidate counts, ids and tr's slices. */
export async function assertXquadR(dir: string, langs: string[]): Promise<void> {
  const set = await loadLareqa(dir);
  deepEqual(set.languages, langs, "all languages, alphabetical");
  deepEqual(set.warnings, []);
  for (const l of set.languages) {
    const lang = set.byLanguage[l];
    equal(lang.questions.length, 1190, `${l} questions`);
    equal(lareqaCandidates(lang).length, XQUAD_R_CANDIDATES[l], `${l} candidates`);
    equal(new Set(lang.questions.map((q) => q.id)).size, 1190, `${l} ids unique`);
  }
  // Every id is in every language (XQuAD-R is 11-way parallel).
  const en = new Set(set.byLanguage.en.questions.map((q) => q.id));
  for (const l of set.languages) ok(set.byLanguage[l].questions.every((q) => en.has(q.id)), l);
  // The candidate text is the context slice; in tr.json two `sentences` entries differ from it.
  const tr = set.byLanguage.tr;
  let differ = 0;
  const raw = JSON.parse(await Deno.readTextFile(`${dir}/tr.json`));
  const rawSentences = raw.data.flatMap((a: { paragraphs: { sentences: string[] }[] }) =>
    a.paragraphs.flatMap((p) => p.sentences)
  );
  lareqaCandidates(tr).forEach((c, i) => {
    if (c.text !== rawSentences[i]) differ++;
    const s = tr.paragraphs[c.paragraph].sentences[c.sentence];
    equal(c.text, [...c.context].slice(s.start, s.end).join(""));
  });
  equal(differ, 2, "tr.json slices that differ from `sentences`");
}
