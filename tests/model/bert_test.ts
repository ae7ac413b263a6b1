/**
 * BERT-family models (`model_type: "bert"`): the Hugging Face BertModel fixture, and a tiny random
 * BERT against the float64 reference (`model/xlmr_reference.ts`, which builds BERT's position ids
 * 0, 1, … and adds each token's type row itself), forward and backward.
 *
 * Tolerances: about 10–20× the worst error measured on lavapipe (TEST_VERBOSE=1 prints it).
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Gpu } from "../../kernels/runtime.ts";
import { Encoder } from "../../model/encoder.ts";
import { XlmrParams } from "../../model/params.ts";
import { Checkpoint, writeSafetensors } from "../../model/safetensors.ts";
import { configToJson, maxSequenceLength, parseConfig, presetConfig } from "../../model/config.ts";
import { makeTokenBatch, type Pooling, XlmrModel } from "../../model/xlmr.ts";
import { referenceForward, referenceLoss } from "../../model/xlmr_reference.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { assertFiniteDifferences, freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";
import {
  perturbedWeights,
  randomSeqs,
  refWeights,
  tinyBertConfig,
  uploadWeights,
} from "./_tiny.ts";

/** `[CLS]` (2), random ids ≥ 4, `[SEP]` (3): BERT's pad id is 0, so no sequence may hold it. */
function bertSeqs(r: () => number, lengths: number[], vocab: number): number[][] {
  return randomSeqs(r, lengths, vocab).map((s) => [2, ...s.slice(1, -1), 3]);
}

const FIX = fileURLToPath(new URL("../fixtures/bert-tiny/", import.meta.url));
const verbose = Deno.env.get("TEST_VERBOSE");

// The fixture's expectations are the float64 transformers forward. Measured on lavapipe: worst
// absolute error 8.2e-7 (cls), 7.4e-7 (mean), 7.7e-7 (pooler), the bar being 1e-5
// absolute (12× that); worst relative error per embedding 2.7e-7 / 2.0e-7 / 3.2e-7, so 5e-6
// relative is 16× the noise.
const FIXTURE_ABS_TOL = 1e-5;
const FIXTURE_REL_TOL = 5e-6;

gpuTest(
  "the BertModel fixture embeds within 1e-5 of transformers for cls, mean and pooler",
  async (gpu) => {
    const enc = await Encoder.load(gpu, FIX + "model");
    equal(enc.config.modelType, "bert");
    equal(enc.tokenizer?.kind, "wordpiece");
    const lines = (await Deno.readTextFile(FIX + "embed_inputs.jsonl")).split("\n").filter((l) => l)
      .map((l) => JSON.parse(l) as { text: string; input_ids: number[] });
    // The model folder's own tokenizer gives the fixture's ids (made with truncation at 100).
    for (const l of lines) deepEqual(enc.ids({ text: l.text }, 100), l.input_ids);
    const expected = JSON.parse(await Deno.readTextFile(FIX + "embed_expected.json")) as Record<
      string,
      number[][]
    >;
    const H = enc.config.hiddenSize;
    for (const pooling of ["cls", "mean", "pooler"] as const) {
      // Text in, through the tokenizer and length-sorted batches of unequal length.
      const got = await enc.embed(lines.map((l) => ({ text: l.text })), {
        pooling,
        batchSize: 5,
        maxLength: 100,
      });
      let worstAbs = 0, worstRel = 0;
      expected[pooling].forEach((row, i) => {
        const g = got.subarray(i * H, (i + 1) * H);
        const abs = Math.max(...row.map((v, k) => Math.abs(v - g[k])));
        const rel = relErr(g, row);
        worstAbs = Math.max(worstAbs, abs);
        worstRel = Math.max(worstRel, rel);
        ok(abs <= FIXTURE_ABS_TOL, `${pooling} embedding ${i}: absolute error ${abs}`);
        ok(rel <= FIXTURE_REL_TOL, `${pooling} embedding ${i}: relative error ${rel}`);
      });
      if (verbose) console.log(`bert fixture ${pooling}: abs ${worstAbs}, rel ${worstRel}`);
    }
    enc.release();
  },
);

