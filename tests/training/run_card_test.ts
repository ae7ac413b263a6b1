/**
 * A trained run folder is a sentence-transformers model: the documented layout (checked against
 * the real sentence-transformers folder of tests/fixtures/bert-tiny/st-model), the pooling and the
 * prompts it trained with, and the engine's own reading of the folder reproducing the training
 * vectors.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RunCard, writeRunCard } from "../../training/run_card.ts";
import { readSentenceTransformers } from "../../model/sentence_transformers.ts";
import { Gpu } from "../../kernels/runtime.ts";
import { Encoder } from "../../model/encoder.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const REAL_ST = join(FIXTURES, "bert-tiny/st-model");

const card = (over: Partial<RunCard> = {}): RunCard => ({
  pooling: "cls",
  hiddenSize: 64,
  maxLength: 32,
  queryPrefix: "Query: ",
  passagePrefix: "Passage: ",
  baseModel: "FacebookAI/xlm-roberta-base@0123456789abcdef0123456789abcdef01234567",
  train: "train.jsonl",
  languages: ["de", "en"],
  sampler: "hybrid",
  alpha: 0.5,
  steps: 10,
  batchSize: 8,
  lr: 3e-5,
  temperature: 0.05,
  seed: 42,
  finalEval: {
    step: 10,
    dataset: "xquad-r",
    map: { monolingual: 0.5, crosslingual: 0.25, multilingual: 0.125 },
  },
  ...over,
});

const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(p));

Deno.test("a run folder gets the sentence-transformers files every version reads, and a card", async () => {
  const dir = await Deno.makeTempDir();
  await writeRunCard(dir, card());
  deepEqual(await readJson(join(dir, "modules.json")), [
    { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
    { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
  ]);
  const pooling = await readJson(join(dir, "1_Pooling/config.json"));
  equal(pooling.pooling_mode_cls_token, true);
  equal(pooling.pooling_mode_mean_tokens, false);
  equal(pooling.word_embedding_dimension, 64);
  equal((await readJson(join(dir, "sentence_bert_config.json"))).max_seq_length, 32);
  const st = await readJson(join(dir, "config_sentence_transformers.json"));
  deepEqual(st.prompts, { query: "Query: ", passage: "Passage: " });
  equal(st.similarity_fn_name, "cosine");
  ok((await Deno.stat(join(dir, "2_Normalize/config.json"))).isFile);

  // Same shape as a folder written by sentence-transformers itself: the same modules.json entry
  // keys, a Normalize folder with its config.json, the config keys it writes.
  const real = await readJson(join(REAL_ST, "modules.json"));
  deepEqual(Object.keys(real[0]).sort(), ["idx", "name", "path", "type"]);
  const realNorm = real.find((m: { type: string }) => m.type.endsWith(".Normalize")).path;
  ok((await Deno.stat(join(REAL_ST, realNorm, "config.json"))).isFile);
  const realSt = await readJson(join(REAL_ST, "config_sentence_transformers.json"));
  for (const k of ["prompts", "default_prompt_name", "similarity_fn_name"]) ok(k in realSt, k);
  for (const k of ["prompts", "default_prompt_name", "similarity_fn_name"]) ok(k in st, k);

  // The engine's reader (both type forms) sees the trained pooling, the normalisation, the length.
  const parsed = await readSentenceTransformers(dir);
  equal(parsed?.pooling, "cls");
  equal(parsed?.normalize, true);
  equal(parsed?.maxSeqLength, 32);
  await writeRunCard(dir, card({ pooling: "mean" }));
  equal((await readSentenceTransformers(dir))?.pooling, "mean");

  const readme = await Deno.readTextFile(join(dir, "README.md"));
  for (
    const s of [
      "library_name: sentence-transformers",
      "FacebookAI/xlm-roberta-base@",
      "train.jsonl",
      "hybrid, α = 0.5",
      "| steps | 10",
      "| 0.5000 | 0.2500 | 0.1250 |",
      'prompt_name="query"',
    ]
  ) ok(readme.includes(s), s);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "the folder's own pipeline gives the training vectors (pooled, normalised) of prefixed text",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(join(FIXTURES, "xlmr-tiny/model", f), join(dir, f));
    }
    await Deno.copyFile(join(FIXTURES, "tokenizer/tokenizer.json"), join(dir, "tokenizer.json"));
    await writeRunCard(dir, card({ pooling: "mean", maxLength: 24 }));
    const gpu = await Gpu.create();
    try {
      const texts = ["Where is the river?", "Wo ist der Fluss?", "The river flows to the sea."];
      const items = texts.map((t) => ({ text: "Query: " + t }));
      const enc = await Encoder.load(gpu, dir);
      const st = await enc.embed(items); // pooling unset: the sentence-transformers pipeline
      const raw = await enc.embed(items, { pooling: "mean", maxLength: 24 });
      const H = enc.config.hiddenSize;
      for (let i = 0; i < texts.length; i++) {
        let n = 0;
        for (let k = 0; k < H; k++) n += raw[i * H + k] ** 2;
        n = Math.sqrt(n);
        for (let k = 0; k < H; k++) {
          ok(Math.abs(st[i * H + k] - raw[i * H + k] / n) < 1e-6, `row ${i} col ${k}`);
        }
      }
      enc.release();
    } finally {
      gpu.destroy?.();
    }
    await Deno.remove(dir, { recursive: true });
  },
});
