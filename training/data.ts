/**
 * Parallel question–answer training data: a JSONL file of items linked across languages, or a
 * LAReQA/SQuAD-format directory (one `<lang>.json` per language, as XQuAD-R and MLQA-R ship).
 *
 * An item keeps a language only when it has both the question and the answer in it: a question
 * without its answer (or the reverse) is dropped silently for that language, so
 * `Object.keys(item.question)` and `Object.keys(item.answer)` are always the same set.
 * @module
 */

/** One question with its answer sentence in one or more languages, linked by `id`. */
export interface QaItem {
  id: string;
  question: Record<string, string>;
  answer: Record<string, string>;
  /** Hard negatives per language: other sentences that do not answer the question. */
  negatives?: Record<string, string[]>;
}

/** Items plus the sorted list of languages that occur in them. */
export interface QaDataset {
  items: QaItem[];
  /** Sorted language codes with at least one item. */
  languages: string[];
  /** The file or directory the items came from. */
  source: string;
}

const ASTRAL = /[\uD800-\uDFFF]/;

// Strict reading lives in the bottom layer so that eval/ loaders use it without importing training/.
export { jsonlLines, MAX_LINE_CHARS, readTextStrict } from "../util/text_file.ts";
import { jsonlLines, readTextStrict } from "../util/text_file.ts";

/**
 * `s[start:end]` with Python's code-point offsets (SQuAD's `answer_start` and LAReQA's
 * `sentence_breaks` count code points, JavaScript strings count UTF-16 units).
 *
 * @example
 * ```ts
 * import { codePointSlice } from "./data.ts";
 * codePointSlice("a😀b c", 2, 3); // "b"
 * ```
 */
export function codePointSlice(s: string, start: number, end: number): string {
  if (!ASTRAL.test(s)) return s.slice(start, end);
  return Array.from(s).slice(start, end).join("");
}

function codePointLength(s: string): number {
  if (!ASTRAL.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function checkTexts(x: unknown, field: string, where: string): Record<string, string> {
  if (!isRecord(x)) throw new TypeError(`${where}: "${field}" must be an object {lang: text}`);
  const out: Record<string, string> = {};
  if (Object.keys(x).length === 0) throw new TypeError(`${where}: "${field}" has no language`);
  for (const [lang, text] of Object.entries(x)) {
    if (lang.trim() === "") throw new TypeError(`${where}: "${field}" has an empty language code`);
    if (typeof text !== "string") {
      throw new TypeError(`${where}: "${field}.${lang}" must be a string, got ${typeof text}`);
    }
    if (text.trim() === "") throw new TypeError(`${where}: "${field}.${lang}" is empty`);
    out[lang] = text;
  }
  return out;
}

function checkNegatives(x: unknown, where: string): Record<string, string[]> {
  if (!isRecord(x)) throw new TypeError(`${where}: "negatives" must be an object {lang: [texts]}`);
  const out: Record<string, string[]> = {};
  for (const [lang, list] of Object.entries(x)) {
    if (lang.trim() === "") throw new TypeError(`${where}: "negatives" has an empty language code`);
    if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
      throw new TypeError(`${where}: "negatives.${lang}" must be an array of strings`);
    }
    out[lang] = list as string[];
  }
  return out;
}

/** Keeps the languages with both texts (and in `langs` if given); null when none is left. */
function restrict(item: QaItem, langs: Set<string> | null): QaItem | null {
  const question: Record<string, string> = {};
  const answer: Record<string, string> = {};
  for (const lang of Object.keys(item.question).sort()) {
    if (lang in item.answer && (!langs || langs.has(lang))) {
      question[lang] = item.question[lang];
      answer[lang] = item.answer[lang];
    }
  }
  if (Object.keys(question).length === 0) return null;
  const out: QaItem = { id: item.id, question, answer };
  if (item.negatives) {
    const negatives: Record<string, string[]> = {};
    for (const lang of Object.keys(item.negatives).sort()) {
      if (lang in question) negatives[lang] = item.negatives[lang];
    }
    if (Object.keys(negatives).length > 0) out.negatives = negatives;
  }
  return out;
}

function finish(source: string, raw: QaItem[], langs?: string[]): QaDataset {
  const wanted = langs ? new Set(langs) : null;
  const items: QaItem[] = [];
  const counts = new Map<string, number>();
  for (const item of raw) {
    const kept = restrict(item, wanted);
    if (!kept) continue;
    items.push(kept);
    for (const lang of Object.keys(kept.question)) counts.set(lang, (counts.get(lang) ?? 0) + 1);
  }
  for (const lang of langs ?? []) {
    if (!counts.has(lang)) {
      throw new RangeError(
        `${source}: language "${lang}" has no item with both question and answer ` +
          `(languages present: ${[...counts.keys()].sort().join(", ") || "none"})`,
      );
    }
  }
  if (items.length === 0) throw new RangeError(`${source}: no usable items`);
  return { items, languages: [...counts.keys()].sort(), source };
}

function parseJsonl(path: string, text: string): QaItem[] {
  const items: QaItem[] = [];
  const seen = new Map<string, number>();
  const lines = jsonlLines(text, path);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new SyntaxError(`${where}: not JSON (${(e as Error).message})`);
    }
    if (!isRecord(obj)) throw new TypeError(`${where}: expected an object per line`);
    for (const field of ["id", "question", "answer"]) {
      if (!(field in obj)) throw new TypeError(`${where}: missing "${field}"`);
    }
    const rawId = obj.id;
    if (!(typeof rawId === "string" && rawId !== "") && !Number.isSafeInteger(rawId)) {
      throw new TypeError(`${where}: "id" must be a non-empty string or an integer`);
    }
    const id = String(rawId);
    const first = seen.get(id);
    if (first !== undefined) {
      throw new RangeError(`${where}: duplicate id "${id}" (first on line ${first})`);
    }
    seen.set(id, i + 1);
    const item: QaItem = {
      id,
      question: checkTexts(obj.question, "question", where),
      answer: checkTexts(obj.answer, "answer", where),
    };
    if (obj.negatives !== undefined) item.negatives = checkNegatives(obj.negatives, where);
    items.push(item);
  }
  if (items.length === 0) throw new RangeError(`${path}: empty file (no JSONL items)`);
  return items;
}