Deno.test("BERT config: positions from 0, the whole table usable, two token types", () => {
  const c = parseConfig({ model_type: "bert", max_position_embeddings: 8, vocab_size: 50 }, "c");
  equal(c.padTokenId, 0); // BertConfig's default
  equal(maxSequenceLength(c), 8);
  equal(maxSequenceLength(presetConfig("tiny")), 130 - 1 - 1);
  const b = makeTokenBatch([[2, 7, 3, 9, 3], [2, 8, 3]], c, [[0, 0, 0, 1, 1], undefined]);
  deepEqual([...b.positions], [0, 1, 2, 3, 4, 0, 1, 2, 0, 0]);
  deepEqual([...b.typeIds], [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  deepEqual([...b.mask], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  // XLM-R's tokenizer under a BERT (multilingual MiniLM): <s> = 0 is the config's pad id, and
  // still a real token.
  deepEqual([...makeTokenBatch([[0, 7, 2], [0, 2]], c).mask], [1, 1, 1, 1, 1, 0]);
  makeTokenBatch([[2, 5, 5, 5, 5, 5, 5, 3]], c);
  throws(() => makeTokenBatch([[2, 5, 5, 5, 5, 5, 5, 5, 3]], c), /at most 8/);
  throws(() => makeTokenBatch([[2, 3]], c, [[0, 2]]), /type id 2 is outside the token type table/);
  throws(() => makeTokenBatch([[2, 3]], c, [[0]]), /1 type ids for 2 tokens/);
  throws(() => parseConfig({ model_type: "gpt2" }, "g.json"), /g.json: model_type "gpt2"/);
});

// Measured over 6 seeds: worst relative error 2.1e-7 (cls), 1.7e-7 (mean), 2.6e-7 (pooler); 5e-6
// is 19× the largest.
const FORWARD_TOL = 5e-6;

for (const pooling of ["cls", "mean", "pooler"] as Pooling[]) {
  gpuTest(
    `tiny BERT forward matches the float64 reference with ${pooling} pooling`,
    async (gpu) => {
      const seed = freshSeed("bert forward");
      const config = tinyBertConfig();
      const weights = perturbedWeights(config, seed);
      const params = uploadWeights(gpu, config, weights);
      const r = rng(seed + 1);
      const seqs = bertSeqs(r, [11, 3, 7, 11, 5], config.vocabSize);
      // Sentence pairs: the second segment (after a split point) has token type 1.
      const types = seqs.map((s, i) =>
        i % 2 ? s.map((_, t) => (t > s.length / 2 ? 1 : 0)) : undefined
      );
      const model = new XlmrModel(params);
      const { pooled } = model.forward(makeTokenBatch(seqs, config, types), pooling);
      const got = await gpu.read(pooled);
      const want = referenceForward(refWeights(weights), config, seqs, pooling, types);
      const H = config.hiddenSize;
      let worst = 0;
      for (let b = 0; b < seqs.length; b++) {
        const e = relErr(got.subarray(b * H, (b + 1) * H), want.subarray(b * H, (b + 1) * H));
        worst = Math.max(worst, e);
        ok(e <= FORWARD_TOL, `sequence ${b}: relative error ${e} > ${FORWARD_TOL}`);
      }
      if (verbose) console.log(`bert forward ${pooling}: worst relative error ${worst}`);
      gpu.release(pooled);
      params.release();
    },
  );
}

// As for XLM-R (tests/model/xlmr_test.ts): loss within 5e-6 relative, gradients within 1e-4 of
// central differences (h = 1e-5) of the float64 loss. Measured over 6 seeds: loss ≤ 1.2e-7 (limit
// 42× that, kept equal to XLM-R's), finite differences ≤ 1.6e-6 (limit 60× that, as XLM-R's).
const LOSS_TOL = 5e-6;
const FD_TOL = 1e-4;

gpuTest("tiny BERT gradient matches finite differences of the float64 loss", async (gpu) => {
  const seed = freshSeed("bert grad");
  const config = tinyBertConfig();
  const weights = perturbedWeights(config, seed);
  const params = uploadWeights(gpu, config, weights);
  const r = rng(seed + 7);
  const queries = bertSeqs(r, [6, 4, 9], config.vocabSize);
  const passages = bertSeqs(r, [8, 5, 7], config.vocabSize);
  const opts = { pooling: "mean" as const, temperature: 0.5 };
  const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...opts, maxGradNorm: 0 });
  trainer.step(queries, passages, 0);
  const [stats] = await trainer.collect();
  const ref = refWeights(weights);
  const lossOf = () => referenceLoss(ref, config, queries, passages, opts);
  const base = lossOf();
  const lossErr = Math.abs(stats.loss - base) / Math.abs(base);
  ok(lossErr <= LOSS_TOL, `loss ${stats.loss} vs ${base}: relative error ${lossErr}`);
  const checked = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "encoder.layer.0.attention.self.key.weight",
    "encoder.layer.1.intermediate.dense.weight",
    "encoder.layer.1.output.LayerNorm.bias",
  ];
  let worst = 0;
  for (const name of checked) {
    const grad = await gpu.read(trainer.grads.get(name)![0]);
    const w = ref.get(name)!;
    worst = Math.max(worst, assertFiniteDifferences(`${name}`, grad, w, () => lossOf(), 3, FD_TOL));
  }
  // Row 1 of the type table is never used by single sentences: its gradient is exactly 0.
  const typeGrad = await gpu.read(trainer.grads.get("embeddings.token_type_embeddings.weight")![0]);
  ok(typeGrad.subarray(config.hiddenSize).every((v) => v === 0), "type row 1 got a gradient");
  if (verbose) console.log(`bert grad: loss error ${lossErr}, worst FD error ${worst}`);
  trainer.release();
  params.release();
});

