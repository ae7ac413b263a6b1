import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { lareqaCandidates, loadLareqa, selectLareqa } from "../../eval/lareqa.ts";
import { writeSet } from "./_synthetic.ts";
import { assertXquadR } from "./_xquad_r.ts";

const XQUAD_R = new URL("../fixtures/xquad-r", import.meta.url).pathname;

Deno.test("XQuAD-R (the six in-repo languages) loads with 1190 questions and the published candidate counts", async () => {
  await assertXquadR(XQUAD_R, ["ar", "de", "en", "hi", "tr", "zh"]);
});

Deno.test("limitQuestions keeps the first ids of the first language and their paragraphs", async () => {
  const set = await loadLareqa(XQUAD_R, { langs: ["en", "de", "zh"], limitQuestions: 40 });
  deepEqual(set.languages, ["en", "de", "zh"], "langs order kept");
  const counts = set.languages.map((l) => [
    set.byLanguage[l].questions.length,
    lareqaCandidates(set.byLanguage[l]).length,
  ]);
  deepEqual(counts, [[40, 13], [40, 13], [40, 14]]);
  const full = await loadLareqa(XQUAD_R, { langs: ["en"] });
  deepEqual(
    set.byLanguage.en.questions.map((q) => q.id),
    full.byLanguage.en.questions.slice(0, 40).map((q) => q.id),
  );
  // Selecting again with the same options changes nothing.
  const again = selectLareqa(set, { langs: ["en", "de", "zh"], limitQuestions: 40 });
  deepEqual(again.byLanguage, set.byLanguage);
});

Deno.test("offsets count code points, so astral characters slice correctly", async () => {
  const dir = await writeSet({
    aa: [{
      sentences: ["😀 One 𝒜.", "Two 🎉 two.", "Three."],
      qas: [{ id: "q1", question: "[q1] Which?", answer: 2 }],
    }],
  });
  const set = await loadLareqa(dir);
  deepEqual(lareqaCandidates(set.byLanguage.aa).map((c) => c.text), [
    "😀 One 𝒜.",
    "Two 🎉 two.",
    "Three.",
  ]);
  deepEqual(set.byLanguage.aa.questions[0].answers, [2]);
});

Deno.test("bad input is reported with the file and id, and the rest still loads", async () => {
  const dir = await writeSet({
    aa: [{
      sentences: ["One.", "Two."],
      qas: [
        { id: "q1", question: "[q1] a?", answer: 1 },
        { id: "q1", question: "[q1] again?", answer: 0 },
        { id: "q2", question: "[q2] gap?", answer: "gap" },
      ],
    }],
    bb: [{ sentences: ["Uno."], qas: [{ id: "q1", question: "[q1] b?", answer: 0 }] }],
    cc: [{ sentences: ["Nothing asked."], qas: [] }],
  });
  const messages: string[] = [];
  const set = await loadLareqa(dir, { onProgress: (m) => messages.push(m) });
  deepEqual(set.languages, ["aa", "bb"], "the empty language is left out");
  equal(set.byLanguage.aa.questions.length, 1);
  deepEqual(set.byLanguage.aa.questions[0].answers, [1], "the first copy of a duplicate id stays");
  const w = set.warnings.join("\n");
  ok(/aa\.json: duplicate question id q1/.test(w), w);
  ok(/aa\.json: question q2: answer start lies in no sentence/.test(w), w);
  ok(/cc\.json: no questions/.test(w), w);
  ok(messages.some((m) => m.startsWith("warning:")), "warnings reach onProgress");

  await rejects(loadLareqa(dir, { langs: ["aa", "zz"] }), /no language zz; available: aa, bb, cc/);
  await Deno.writeTextFile(`${dir}/bad.json`, "{ not json");
  await rejects(loadLareqa(dir, { langs: ["bad"] }), /bad\.json is not valid JSON/);
  await Deno.writeTextFile(`${dir}/odd.json`, JSON.stringify({ data: [{ paragraphs: [{}] }] }));
  await rejects(loadLareqa(dir, { langs: ["odd"] }), /odd\.json: data\[0\]\.paragraphs\[0\]/);
  await Deno.writeTextFile(
    `${dir}/far.json`,
    JSON.stringify({
      data: [{ paragraphs: [{ context: "abc", sentence_breaks: [[0, 9]], qas: [] }] }],
    }),
  );
  await rejects(loadLareqa(dir, { langs: ["far"] }), /far\.json: .*sentence_breaks\[0\]/);
  await rejects(loadLareqa(`${dir}/missing`), /cannot list/);
  throws(() => selectLareqa(set, { limitQuestions: 0 }), RangeError);
});