interface LareqaQuestion {
  id: string;
  question: string;
  answer: string;
  negatives: string[];
}

/** Reads one LAReQA-format language file into its questions with answer sentences. */
function parseLareqa(file: string, json: unknown): LareqaQuestion[] {
  if (!isRecord(json) || !Array.isArray(json.data)) {
    throw new TypeError(`${file}: expected SQuAD v1.1 JSON with a "data" array`);
  }
  const out: LareqaQuestion[] = [];
  const seen = new Set<string>();
  for (const [a, article] of json.data.entries()) {
    if (!isRecord(article) || !Array.isArray(article.paragraphs)) {
      throw new TypeError(`${file}: data[${a}] has no "paragraphs" array`);
    }
    for (const [p, para] of article.paragraphs.entries()) {
      const at = `${file}: data[${a}].paragraphs[${p}]`;
      if (!isRecord(para) || typeof para.context !== "string" || !Array.isArray(para.qas)) {
        throw new TypeError(`${at}: needs "context" (string) and "qas" (array)`);
      }
      const breaks = para.sentence_breaks;
      const n = codePointLength(para.context);
      if (
        !Array.isArray(breaks) ||
        !breaks.every((b) =>
          Array.isArray(b) && b.length === 2 && Number.isInteger(b[0]) && Number.isInteger(b[1]) &&
          0 <= b[0] && b[0] <= b[1] && b[1] <= n
        )
      ) {
        throw new TypeError(
          `${at}: "sentence_breaks" must be [[start, end], ...] within the context (${n} chars)`,
        );
      }
      const sentences = (breaks as [number, number][]).map(([s, e]) =>
        codePointSlice(para.context as string, s, e)
      );
      for (const qa of para.qas) {
        const id = isRecord(qa) && (typeof qa.id === "string" || Number.isSafeInteger(qa.id))
          ? String(qa.id)
          : null;
        if (id === null) throw new TypeError(`${at}: a question has no string "id"`);
        const where = `${file}: id ${id}`;
        if (seen.has(id)) throw new RangeError(`${where}: duplicate id`);
        seen.add(id);
        const q = qa as Record<string, unknown>;
        if (typeof q.question !== "string" || q.question.trim() === "") {
          throw new TypeError(`${where}: "question" must be a non-empty string`);
        }
        const ans = Array.isArray(q.answers) ? q.answers[0] : undefined;
        if (!isRecord(ans) || !Number.isInteger(ans.answer_start)) {
          throw new TypeError(`${where}: needs "answers": [{"answer_start": int, ...}]`);
        }
        const start = ans.answer_start as number;
        const i = (breaks as [number, number][]).findIndex(([s, e]) => s <= start && start < e);
        if (i < 0) {
          throw new RangeError(`${where}: answer_start ${start} is in no sentence_breaks span`);
        }
        out.push({
          id,
          question: q.question,
          answer: sentences[i],
          negatives: sentences.filter((_, j) => j !== i),
        });
      }
    }
  }
  if (out.length === 0) throw new RangeError(`${file}: no questions`);
  return out;
}