Deno.test("a BERT config round-trips through config.json as BertModel", () => {
  const cfg = presetConfig("bert-tiny");
  const json = configToJson(cfg);
  equal(json.model_type, "bert");
  deepEqual(json.architectures, ["BertModel"]);
  deepEqual(parseConfig(json, "rt"), cfg);
  const fixture = JSON.parse(Deno.readTextFileSync(FIX + "model/config.json"));
  deepEqual(parseConfig(fixture, "fixture"), { ...cfg, bosTokenId: 0, eosTokenId: 2 });
});

gpuTest(
  "f16 linear weights embed the BertModel fixture within 2e-3 of transformers",
  async (gpu) => {
    const enc = await Encoder.load(gpu, FIX + "model", undefined, { dtype: "f16" });
    const lines = (await Deno.readTextFile(FIX + "embed_inputs.jsonl")).split("\n").filter((l) => l)
      .map((l) => JSON.parse(l) as { input_ids: number[] });
    const expected = JSON.parse(await Deno.readTextFile(FIX + "embed_expected.json")) as Record<
      string,
      number[][]
    >;
    const got = await enc.embed(lines.map((l) => ({ inputIds: l.input_ids })), { pooling: "mean" });
    const H = enc.config.hiddenSize;
    let worst = 0;
    expected.mean.forEach((row, i) => {
      worst = Math.max(worst, relErr(got.subarray(i * H, (i + 1) * H), row));
    });
    if (verbose) console.log(`bert f16 worst relative error ${worst}`);
    // The same bar as the XLM-R fixture's f16 test (tests/model/fixture_test.ts).
    ok(worst <= 2e-3 && worst > 0, `f16 mean embeddings: worst relative error ${worst}`);
    enc.release();
  },
);

/**
 * A Gpu whose maxStorageBufferBindingSize is `rows` word-table rows while `small()` is true, so
 * that parameters allocated then are split into row chunks (LaBSE's 501,153 × 768 table is 1.5 GB,
 * above any adapter's binding limit); kernels run later see the real limits.
 */
