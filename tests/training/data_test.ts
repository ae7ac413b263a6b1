import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { codePointSlice, loadQaData, type QaItem, writeQaJsonl } from "../../training/data.ts";

const fixture = (p: string) => new URL(`../fixtures/${p}`, import.meta.url).pathname;
const PAIRS = fixture("xlmr-tiny/pairs.jsonl");
const XQUAD_R = fixture("xquad-r");

async function tempFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".jsonl" });
  await Deno.writeTextFile(path, text);
  return path;
}

async function tempDir(files: Record<string, unknown>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [name, json] of Object.entries(files)) {
    await Deno.writeTextFile(
      `${dir}/${name}`,
      typeof json === "string" ? json : JSON.stringify(json),
    );
  }
  return dir;
}

/** A one-paragraph LAReQA file. */
function lareqa(context: string, breaks: [number, number][], qas: unknown[]): unknown {
  return {
    version: "1.1",
    data: [{
      title: "t",
      paragraphs: [{ context, qas, sentence_breaks: breaks, sentences: breaks.map(() => "x") }],
    }],
  };
}

Deno.test("the xlmr-tiny pairs load as 120 items in five languages", async () => {
  const data = await loadQaData(PAIRS);
  equal(data.items.length, 120);
  deepEqual(data.languages, ["ar", "de", "en", "hi", "zh"]);
  equal(data.source, PAIRS);
  for (const item of data.items) {
    deepEqual(Object.keys(item.question), data.languages);
    deepEqual(Object.keys(item.answer), data.languages);
  }
  equal(data.items[0].id, "56beb4343aeaaa14008c925b");
});

Deno.test("XQuAD-R loads as 1190 items in each language with the answer sentence as context slice", async () => {
  const data = await loadQaData(XQUAD_R);
  equal(data.items.length, 1190);
  deepEqual(data.languages, ["ar", "de", "en", "hi", "tr", "zh"], "the six in-repo languages");
  for (const item of data.items) equal(Object.keys(item.answer).length, 6);
  const item = data.items.find((it) => it.id === "56beb4343aeaaa14008c925b")!;
  equal(item.question.en, "How many points did the Panthers defense surrender?");
  const en = JSON.parse(await Deno.readTextFile(`${XQUAD_R}/en.json`));
  const para = en.data[0].paragraphs[0];
  equal(item.answer.en, para.context.slice(0, 165));
  ok(item.answer.en.startsWith("The Panthers defense gave up just 308 points"));
  equal(item.negatives!.en.length, para.sentence_breaks.length - 1);
  ok(!item.negatives!.en.includes(item.answer.en));
  equal(item.negatives!.en[0], para.context.slice(166, 288));
});

Deno.test("XQuAD-R items agree with the fixture pairs made by the reference", async () => {
  const langs = ["ar", "de", "en", "hi", "zh"];
  const [dir, pairs] = await Promise.all([loadQaData(XQUAD_R, { langs }), loadQaData(PAIRS)]);
  deepEqual(dir.languages, langs);
  const byId = new Map(dir.items.map((it) => [it.id, it]));
  for (const want of pairs.items) {
    const got = byId.get(want.id)!;
    deepEqual(got.question, want.question, want.id);
    deepEqual(got.answer, want.answer, want.id);
  }
});

Deno.test("LAReQA offsets are code points, so astral characters do not shift the slice", async () => {
  const context = "😀 One. Two 😀 three. Four.";
  // Code-point offsets as Python writes them: "😀 One." is 0..6, "Two 😀 three." 7..19.
  const dir = await tempDir({
    "en.json": lareqa(context, [[0, 6], [7, 19], [20, 25]], [
      { id: "q1", question: "Which?", answers: [{ answer_start: 15, text: "three" }] },
    ]),
  });
  const data = await loadQaData(dir);
  equal(data.items[0].answer.en, "Two 😀 three.");
  deepEqual(data.items[0].negatives!.en, ["😀 One.", "Four."]);
  equal(codePointSlice("a😀b", 1, 2), "😀");
});

Deno.test("a language with a question but no answer is not available for that item", async () => {
  const path = await tempFile(
    [
      { id: "a", question: { en: "Q?", de: "F?" }, answer: { en: "A.", fr: "R." } },
      { id: "b", question: { de: "F?" }, answer: { de: "A." } },
    ].map((x) => JSON.stringify(x)).join("\n"),
  );
  const data = await loadQaData(path);
  deepEqual(data.items[0].question, { en: "Q?" });
  deepEqual(data.items[0].answer, { en: "A." });
  deepEqual(data.languages, ["de", "en"]);
  const de = await loadQaData(path, { langs: ["de"] });
  deepEqual(de.items.map((it) => it.id), ["b"]);
});

