/**
 * Hostile training JSONL, LAReQA and BEIR files and the commands' JSONL input: bad JSON, missing
 * fields, wrong types, empty languages, huge lines and invalid UTF-8. Errors name the file and the
 * line (JSONL) or the JSON path (LAReQA).
 */
import { ok, rejects } from "node:assert/strict";
import { loadQaData, MAX_LINE_CHARS } from "../../training/data.ts";
import { loadLareqa } from "../../eval/lareqa.ts";
import { loadBeir } from "../../eval/beir.ts";
import { readJsonl } from "../../cli/jsonl.ts";

const enc = new TextEncoder();
const GOOD = '{"id": "q1", "question": {"en": "Who?"}, "answer": {"en": "Me."}}';

async function file(content: string | Uint8Array, suffix = ".jsonl"): Promise<string> {
  const path = await Deno.makeTempFile({ suffix });
  await Deno.writeFile(path, typeof content === "string" ? enc.encode(content) : content);
  return path;
}

async function refused(
  load: () => Promise<unknown>,
  path: string,
  want: RegExp,
  label: string,
): Promise<void> {
  await rejects(load, (e: unknown) => {
    ok(e instanceof Error, `${label}: an Error`);
    ok(e.message.includes(path), `${label}: names ${path}: ${e.message}`);
    ok(want.test(e.message), `${label}: "${e.message}" should match ${want}`);
    return true;
  });
}

const invalidUtf8 = (before: string, after: string) =>
  new Uint8Array([...enc.encode(before), 0xff, 0xfe, ...enc.encode(after)]);

Deno.test("training JSONL: bad JSON, missing fields, wrong types, empty languages are refused by line", async () => {
  const cases: [string, RegExp][] = [
    [`${GOOD}\n{"id": "q2", "question"`, /:2: not JSON/],
    [`${GOOD}\n[1, 2]`, /:2: expected an object per line/],
    [`${GOOD}\n{"id": "q2", "answer": {"en": "x"}}`, /:2: missing "question"/],
    [`{"id": "", "question": {"en": "a"}, "answer": {"en": "b"}}`, /:1: "id" must be/],
    [`{"id": 1.5, "question": {"en": "a"}, "answer": {"en": "b"}}`, /:1: "id" must be/],
    [`${GOOD}\n${GOOD}`, /:2: duplicate id "q1" \(first on line 1\)/],
    [`{"id": 1, "question": "a", "answer": {"en": "b"}}`, /:1: "question" must be an object/],
    [`{"id": 1, "question": {"en": 5}, "answer": {"en": "b"}}`, /:1: "question.en" must be a str/],
    [`{"id": 1, "question": {"en": "  "}, "answer": {"en": "b"}}`, /:1: "question.en" is empty/],
    [`{"id": 1, "question": {}, "answer": {}}`, /:1: "question" has no language/],
    [`{"id": 1, "question": {"": "a"}, "answer": {"": "b"}}`, /:1: "question" has an empty lang/],
    [
      `{"id": 1, "question": {"en": "a"}, "answer": {"en": "b"}, "negatives": {"en": [1]}}`,
      /:1: "negatives.en" must be an array of strings/,
    ],
    [`{"id": 1, "question": {"en": "a"}, "answer": {"de": "b"}}`, /no usable items/],
    ["\n\n  \n", /empty file/],
  ];
  for (const [text, want] of cases) {
    const path = await file(text);
    await refused(() => loadQaData(path), path, want, text.slice(0, 60));
    await Deno.remove(path);
  }
  const path = await file(`${GOOD}\n`);
  await refused(() => loadQaData(path, { langs: ["de"] }), path, /language "de" has no item/, "de");
  await Deno.remove(path);
});

Deno.test("JSONL readers refuse invalid UTF-8 and huge lines naming the line", async () => {
  const badUtf8 = await file(invalidUtf8(`${GOOD}\n{"id": "q2", "question": {"en": "`, '"}}'));
  const huge = await file(`${GOOD}\n${" ".repeat(MAX_LINE_CHARS + 1)}\n`);
  const loaders: [string, (p: string) => Promise<unknown>][] = [
    ["loadQaData", (p) => loadQaData(p)],
    ["readJsonl", (p) => readJsonl(p)],
  ];
  for (const [name, load] of loaders) {
    await refused(() => load(badUtf8), badUtf8, /:2: invalid UTF-8 at byte \d+/, name);
    await refused(() => load(huge), huge, /:2: line is \d+ characters long/, name);
  }
  // Overlong encodings and surrogates are invalid UTF-8 too.
  for (const seq of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
    const p = await file(new Uint8Array([...enc.encode('{"id": "'), ...seq, ...enc.encode('"}')]));
    await refused(() => readJsonl(p), p, /:1: invalid UTF-8 at byte 8/, `bytes ${seq}`);
    await Deno.remove(p);
  }
  const cli = await file('{"text": "a"}\n"just a string"\n');
  await refused(() => readJsonl(cli), cli, /:2: expected a JSON object/, "readJsonl object");
  const empty = await file("\n \n");
  await refused(() => readJsonl(empty), empty, /no lines/, "readJsonl empty");
  for (const p of [badUtf8, huge, cli, empty]) await Deno.remove(p);
});

