/**
 * The engine as a library, end to end on the tiny fixture model of this repository: load a
 * checkpoint, embed a few sentences, fine-tune a few steps with hybrid batches, and evaluate the
 * model before and after on XQuAD-R (LAReQA format).
 *
 *   deno run -A examples/library_quickstart.ts [OUT_DIR]
 *
 * It imports the package by its name, as a project that added it with `deno add
 * jsr:@xlmr-webgpu/engine` does (inside this repository the name resolves to the checkout). With
 * your own checkpoint, point MODEL at a Hugging Face XLM-R directory (config.json,
 * model.safetensors, tokenizer.json or sentencepiece.bpe.model) and leave TOKENIZER undefined.
 */
import { Encoder, Gpu, train } from "@xlmr-webgpu/engine";
import { evaluateLareqa, type LareqaReport, loadLareqa } from "@xlmr-webgpu/engine/eval";
import { fileURLToPath } from "node:url";

const fixture = (path: string) =>
  fileURLToPath(new URL(`../tests/fixtures/${path}`, import.meta.url));
const MODEL = fixture("xlmr-tiny/model"); // config.json + model.safetensors
const TOKENIZER = fixture("tokenizer"); // tokenizer.json
const TRAIN = fixture("xlmr-tiny/pairs.jsonl"); // one {"id", "question", "answer"} per line
const XQUAD_R = fixture("xquad-r"); // LAReQA format: en.json, de.json, …
const out = Deno.args[0] ?? await Deno.makeTempDir({ prefix: "xlmr-quickstart-" });

const gpu = await Gpu.create();
console.log(`adapter: ${gpu.describe()}`);

// 1. Load and embed. Vectors come back as one Float32Array [texts, hidden], in input order.
const encoder = await Encoder.load(gpu, MODEL, TOKENIZER);
const texts = ["Where is the river?", "Wo ist der Fluss?", "The river flows to the sea."];
const emb = await encoder.embed(texts.map((text) => ({ text })), { pooling: "mean" });
const H = encoder.config.hiddenSize;
const cosine = (i: number, j: number) => {
  let dot = 0, a = 0, b = 0;
  for (let k = 0; k < H; k++) {
    dot += emb[i * H + k] * emb[j * H + k];
    a += emb[i * H + k] ** 2;
    b += emb[j * H + k] ** 2;
  }
  return dot / Math.sqrt(a * b);
};
console.log(
  `embedded ${texts.length} texts, hidden ${H}; cos(en, de) = ${cosine(0, 1).toFixed(4)}`,
);

// 2. Evaluate: mAP of question → answer-sentence retrieval, 20 questions per language.
const set = await loadLareqa(XQUAD_R, { langs: ["en", "de"], limitQuestions: 20 });
const evaluate = (enc: Encoder): Promise<LareqaReport> =>
  evaluateLareqa(gpu, set, (items) => enc.embed(items, { pooling: "mean", maxLength: 64 }));
const before = await evaluate(encoder);
encoder.release();

// 3. Fine-tune: 6 steps of hybrid batches (X-X or X-Y with probability α), InfoNCE + AdamW. The
// output directory is a Hugging Face checkpoint (model, config, tokenizer) that loads as above.
const result = await train(gpu, {
  model: MODEL,
  tokenizer: TOKENIZER,
  train: TRAIN,
  out,
  langs: ["en", "de"],
  sampler: "hybrid",
  alpha: 0.5,
  batchSize: 8,
  steps: 6,
  lr: 1e-3,
  maxLength: 64,
  pooling: "mean",
  logEvery: 2,
  quiet: true,
});
const losses = result.stats.map((s) => s.loss.toFixed(3)).join(", ");
console.log(`trained ${result.steps} steps → ${result.outDir}; losses ${losses}`);

// 4. Evaluate the fine-tuned model the same way.
const tuned = await Encoder.load(gpu, result.outDir);
const after = await evaluate(tuned);
tuned.release();
const fmt = (r: LareqaReport) =>
  `mono ${r.map.monolingual?.toFixed(3)}, cross ${r.map.crosslingual?.toFixed(3)}, ` +
  `multi ${r.map.multilingual?.toFixed(3)}`;
console.log(`mAP before: ${fmt(before)}`);
console.log(`mAP after:  ${fmt(after)}`);
if (!Deno.args[0]) await Deno.remove(out, { recursive: true }); // keep it by naming OUT_DIR
