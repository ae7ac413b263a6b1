/**
 * Loader for the BEIR layout, which MIRACL's per-language folders use too: `corpus.jsonl`
 * (`{"_id", "title", "text"}`; MIRACL's `docid` accepted), `queries.jsonl` (`{"_id", "text"}`;
 * `query_id`/`query` accepted) and `qrels/<split>.tsv` (`query-id corpus-id score` with a header
 * line, or TREC's `qid Q0 docid rel`).
 * @module
 */
import { jsonlLines, readTextStrict } from "../util/text_file.ts";

/** A corpus document. */
export interface BeirDoc {
  id: string;
  title: string;
  text: string;
}

/** A query with its judged documents (corpus index, grade); grades ≤ 0 are not relevant. */
export interface BeirQuery {
  id: string;
  text: string;
  relevant: [number, number][];
}

/** A loaded BEIR set: only queries with at least one judgment are kept. */
export interface BeirSet {
  dataset: string;
  dir: string;
  split: string;
  corpus: BeirDoc[];
  queries: BeirQuery[];
  warnings: string[];
}

/** Options of {@linkcode loadBeir}. */
export interface BeirLoadOptions {
  /** Judgment file `qrels/<split>.tsv` (default: `test`, else `dev`, else the only one). */
  split?: string;
  onProgress?: (msg: string) => void;
}

/**
 * Loads a BEIR/MIRACL folder. Missing or malformed files throw an error naming the file (and
 * line); judgments naming an unknown query or document are skipped with a warning.
 *
 * @example
 * ```ts
 * import { loadBeir } from "./beir.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/corpus.jsonl`, '{"_id": "d1", "title": "", "text": "Paris"}\n');
 * await Deno.writeTextFile(`${dir}/queries.jsonl`, '{"_id": "q1", "text": "capital?"}\n');
 * await Deno.mkdir(`${dir}/qrels`);
 * await Deno.writeTextFile(`${dir}/qrels/test.tsv`, "query-id\tcorpus-id\tscore\nq1\td1\t1\n");
 * const set = await loadBeir(dir);
 * console.log(set.queries[0].relevant); // [[0, 1]]
 * ```
 */
export async function loadBeir(dir: string, opts: BeirLoadOptions = {}): Promise<BeirSet> {
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.onProgress?.(`warning: ${msg}`);
  };
  const base = dir.replace(/[\\/]+$/, "");
  const corpusFile = `${base}/corpus.jsonl`;
  const corpus: BeirDoc[] = [];
  const docIndex = new Map<string, number>();
  for (const [rec, line] of await readJsonl(corpusFile)) {
    const id = pickString(rec, ["_id", "docid", "id"]);
    const text = pickString(rec, ["text", "contents"]);
    if (id === undefined || text === undefined) {
      throw new TypeError(`loadBeir: ${corpusFile}:${line}: expected {"_id", "text"}`);
    }
    if (docIndex.has(id)) {
      warn(`${corpusFile}:${line}: duplicate document id ${id}; later copy skipped`);
      continue;
    }
    docIndex.set(id, corpus.length);
    corpus.push({ id, title: pickString(rec, ["title"]) ?? "", text });
  }
  const queriesFile = `${base}/queries.jsonl`;
  const queryText = new Map<string, string>();
  for (const [rec, line] of await readJsonl(queriesFile)) {
    const id = pickString(rec, ["_id", "query_id", "id"]);
    const text = pickString(rec, ["text", "query"]);
    if (id === undefined || text === undefined) {
      throw new TypeError(`loadBeir: ${queriesFile}:${line}: expected {"_id", "text"}`);
    }
    if (queryText.has(id)) warn(`${queriesFile}:${line}: duplicate query id ${id}; skipped`);
    else queryText.set(id, text);
  }

  const split = opts.split ?? await defaultSplit(`${base}/qrels`);
  const qrelsFile = `${base}/qrels/${split}.tsv`;
  let qrelsText: string;
  try {
    qrelsText = await readTextStrict(qrelsFile);
  } catch (e) {
    throw new Error(`loadBeir: ${(e as Error).message}`);
  }
  const judged = new Map<string, Map<number, number>>();
  jsonlLines(qrelsText, qrelsFile).forEach((raw, i) => {
    const cols = raw.trim().split(/\s+/);
    if (cols.length === 1 && cols[0] === "") return;
    const [qid, did, score] = cols.length === 4 ? [cols[0], cols[2], cols[3]] : cols;
    if ((cols.length !== 3 && cols.length !== 4) || !/^-?\d+(\.\d+)?$/.test(score ?? "")) {
      if (i === 0) return; // header
      throw new TypeError(
        `loadBeir: ${qrelsFile}:${i + 1}: expected "query-id corpus-id score", got ${raw}`,
      );
    }
    if (!queryText.has(qid)) return warn(`${qrelsFile}:${i + 1}: unknown query ${qid}; skipped`);
    const d = docIndex.get(did);
    if (d === undefined) return warn(`${qrelsFile}:${i + 1}: unknown document ${did}; skipped`);
    let m = judged.get(qid);
    if (!m) judged.set(qid, m = new Map());
    m.set(d, Number(score));
  });
  const queries: BeirQuery[] = [];
  for (const [id, text] of queryText) {
    const m = judged.get(id);
    if (m) queries.push({ id, text, relevant: [...m] });
  }
  if (corpus.length === 0) throw new RangeError(`loadBeir: ${corpusFile} holds no document`);
  if (queries.length === 0) throw new RangeError(`loadBeir: ${qrelsFile} judges no known query`);
  const dataset = base.split(/[\\/]/).pop() || dir;
  opts.onProgress?.(`loaded ${dataset}: ${corpus.length} documents, ${queries.length} queries`);
  return { dataset, dir, split, corpus, queries, warnings };
}

async function defaultSplit(qrelsDir: string): Promise<string> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(qrelsDir)) {
      if (e.name.endsWith(".tsv")) names.push(e.name.slice(0, -4));
    }
  } catch (e) {
    throw new Error(`loadBeir: cannot list ${qrelsDir}: ${(e as Error).message}`);
  }
  for (const s of ["test", "dev"]) if (names.includes(s)) return s;
  if (names.length === 1) return names[0];
  throw new Error(
    `loadBeir: ${qrelsDir} has ${names.length ? names.join(", ") : "no .tsv file"}; ` +
      `pass split`,
  );
}

async function readJsonl(file: string): Promise<[Record<string, unknown>, number][]> {
  let text: string;
  try {
    text = await readTextStrict(file);
  } catch (e) {
    throw new Error(`loadBeir: ${(e as Error).message}`);
  }
  const out: [Record<string, unknown>, number][] = [];
  jsonlLines(text, file).forEach((line, i) => {
    if (line.trim() === "") return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new SyntaxError(`loadBeir: ${file}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
      throw new TypeError(`loadBeir: ${file}:${i + 1}: expected a JSON object`);
    }
    out.push([rec as Record<string, unknown>, i + 1]);
  });
  return out;
}

function pickString(rec: Record<string, unknown>, keys: string[]): string | undefined {
  for (const k of keys) {
    const v = rec[k];
    if (typeof v === "string") return v;
    if (typeof v === "number") return String(v);
  }
  return undefined;
}
