/**
 * Loader for LAReQA-format retrieval sets (XQuAD-R, MLQA-R): one SQuAD v1.1 JSON per language,
 * `<lang>.json`, whose paragraphs carry `sentence_breaks` (and `sentences`).
 *
 * A candidate is a sentence, identified by (language, paragraph, sentence index); its text is the
 * context slice `context[start:end]`. The offsets count Unicode code points (the files were made
 * in Python), not UTF-16 units, so contexts with astral characters are sliced by code point. The
 * relevant candidates of a question are the sentences holding an answer start, in every language
 * that has a question with the same `id`.
 * @module
 */
import { readTextStrict } from "../util/text_file.ts";

/** Options shared by {@linkcode loadLareqa} and `evaluateLareqa`. */
export interface LareqaOptions {
  /** Languages to use, in this order (default: every `<lang>.json` of the folder, alphabetical). */
  langs?: string[];
  /**
   * Keep only the first N question ids, in file order of the first language of `langs`, and in
   * every language only the paragraphs holding one of them (all their sentences stay candidates).
   */
  limitQuestions?: number;
  /** Candidate text: the sentence alone, or the pair (sentence, paragraph context). */
  candidate?: "sentence" | "sentence+context";
  /** Candidates per GPU block when ranking (results do not depend on it). */
  blockSize?: number;
  /** Progress and warning messages. */
  onProgress?: (msg: string) => void;
}

/** One sentence of a paragraph, offsets in code points. */
export interface LareqaSentence {
  start: number;
  end: number;
  /** `context[start:end]`. */
  text: string;
}

/** A paragraph of one language file. */
export interface LareqaParagraph {
  /** Position of the paragraph in its file (articles flattened). */
  index: number;
  context: string;
  sentences: LareqaSentence[];
}

/** A question with at least one answer sentence. */
export interface LareqaQuestion {
  id: string;
  text: string;
  /** Index into its language's `paragraphs`. */
  paragraph: number;
  /** Sentence indices (within the paragraph) that hold an answer start, ascending. */
  answers: number[];
}

/** Everything loaded from one `<lang>.json`. */
export interface LareqaLanguage {
  lang: string;
  file: string;
  paragraphs: LareqaParagraph[];
  /** In file order. */
  questions: LareqaQuestion[];
}

/** A loaded set: languages in evaluation order. */
export interface LareqaSet {
  /** Folder name, e.g. `xquad-r`. */
  dataset: string;
  dir: string;
  languages: string[];
  byLanguage: Record<string, LareqaLanguage>;
  /** Problems that were skipped (questions without an answer sentence, duplicate ids, …). */
  warnings: string[];
}

/** A candidate sentence of one language, in candidate order (paragraph, then sentence). */
export interface LareqaCandidate {
  /** Index into the language's `paragraphs`. */
  paragraph: number;
  sentence: number;
  text: string;
  context: string;
}

/**
 * Loads `<lang>.json` for every language of `opts.langs` (default: all, alphabetical) from `dir`
 * and applies `opts.limitQuestions`. Missing or malformed files throw an error naming the file;
 * questions whose answer lies in no sentence and duplicate ids are skipped with a warning (in
 * `set.warnings` and through `opts.onProgress`).
 *
 * @example
 * ```ts
 * import { loadLareqa } from "./lareqa.ts";
 * const dir = await Deno.makeTempDir();
 * const context = "One. Two.";
 * const paragraph = {
 *   context,
 *   sentences: ["One.", "Two."],
 *   sentence_breaks: [[0, 4], [5, 9]],
 *   qas: [{ id: "q1", question: "Second?", answers: [{ answer_start: 5, text: "Two" }] }],
 * };
 * await Deno.writeTextFile(`${dir}/en.json`, JSON.stringify({ data: [{ paragraphs: [paragraph] }] }));
 * const set = await loadLareqa(dir);
 * console.log(set.languages, set.byLanguage.en.questions[0].answers); // ["en"] [1]
 * ```
 */