Deno.test("writeQaJsonl round-trips items with negatives; integer ids become strings", async () => {
  const items: QaItem[] = [
    { id: "x", question: { en: "Q?" }, answer: { en: "A." }, negatives: { en: ["N1.", "N2."] } },
    { id: "y", question: { en: "Q2?", de: "F2?" }, answer: { en: "A2.", de: "B2." } },
  ];
  const path = await Deno.makeTempFile();
  await writeQaJsonl(path, items);
  deepEqual((await loadQaData(path)).items, items);
  const p2 = await tempFile('{"id": 7, "question": {"en": "Q?"}, "answer": {"en": "A."}}\n\n');
  equal((await loadQaData(p2)).items[0].id, "7");
});

Deno.test("JSONL errors name the file and line", async () => {
  const ok1 = '{"id": "a", "question": {"en": "Q?"}, "answer": {"en": "A."}}';
  const cases: [string, RegExp][] = [
    [`${ok1}\n{not json`, /:2: not JSON/],
    [`${ok1}\n{"question": {"en": "Q"}, "answer": {"en": "A"}}`, /:2: missing "id"/],
    [`{"id": "a", "answer": {"en": "A"}}`, /:1: missing "question"/],
    [`{"id": "a", "question": {"en": "Q"}}`, /:1: missing "answer"/],
    [`{"id": "a", "question": "Q", "answer": {"en": "A"}}`, /:1: "question" must be an object/],
    [
      `{"id": "a", "question": {"en": 3}, "answer": {"en": "A"}}`,
      /:1: "question.en" must be a string/,
    ],
    [`{"id": {}, "question": {"en": "Q"}, "answer": {"en": "A"}}`, /:1: "id" must be/],
    [
      `{"id": "a", "question": {"en": "Q"}, "answer": {"en": "A"}, "negatives": {"en": "N"}}`,
      /:1: "negatives.en"/,
    ],
    [`${ok1}\n\n${ok1}`, /:3: duplicate id "a" \(first on line 1\)/],
    [`[1, 2]`, /:1: expected an object/],
    [``, /empty file/],
    [`\n  \n`, /empty file/],
  ];
  for (const [text, re] of cases) {
    const path = await tempFile(text);
    await rejects(loadQaData(path), (e: Error) => {
      ok(e.message.includes(path), `${e.message} names ${path}`);
      ok(re.test(e.message), `${e.message} matches ${re}`);
      return true;
    });
  }
  const path = await tempFile(ok1);
  await rejects(loadQaData(path, { langs: ["en", "xx"] }), /language "xx" has no item/);
  await rejects(loadQaData("/nonexistent/qa.jsonl"), /cannot read \/nonexistent\/qa.jsonl/);
});

Deno.test("LAReQA directory errors name the file and the question id", async () => {
  const q = (id: string, start: number) => ({
    id,
    question: "Q?",
    answers: [{ answer_start: start }],
  });
  const dup = await tempDir({
    "en.json": lareqa("A. B.", [[0, 2], [3, 5]], [q("q1", 0), q("q1", 3)]),
  });
  await rejects(loadQaData(dup), (e: Error) => /en\.json: id q1: duplicate id/.test(e.message));
  const out = await tempDir({ "en.json": lareqa("A. B.", [[0, 2], [3, 5]], [q("q9", 2)]) });
  await rejects(loadQaData(out), /en\.json: id q9: answer_start 2 is in no sentence_breaks span/);
  const noAns = await tempDir({
    "de.json": lareqa("A.", [[0, 2]], [{ id: "q3", question: "Q?" }]),
  });
  await rejects(loadQaData(noAns), /de\.json: id q3: needs "answers"/);
  const badBreaks = await tempDir({ "en.json": lareqa("A.", [[0, 9]], [q("q1", 0)]) });
  await rejects(loadQaData(badBreaks), /en\.json: data\[0\]\.paragraphs\[0\]: "sentence_breaks"/);
  const notJson = await tempDir({ "en.json": "{oops" });
  await rejects(loadQaData(notJson), /en\.json: not JSON/);
  const good = await tempDir({ "en.json": lareqa("A. B.", [[0, 2], [3, 5]], [q("q1", 3)]) });
  await rejects(loadQaData(good, { langs: ["de"] }), /no de\.json for language "de"/);
  const empty = await Deno.makeTempDir();
  await rejects(loadQaData(empty), /no <lang>\.json files/);
});

Deno.test("LAReQA ids link across languages and a missing translation leaves the item without it", async () => {
  const q = (id: string, start: number) => ({
    id,
    question: `${id}?`,
    answers: [{ answer_start: start }],
  });
  const dir = await tempDir({
    "en.json": lareqa("A. B.", [[0, 2], [3, 5]], [q("q1", 0), q("q2", 3)]),
    "de.json": lareqa("C. D.", [[0, 2], [3, 5]], [q("q2", 0)]),
    "notes.txt": "ignored",
  });
  const data = await loadQaData(dir);
  deepEqual(data.languages, ["de", "en"]);
  deepEqual(data.items.map((it) => [it.id, Object.keys(it.answer)]), [["q2", ["de", "en"]], ["q1", [
    "en",
  ]]]);
  deepEqual(data.items[0].answer, { de: "C.", en: "B." });
});