function chunkingGpu(gpu: Gpu, bytes: number): { fake: Gpu; done: () => void } {
  let small = true;
  const limits = new Proxy(gpu.limits, {
    get: (t, k) => (k === "maxStorageBufferBindingSize" ? bytes : t[k as keyof typeof t]),
  });
  const fake = Object.create(gpu, { limits: { get: () => (small ? limits : gpu.limits) } }) as Gpu;
  return { fake, done: () => small = false };
}

gpuTest(
  "a chunked BERT word table loads, embeds and trains exactly as a whole one",
  async (gpu) => {
    const seed = freshSeed("bert chunked table");
    const config = tinyBertConfig();
    const weights = perturbedWeights(config, seed);
    const dir = await Deno.makeTempDir();
    await writeSafetensors(
      join(dir, "model.safetensors"),
      weights.map((w) => ({ ...w, name: `bert.${w.name}` })), // prefixed, as some checkpoints are
    );
    const whole = await XlmrParams.load(gpu, dir, config);
    // 48 rows per binding: the word table (97 rows) splits into 48 + 48 + 1, nothing else splits.
    const { fake, done } = chunkingGpu(gpu, 48 * config.hiddenSize * 4);
    const chunked = await XlmrParams.load(fake, dir, config);
    done();
    const word = chunked.param("embeddings.word_embeddings.weight");
    deepEqual(word.chunks.map((t) => t.shape[0]), [48, 48, 1]);
    for (const p of chunked.list()) if (p !== word) equal(p.chunks.length, 1, p.name);
    equal(whole.param("embeddings.word_embeddings.weight").chunks.length, 1);
    deepEqual(await chunked.read(word.name), await whole.read(word.name));
    const r = rng(seed + 2);
    const queries = bertSeqs(r, [6, 9, 4], config.vocabSize);
    const passages = bertSeqs(r, [7, 5, 8], config.vocabSize);
    const step = async (params: XlmrParams) => {
      const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, pooling: "cls" });
      trainer.step(queries, passages, 1e-2);
      const [stats] = await trainer.collect();
      const after = await params.read(word.name);
      trainer.release();
      return { loss: stats.loss, after };
    };
    const a = await step(whole), b = await step(chunked);
    // Each token's row is gathered from exactly one chunk and scattered back into it: same sums.
    equal(b.loss, a.loss);
    deepEqual(b.after, a.after);
    whole.release();
    chunked.release();
  },
);

// Checkpointing recomputes each layer from its input (bit-identical); GradCache encodes chunks of
// the batch at its padded length, so its sums differ in order only. Measured on BERT: identical
// losses, gradients ≤ 1.3e-7 relative; limits as in tests/training/grad_cache_test.ts (1e-6 for
// the loss, 5e-6 for all gradients together: 40× the noise).
gpuTest("checkpointing and GradCache give a BERT's plain-step loss and gradients", async (gpu) => {
  const seed = freshSeed("bert grad cache");
  const config = tinyBertConfig();
  const weights = perturbedWeights(config, seed);
  const r = rng(seed + 4);
  const queries = bertSeqs(r, [6, 9, 4, 7, 5], config.vocabSize);
  const passages = bertSeqs(r, [7, 5, 8, 3, 9], config.vocabSize);
  const run = async (o: { checkpointing?: boolean; gradCacheChunk?: number }) => {
    const params = uploadWeights(gpu, config, weights);
    const trainer = new Trainer(params, {
      ...DEFAULT_TRAINER_OPTIONS,
      pooling: "mean",
      temperature: 0.2,
      ...o,
    });
    trainer.step(queries, passages, 0);
    const [stats] = await trainer.collect();
    const grads = new Map<string, Float32Array>();
    for (const n of trainer.trainedNames()) grads.set(n, await gpu.read(trainer.grads.get(n)![0]));
    trainer.release();
    params.release();
    return { loss: stats.loss, grads };
  };
  const plain = await run({});
  for (
    const o of [{ checkpointing: true }, { gradCacheChunk: 2 }, {
      checkpointing: true,
      gradCacheChunk: 3,
    }]
  ) {
    const got = await run(o);
    const dl = Math.abs(got.loss - plain.loss) / plain.loss;
    ok(dl <= 1e-6, `${JSON.stringify(o)}: loss ${got.loss} vs ${plain.loss}`);
    let num = 0, den = 0;
    for (const [n, w] of plain.grads) {
      const g = got.grads.get(n)!;
      for (let i = 0; i < w.length; i++) {
        num += (g[i] - w[i]) ** 2;
        den += w[i] ** 2;
      }
    }
    const e = Math.sqrt(num / den);
    if (verbose) console.log(`bert ${JSON.stringify(o)}: loss ${dl}, gradients ${e}`);
    ok(e <= 5e-6, `${JSON.stringify(o)}: all gradients, relative error ${e}`);
  }
});