export async function loadLareqa(dir: string, opts: LareqaOptions = {}): Promise<LareqaSet> {
  const available = await listLanguages(dir);
  const langs = opts.langs ?? available;
  checkLangs(langs, available, dir);
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.onProgress?.(`warning: ${msg}`);
  };
  const byLanguage: Record<string, LareqaLanguage> = {};
  for (const lang of langs) {
    const file = joinPath(dir, `${lang}.json`);
    let text: string;
    try {
      text = await readTextStrict(file);
    } catch (e) {
      throw new Error(`loadLareqa: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SyntaxError(`loadLareqa: ${file} is not valid JSON: ${(e as Error).message}`);
    }
    byLanguage[lang] = parseLanguage(lang, file, json, warn);
    opts.onProgress?.(
      `loaded ${file}: ${byLanguage[lang].questions.length} questions, ` +
        `${candidateCount(byLanguage[lang])} candidates`,
    );
  }
  const name = dir.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || dir;
  const full: LareqaSet = { dataset: name, dir, languages: [...langs], byLanguage, warnings };
  return selectLareqa(full, { ...opts, langs });
}

/**
 * A subset of a loaded set: `opts.langs` (in that order, default the set's) and
 * `opts.limitQuestions` (see {@linkcode LareqaOptions}). Languages left without questions are
 * dropped with a warning. Selecting twice with the same options changes nothing.
 *
 * @example
 * ```ts
 * import { type LareqaSet, selectLareqa } from "./lareqa.ts";
 * const lang = { lang: "en", file: "en.json", paragraphs: [], questions: [] };
 * const set: LareqaSet = { dataset: "x", dir: "x", languages: ["en"], byLanguage: { en: lang },
 *   warnings: [] };
 * try {
 *   selectLareqa(set, { langs: ["de"] });
 * } catch (e) {
 *   console.log((e as Error).message); // LAReQA x: no language de; available: en
 * }
 * ```
 */
export function selectLareqa(set: LareqaSet, opts: LareqaOptions = {}): LareqaSet {
  const langs = opts.langs ?? set.languages;
  checkLangs(langs, set.languages, set.dir);
  const warnings = [...set.warnings];
  let keep: Set<string> | null = null;
  if (opts.limitQuestions !== undefined) {
    const n = opts.limitQuestions;
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`selectLareqa: limitQuestions must be a positive integer, got ${n}`);
    }
    keep = new Set();
    for (const q of set.byLanguage[langs[0]].questions) {
      if (keep.size >= n) break;
      keep.add(q.id);
    }
  }
  const byLanguage: Record<string, LareqaLanguage> = {};
  const languages: string[] = [];
  for (const lang of langs) {
    const src = set.byLanguage[lang];
    let out = src;
    if (keep) {
      const held = new Set(src.questions.filter((q) => keep.has(q.id)).map((q) => q.paragraph));
      const remap = new Map<number, number>();
      const paragraphs = src.paragraphs.filter((_, i) => {
        if (!held.has(i)) return false;
        remap.set(i, remap.size);
        return true;
      });
      const questions = src.questions.filter((q) => keep.has(q.id)).map((q) => ({
        ...q,
        paragraph: remap.get(q.paragraph)!,
      }));
      out = { ...src, paragraphs, questions };
    }
    if (out.questions.length === 0) {
      const msg = `${src.file}: no questions${keep ? " among the kept ids" : ""}; ` +
        `language ${lang} left out`;
      if (!warnings.includes(msg)) warnings.push(msg);
      opts.onProgress?.(`warning: ${msg}`);
      continue;
    }
    byLanguage[lang] = out;
    languages.push(lang);
  }
  if (languages.length === 0) {
    throw new RangeError(`selectLareqa: no language of ${set.dir} has questions`);
  }
  return { ...set, languages, byLanguage, warnings };
}

/**
 * The candidates of one language in candidate order (paragraph, then sentence).
 *
 * @example
 * ```ts
 * import { lareqaCandidates } from "./lareqa.ts";
 * const lang = { lang: "en", file: "en.json", questions: [], paragraphs: [{ index: 0,
 *   context: "A. B.", sentences: [{ start: 0, end: 2, text: "A." }, { start: 3, end: 5, text: "B." }] }] };
 * console.log(lareqaCandidates(lang).map((c) => c.text)); // ["A.", "B."]
 * ```
 */
export function lareqaCandidates(lang: LareqaLanguage): LareqaCandidate[] {
  const out: LareqaCandidate[] = [];
  lang.paragraphs.forEach((p, pi) => {
    p.sentences.forEach((s, si) =>
      out.push({ paragraph: pi, sentence: si, text: s.text, context: p.context })
    );
  });
  return out;
}

/**
 * Index of each paragraph's first candidate within its language (length = paragraphs + 1).
 *
 * @example
 * ```ts
 * import { paragraphOffsets } from "./lareqa.ts";
 * const s = { start: 0, end: 1, text: "a" };
 * const lang = { lang: "en", file: "en.json", questions: [], paragraphs: [
 *   { index: 0, context: "a", sentences: [s] }, { index: 1, context: "a", sentences: [s, s] }] };
 * console.log(paragraphOffsets(lang)); // [0, 1, 3]
 * ```
 */
export function paragraphOffsets(lang: LareqaLanguage): number[] {
  const out = [0];
  for (const p of lang.paragraphs) out.push(out[out.length - 1] + p.sentences.length);
  return out;
}

/** Number of candidate sentences of a language. */
function candidateCount(lang: LareqaLanguage): number {
  return lang.paragraphs.reduce((n, p) => n + p.sentences.length, 0);
}

async function listLanguages(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = /^(.+)\.json$/.exec(e.name);
      if (m && (e.isFile || e.isSymlink)) out.push(m[1]);
    }
  } catch (e) {
    throw new Error(`loadLareqa: cannot list ${dir}: ${(e as Error).message}`);
  }
  if (out.length === 0) throw new Error(`loadLareqa: no <lang>.json file in ${dir}`);
  return out.sort();
}

function checkLangs(langs: string[], available: string[], dir: string): void {
  if (langs.length === 0) throw new RangeError(`LAReQA ${dir}: langs is empty`);
  const missing = langs.filter((l) => !available.includes(l));
  if (missing.length > 0) {
    throw new RangeError(
      `LAReQA ${dir}: no language ${missing.join(", ")}; available: ${available.join(", ")}`,
    );
  }
  const seen = new Set<string>();
  for (const l of langs) {
    if (seen.has(l)) throw new RangeError(`LAReQA ${dir}: language ${l} listed twice`);
    seen.add(l);
  }
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** Slices a string by code point offsets (Python str indices). */
function codePointSlicer(s: string): { length: number; slice: (a: number, b: number) => string } {
  if (!/[\uD800-\uDFFF]/.test(s)) return { length: s.length, slice: (a, b) => s.slice(a, b) };
  const units: number[] = []; // UTF-16 offset of each code point, plus the end
  for (let i = 0; i < s.length; i++) {
    units.push(i);
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) i++;
    }
  }
  units.push(s.length);
  return { length: units.length - 1, slice: (a, b) => s.slice(units[a], units[b]) };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function parseLanguage(
  lang: string,
  file: string,
  json: unknown,
  warn: (msg: string) => void,
): LareqaLanguage {
  const bad = (where: string, what: string): never => {
    throw new TypeError(`loadLareqa: ${file}: ${where}: ${what}`);
  };
  if (!isRecord(json) || !Array.isArray(json.data)) bad("top level", 'expected {"data": [...]}');
  const data = (json as { data: unknown[] }).data;
  const paragraphs: LareqaParagraph[] = [];
  const questions: LareqaQuestion[] = [];
  const seen = new Set<string>();
  data.forEach((article, ai) => {
    if (!isRecord(article) || !Array.isArray(article.paragraphs)) {
      bad(`data[${ai}]`, "expected an object with a paragraphs array");
    }
    (article as { paragraphs: unknown[] }).paragraphs.forEach((para, pi) => {
      const where = `data[${ai}].paragraphs[${pi}]`;
      if (!isRecord(para)) bad(where, "expected an object");
      const p = para as Record<string, unknown>;
      if (typeof p.context !== "string") bad(where, "context must be a string");
      if (!Array.isArray(p.sentence_breaks)) bad(where, "sentence_breaks must be an array");
      if (!Array.isArray(p.qas)) bad(where, "qas must be an array");
      const context = p.context as string;
      const cps = codePointSlicer(context);
      const sentences = (p.sentence_breaks as unknown[]).map((b, si) => {
        if (
          !Array.isArray(b) || b.length !== 2 || !Number.isInteger(b[0]) ||
          !Number.isInteger(b[1]) || b[0] < 0 || b[0] > b[1] || b[1] > cps.length
        ) {
          bad(
            `${where}.sentence_breaks[${si}]`,
            `expected [start, end] within the context (${cps.length} code points), got ` +
              JSON.stringify(b),
          );
        }
        const [start, end] = b as [number, number];
        return { start, end, text: cps.slice(start, end) };
      });
      const index = paragraphs.length;
      paragraphs.push({ index, context, sentences });
      (p.qas as unknown[]).forEach((qa, qi) => {
        const qwhere = `${where}.qas[${qi}]`;
        if (!isRecord(qa) || typeof qa.id !== "string" || typeof qa.question !== "string") {
          bad(qwhere, "expected {id: string, question: string, answers: [...]}");
        }
        const q = qa as { id: string; question: string; answers?: unknown };
        if (!Array.isArray(q.answers) || q.answers.length === 0) {
          warn(`${file}: question ${q.id} has no answers; skipped`);
          return;
        }
        const answers = new Set<number>();
        for (const a of q.answers) {
          const start = isRecord(a) ? a.answer_start : undefined;
          if (!Number.isInteger(start)) bad(qwhere, "answer_start must be an integer");
          const si = sentences.findIndex((s) =>
            s.start <= (start as number) &&
            (start as number) < s.end
          );
          if (si >= 0) answers.add(si);
        }
        if (answers.size === 0) {
          warn(`${file}: question ${q.id}: answer start lies in no sentence; skipped`);
          return;
        }
        if (seen.has(q.id)) {
          warn(`${file}: duplicate question id ${q.id}; later copy skipped`);
          return;
        }
        seen.add(q.id);
        questions.push({
          id: q.id,
          text: q.question,
          paragraph: index,
          answers: [...answers].sort((a, b) => a - b),
        });
      });
    });
  });
  return { lang, file, paragraphs, questions };
}