function lareqaJson(patch: (para: Record<string, unknown>) => void): string {
  const para: Record<string, unknown> = {
    context: "One. Two.",
    sentences: ["One.", "Two."],
    sentence_breaks: [[0, 4], [5, 9]],
    qas: [{ id: "q1", question: "Second?", answers: [{ answer_start: 5, text: "Two" }] }],
  };
  patch(para);
  return JSON.stringify({ data: [{ paragraphs: [para] }] });
}

Deno.test("LAReQA files that are broken are refused naming the file and the JSON path", async () => {
  const cases: [string | Uint8Array, RegExp][] = [
    ["{", /is not valid JSON/],
    ["[]", /top level: expected \{"data"/],
    ['{"data": [5]}', /data\[0\]: expected an object with a paragraphs array/],
    [lareqaJson((p) => (p.context = 3)), /paragraphs\[0\]: context must be a string/],
    [lareqaJson((p) => (p.sentence_breaks = [[5, 4]])), /sentence_breaks\[0\]: expected/],
    [lareqaJson((p) => (p.sentence_breaks = [[0, 99]])), /sentence_breaks\[0\]: .*9 code points/],
    [lareqaJson((p) => (p.qas = [{ id: 7, question: "x" }])), /qas\[0\]: expected \{id: string/],
    [
      lareqaJson((p) => (p.qas = [{ id: "q", question: "x", answers: [{ answer_start: "5" }] }])),
      /qas\[0\]: answer_start must be an integer/,
    ],
    [invalidUtf8('{"data": [], "x": "', '"}'), /en.json:1: invalid UTF-8 at byte 19/],
  ];
  for (const [content, want] of cases) {
    const dir = await Deno.makeTempDir();
    await Deno.writeFile(
      `${dir}/en.json`,
      typeof content === "string" ? enc.encode(content) : content,
    );
    await refused(() => loadLareqa(dir), `${dir}/en.json`, want, String(content).slice(0, 60));
    // The training loader reads the same layout and must refuse it too.
    await rejects(() => loadQaData(dir), (e: Error) => e.message.includes(`${dir}/en.json`));
    await Deno.remove(dir, { recursive: true });
  }
  const empty = await Deno.makeTempDir();
  await refused(() => loadLareqa(empty), empty, /no <lang>.json file/, "empty dir");
  await Deno.writeTextFile(`${empty}/en.json`, lareqaJson(() => {}));
  await refused(() => loadLareqa(empty, { langs: [] }), empty, /langs is empty/, "langs []");
  await refused(() => loadLareqa(empty, { langs: ["de"] }), empty, /no language de/, "langs de");
  await Deno.remove(empty, { recursive: true });
});

Deno.test("BEIR folders that are broken are refused naming the file and line", async () => {
  const good = {
    "corpus.jsonl": '{"_id": "d1", "title": "", "text": "Paris"}\n',
    "queries.jsonl": '{"_id": "q1", "text": "capital?"}\n',
    "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
  };
  const cases: [string, string | Uint8Array, RegExp][] = [
    ["corpus.jsonl", '{"_id": "d1", "text": "x"}\n{"_id"', /corpus.jsonl:2: invalid JSON/],
    ["corpus.jsonl", '{"_id": "d1"}\n', /corpus.jsonl:1: expected \{"_id", "text"\}/],
    ["corpus.jsonl", "[1]\n", /corpus.jsonl:1: expected a JSON object/],
    ["corpus.jsonl", "", /corpus.jsonl holds no document/],
    ["corpus.jsonl", invalidUtf8('{"_id": "d1", "text": "', '"}'), /corpus.jsonl:1: invalid UTF-8/],
    ["queries.jsonl", '{"_id": {"a": 1}, "text": "x"}\n', /queries.jsonl:1: expected/],
    ["queries.jsonl", `${" ".repeat(MAX_LINE_CHARS + 1)}\n`, /queries.jsonl:1: line is/],
    ["qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n", /test.tsv:2: expected "query-id/],
    ["qrels/test.tsv", "h\nq1\td1\tx\n", /test.tsv:2: expected/],
    ["qrels/test.tsv", "h\nq9\td1\t1\n", /test.tsv judges no known query/],
  ];
  for (const [name, content, want] of cases) {
    const dir = await Deno.makeTempDir();
    await Deno.mkdir(`${dir}/qrels`);
    for (const [f, text] of Object.entries(good)) await Deno.writeTextFile(`${dir}/${f}`, text);
    await Deno.writeFile(
      `${dir}/${name}`,
      typeof content === "string" ? enc.encode(content) : content,
    );
    await refused(() => loadBeir(dir), `${dir}/`, want, `${name}: ${String(content).slice(0, 40)}`);
    await Deno.remove(dir, { recursive: true });
  }
});
