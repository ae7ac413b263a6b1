/**
 * A LAReQA report case the mutation runner (`deno task mutants`) found untested: the
 * cross-lingual averages (mAP and recall) take only the pairs of two different languages. The
 * other tests' scorers give every pair the same value, so averaging the monolingual pairs in made
 * no difference there; here monolingual retrieval is perfect and cross-lingual retrieval is not.
 * @module
 */
import { deepEqual } from "node:assert/strict";
import { loadLareqa } from "../../eval/lareqa.ts";
import { type EmbedFn, evaluateLareqa } from "../../eval/retrieval.ts";
import { gpuTest } from "../_helpers.ts";
import { writeSet } from "./_synthetic.ts";

/** Each text's (question-aa, question-bb) components; a third component makes the norm 1. */
const VECTORS: Record<string, [number, number]> = {
  "qa?": [1, 0],
  "qb?": [0, 1],
  "a-ans.": [0.875, 0.25],
  "a-other.": [0.125, 0.75],
  "b-ans.": [0.25, 0.875],
  "b-other.": [0.75, 0.125],
};

const embed: EmbedFn = (items) => {
  const out = new Float32Array(items.length * 3);
  items.forEach((it, i) => {
    const v = VECTORS[it.text];
    if (!v) throw new Error(`no vector for ${JSON.stringify(it.text)}`);
    out.set([v[0], v[1], Math.sqrt(1 - v[0] ** 2 - v[1] ** 2)], i * 3);
  });
  return Promise.resolve(out);
};

gpuTest(
  "cross-lingual mAP and recall average only pairs of two different languages",
  async (gpu) => {
    // qa ranks aa's answer 1st of 2 but bb's answer 2nd of 2; qb the other way round.
    const dir = await writeSet({
      aa: [{ sentences: ["a-ans.", "a-other."], qas: [{ id: "q1", question: "qa?", answer: 0 }] }],
      bb: [{ sentences: ["b-ans.", "b-other."], qas: [{ id: "q1", question: "qb?", answer: 0 }] }],
    });
    const r = await evaluateLareqa(gpu, await loadLareqa(dir), embed);
    deepEqual(r.pairs, { aa: { aa: 1, bb: 0.5 }, bb: { aa: 0.5, bb: 1 } });
    deepEqual({ mono: r.map.monolingual, cross: r.map.crosslingual }, { mono: 1, cross: 0.5 });
    deepEqual(r.recall.monolingual, { "r@1": 1, "r@10": 1 });
    deepEqual(r.recall.crosslingual, { "r@1": 0, "r@10": 1 });
  },
);