gpuTest("a BERT sentence pair embeds with token type 1 for its second segment", async (gpu) => {
  const enc = await Encoder.load(gpu, FIX + "model");
  const ckpt = await Checkpoint.open(FIX + "model");
  const w = new Map<string, Float64Array>();
  for (const n of ckpt.names()) w.set(n, Float64Array.from(await ckpt.readF32(n)));
  ckpt.close();
  const pairs = [
    ["Who wrote it?", "The paragraph that answers, in another sentence."],
    ["¿Dónde?", "En el río."],
  ];
  const got = await enc.embed(pairs.map(([text, pair]) => ({ text, pair })), { pooling: "cls" });
  const H = enc.config.hiddenSize;
  for (const [i, [a, b]] of pairs.entries()) {
    const { ids, typeIds } = enc.tokenizer!.encodePairWithTypes(a, b, 128);
    equal(ids.filter((x) => x === 3).length, 2); // [CLS] A [SEP] B [SEP]
    const want = referenceForward(w, enc.config, [ids], "cls", [typeIds]);
    const zeros = referenceForward(w, enc.config, [ids], "cls");
    const row = got.subarray(i * H, (i + 1) * H);
    const e = relErr(row, want);
    ok(e <= FIXTURE_REL_TOL, `pair ${i}: relative error ${e}`);
    // Type ids matter far above the tolerance.
    ok(relErr(row, zeros) > 100 * FIXTURE_REL_TOL, `pair ${i}: token types made no difference`);
  }
  enc.release();
});

gpuTest(
  "a BERT with XLM-R's tokenizer (multilingual MiniLM) keeps <s> = pad id 0 as a token",
  async (gpu) => {
    const seed = freshSeed("minilm");
    const config = tinyBertConfig();
    equal(config.padTokenId, 0);
    const weights = perturbedWeights(config, seed);
    const params = uploadWeights(gpu, config, weights);
    // <s> = 0, ids ≥ 4, </s> = 2: XLM-R's layout, as paraphrase-multilingual-MiniLM's tokenizer.
    const seqs = randomSeqs(rng(seed + 1), [9, 3, 6], config.vocabSize);
    const { pooled } = new XlmrModel(params).forward(makeTokenBatch(seqs, config), "mean");
    const got = await gpu.read(pooled);
    const want = referenceForward(refWeights(weights), config, seqs, "mean");
    const H = config.hiddenSize;
    for (let b = 0; b < seqs.length; b++) {
      const e = relErr(got.subarray(b * H, (b + 1) * H), want.subarray(b * H, (b + 1) * H));
      ok(e <= FORWARD_TOL, `sequence ${b}: relative error ${e}`);
    }
    gpu.release(pooled);
    params.release();
  },
);

Deno.test("a WordPiece vocabulary larger than the model's table is refused naming both files", async () => {
  const dir = await Deno.makeTempDir();
  const config = JSON.parse(await Deno.readTextFile(FIX + "model/config.json"));
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ ...config, vocab_size: 7999 }),
  );
  await Deno.copyFile(FIX + "model/tokenizer.json", join(dir, "tokenizer.json"));
  await Deno.copyFile(FIX + "model/model.safetensors", join(dir, "model.safetensors"));
  const gpu = { limits: {} } as unknown as Gpu; // refused before anything touches the GPU
  await rejects(Encoder.load(gpu, dir), /tokenizer has 8000 tokens but .*vocab_size 7999/);
});
