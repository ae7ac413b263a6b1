/**
 * Tiny LAReQA-format sets written to a temp folder, and embedding functions whose scores are
 * dictated by tags in the text, so expected rankings can be worked out by hand.
 * @module
 */
import type { EmbedFn } from "../../eval/retrieval.ts";

/** A paragraph: its sentences and questions (answer = sentence index, or "gap" for none). */
export interface SynParagraph {
  sentences: string[];
  qas: { id: string; question: string; answer: number | "gap" }[];
}

/** Writes `<lang>.json` files (offsets in code points, as Python writes them); returns the dir. */
export async function writeSet(spec: Record<string, SynParagraph[]>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lareqa_" });
  for (const [lang, paragraphs] of Object.entries(spec)) {
    const paras = paragraphs.map((p) => {
      const breaks: [number, number][] = [];
      let pos = 0;
      for (const s of p.sentences) {
        const n = [...s].length;
        breaks.push([pos, pos + n]);
        pos += n + 1; // one space between sentences
      }
      return {
        context: p.sentences.join(" "),
        sentences: p.sentences,
        sentence_breaks: breaks,
        qas: p.qas.map((q) => ({
          id: q.id,
          question: q.question,
          answers: [{
            answer_start: q.answer === "gap" ? breaks[0][1] : breaks[q.answer][0] + 1,
            text: "x",
          }],
        })),
      };
    });
    const json = { version: "1.1", data: [{ title: "t", paragraphs: paras }] };
    await Deno.writeTextFile(`${dir}/${lang}.json`, JSON.stringify(json));
  }
  return dir;
}

const TAG = /\[(\w+)(?::(-?[\d.]+))?\]/g;

/**
 * Questions "[id] …" embed as the unit vector of dimension `id`; a candidate with tags
 * "[id:s]" scores s against that id's questions (unit vector s·e_id + … + rest·e_junk); a tag
 * without a score means 1. `sign` −1 reverses every candidate score (questions, which end with
 * "?", keep theirs). `ids` lists all ids.
 */
export function taggedEmbed(ids: string[], sign = 1): EmbedFn {
  const dim = ids.length + 1;
  return (items) => {
    const out = new Float32Array(items.length * dim);
    items.forEach((it, i) => {
      const text = it.text;
      const sg = text.endsWith("?") ? 1 : sign; // questions end with "?"
      let used = 0;
      for (const m of text.matchAll(TAG)) {
        const k = ids.indexOf(m[1]);
        if (k < 0) throw new Error(`taggedEmbed: unknown id ${m[1]}`);
        const s = m[2] === undefined ? 1 : Number(m[2]);
        out[i * dim + k] = sg * s;
        used += s * s;
      }
      out[i * dim + ids.length] = Math.sqrt(Math.max(0, 1 - used));
    });
    return Promise.resolve(out);
  };
}

/**
 * Each text picks 4 of 12 dimensions by hash, all set to 1: normalised entries are exactly 0.5,
 * so every score is a multiple of 0.25, exact on the GPU and the CPU alike, with many ties.
 */
export const hashEmbed: EmbedFn = (items) => {
  const dim = 12;
  const out = new Float32Array(items.length * dim);
  items.forEach((it, i) => {
    let h = 2166136261;
    const t = it.text + "\u0000" + (it.pair ?? "");
    for (let k = 0; k < t.length; k++) h = Math.imul(h ^ t.charCodeAt(k), 16777619);
    let set = 0;
    while (set < 4) {
      h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
      const d = h % dim;
      if (out[i * dim + d] === 0) {
        out[i * dim + d] = 1;
        set++;
      }
    }
  });
  return Promise.resolve(out);
};