async function loadDir(dir: string, langs?: string[]): Promise<QaDataset> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    // Symlinked files count (a Hugging Face cache snapshot is all symlinks).
    if ((entry.isFile || entry.isSymlink) && entry.name.endsWith(".json")) files.push(entry.name);
  }
  files.sort();
  const available = files.map((f) => f.slice(0, -".json".length));
  for (const lang of langs ?? []) {
    if (!available.includes(lang)) {
      throw new RangeError(
        `${dir}: no ${lang}.json for language "${lang}" (found: ${available.join(", ") || "none"})`,
      );
    }
  }
  const byId = new Map<string, QaItem>();
  for (const lang of available) {
    if (langs && !langs.includes(lang)) continue;
    const file = `${dir.replace(/\/+$/, "")}/${lang}.json`;
    let json: unknown;
    try {
      json = JSON.parse(await readTextStrict(file));
    } catch (e) {
      if (e instanceof TypeError) throw e; // invalid UTF-8, already names the file
      throw new SyntaxError(`${file}: not JSON (${(e as Error).message})`);
    }
    for (const q of parseLareqa(file, json)) {
      let item = byId.get(q.id);
      if (!item) byId.set(q.id, item = { id: q.id, question: {}, answer: {}, negatives: {} });
      item.question[lang] = q.question;
      item.answer[lang] = q.answer;
      item.negatives![lang] = q.negatives;
    }
  }
  if (byId.size === 0) throw new RangeError(`${dir}: no <lang>.json files`);
  return finish(dir, [...byId.values()], langs);
}

/**
 * Loads parallel QA items from a JSONL file or a LAReQA-format directory.
 *
 * - JSONL: one `{"id", "question": {lang: text}, "answer": {lang: text}, "negatives"?: {lang:
 *   [texts]}}` per line (blank lines skipped; integer ids become strings).
 * - Directory: every `<lang>.json` (SQuAD v1.1 + `sentences` + `sentence_breaks`); questions with
 *   the same `id` are one item; the answer is the context slice of the sentence whose break holds
 *   `answer_start` (code-point offsets), the hard negatives the paragraph's other sentences.
 *   Items keep the order of first appearance, languages read in sorted order.
 *
 * `opts.langs` keeps only those languages (items left with none are dropped); each must have at
 * least one item. Errors name the file and line (JSONL) or file and id (directory).
 *
 * @example
 * ```ts
 * import { loadQaData } from "./data.ts";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * await Deno.writeTextFile(path, '{"id": "q1", "question": {"en": "Who?"}, "answer": {"en": "Me."}}\n');
 * const data = await loadQaData(path);
 * console.log(data.items.length, data.languages); // 1 ["en"]
 * ```
 */
export async function loadQaData(
  pathOrDir: string,
  opts: { langs?: string[] } = {},
): Promise<QaDataset> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(pathOrDir);
  } catch (e) {
    throw new Error(`loadQaData: cannot read ${pathOrDir} (${(e as Error).message})`);
  }
  if (opts.langs && opts.langs.length === 0) {
    throw new RangeError(`loadQaData: ${pathOrDir}: langs is empty`);
  }
  if (info.isDirectory) return await loadDir(pathOrDir, opts.langs);
  const items = parseJsonl(pathOrDir, await readTextStrict(pathOrDir));
  return finish(pathOrDir, items, opts.langs);
}

/**
 * Writes items as JSONL (one item per line, keys `id`, `question`, `answer`, `negatives`).
 *
 * @example
 * ```ts
 * import { loadQaData, writeQaJsonl } from "./data.ts";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * await writeQaJsonl(path, [{ id: "1", question: { en: "Why?" }, answer: { en: "Because." } }]);
 * console.log((await loadQaData(path)).items[0].answer.en); // "Because."
 * ```
 */
export async function writeQaJsonl(path: string, items: QaItem[]): Promise<void> {
  const lines = items.map((it) => {
    const row: QaItem = { id: it.id, question: it.question, answer: it.answer };
    if (it.negatives) row.negatives = it.negatives;
    return JSON.stringify(row);
  });
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}
