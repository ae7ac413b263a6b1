/**
 * A short hybrid `train()` run on the BertModel fixture (WordPiece tokenizer, positions from 0,
 * LayerNorm eps 1e-12), replayed in float64 from its own logs (metrics.jsonl, batches.jsonl):
 * at every step the logged loss against `referenceLoss` on the weights before the step, the
 * gradient norm against a float64 sum, each tensor's AdamW update against a float64 AdamW
 * (PyTorch's formulas, Hugging Face's no-decay rule, the logged lr and the clipping scale), and at
 * the first step the gradient against central differences of the float64 loss (word, position
 * and token type rows included). The replayed GPU steps end at the run's saved weights.
 *
 * Tolerances are those of tests/training/trainer_options_test.ts and tests/model/bert_test.ts,
 * 10–60× the noise measured here with TEST_VERBOSE=1 (see each constant).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Encoder } from "../../model/encoder.ts";
import { Checkpoint } from "../../model/safetensors.ts";
import { readChunks } from "../../model/params.ts";
import { referenceLoss } from "../../model/xlmr_reference.ts";
import { loadQaData } from "../../training/data.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { train } from "../../training/train.ts";
import { assertFiniteDifferences, gpuTest } from "../_helpers.ts";

const MODEL = fileURLToPath(new URL("../fixtures/bert-tiny/model", import.meta.url));
const XQUAD = fileURLToPath(new URL("../fixtures/xquad-r", import.meta.url));
const verbose = Deno.env.get("TEST_VERBOSE");

// Measured on lavapipe (the run is seeded, so these are its numbers): loss ≤ 1.3e-6 relative
// (temperature 0.05 multiplies the embeddings' ~2.7e-7 error by up to 20 in the logits; limit 15×),
// gradient norm ≤ 5.8e-8 (limit 17×), finite differences ≤ 1.6e-6 (limit 60×, as XLM-R's),
// updates ≤ 1.2e-4 per tensor with trainer_options_test's floor (limit 8.5×, the XLM-R fixture
// replay's 1e-3), the replayed GPU steps' losses and final weights bit-identical to the run's.
const LOSS_TOL = 2e-5;
const NORM_TOL = 1e-6;
const FD_TOL = 1e-4;
const UPDATE_TOL = 1e-3;

function hfDecays(name: string): boolean {
  return !name.endsWith(".bias") && !name.includes("LayerNorm.weight");
}

gpuTest("a hybrid train() run on the BertModel fixture passes a float64 replay", async (gpu) => {
  const root = await Deno.makeTempDir();
  const langs = ["de", "en", "zh"], maxLength = 20, steps = 4;
  const loss = { pooling: "cls" as const, temperature: 0.05 };
  const optim = { weightDecay: 0.01, maxGradNorm: 1.0 };
  const run = join(root, "run");
  await train(gpu, {
    model: MODEL,
    train: XQUAD,
    langs,
    out: run,
    steps,
    batchSize: 4,
    lr: 2e-3,
    warmupSteps: 0,
    sampler: "hybrid",
    alpha: 0.5,
    maxLength,
    logEvery: 1,
    seed: 11,
    quiet: true,
    ...loss,
    ...optim,
  });
  const metrics = (await Deno.readTextFile(join(run, "metrics.jsonl"))).trim().split("\n")
    .map((l) =>
      JSON.parse(l) as { step: number; loss: number; lr: number; grad_norm: number; kind: string }
    )
    .filter((m) => m.step !== undefined && m.loss !== undefined);
  const batches = (await Deno.readTextFile(join(run, "batches.jsonl"))).trim().split("\n")
    .map((l) =>
      JSON.parse(l) as { pairs: { id: string; query_lang: string; passage_lang: string }[] }
    );
  equal(metrics.length, steps);
  equal(batches.length, steps);
  // Hybrid: both monolingual (xx) and cross-lingual (xy) batches occur in the run.
  deepEqual(new Set(metrics.map((m) => m.kind)), new Set(["xx", "xy"]));
  const pairs = batches.flatMap((b) => b.pairs);
  ok(pairs.some((p) => p.query_lang === p.passage_lang), "no X-X pair");
  ok(pairs.some((p) => p.query_lang !== p.passage_lang), "no X-Y pair");
  // The run wrote a BERT folder with its WordPiece tokenizer.
  equal(JSON.parse(await Deno.readTextFile(join(run, "config.json"))).model_type, "bert");
  ok((await Deno.stat(join(run, "tokenizer.json"))).isFile);

  const enc = await Encoder.load(gpu, MODEL);
  const tok = enc.tokenizer!;
  equal(tok.kind, "wordpiece");
  const config = enc.config;
  const data = await loadQaData(XQUAD, { langs });
  const byId = new Map(data.items.map((it) => [it.id, it]));
  const trainer = new Trainer(enc.params, { ...DEFAULT_TRAINER_OPTIONS, ...loss, ...optim });
  const o = trainer.options;
  const names = enc.params.list().map((p) => p.name);
  const m = new Map<string, Float64Array>(), v = new Map<string, Float64Array>();
  let worstLoss = 0, worstNorm = 0, worstFd = 0, worstUpdate = 0;
  for (let t = 1; t <= steps; t++) {
    const { lr } = metrics[t - 1];
    const queries: number[][] = [], passages: number[][] = [];
    for (const p of batches[t - 1].pairs) {
      const item = byId.get(p.id)!;
      queries.push(tok.encode(item.question[p.query_lang], maxLength));
      passages.push(tok.encode(item.answer[p.passage_lang], maxLength));
    }
    const before = new Map<string, Float32Array>();
    for (const n of names) before.set(n, await enc.params.read(n));
    const ref = new Map([...before].map(([n, w]) => [n, Float64Array.from(w)]));
    const lossOf = () => referenceLoss(ref, config, queries, passages, loss);
    const want = lossOf();
    const le = Math.abs(metrics[t - 1].loss - want) / want;
    worstLoss = Math.max(worstLoss, le);
    ok(le <= LOSS_TOL, `step ${t}: logged loss ${metrics[t - 1].loss} vs float64 ${want}`);

    trainer.step(queries, passages, lr);
    const [stats] = await trainer.collect();
    equal(stats.loss, metrics[t - 1].loss, `step ${t}: the replayed GPU step gives the run's loss`);
    const grads = new Map<string, Float64Array>();
    let sq = 0;
    for (const n of trainer.trainedNames()) {
      const g = Float64Array.from(await readChunks(gpu, trainer.grads.get(n)!));
      for (const x of g) sq += x * x;
      grads.set(n, g);
    }
    const norm = Math.sqrt(sq);
    const ne = Math.abs(metrics[t - 1].grad_norm - norm) / norm;
    worstNorm = Math.max(worstNorm, ne);
    ok(ne <= NORM_TOL, `step ${t}: logged gradient norm ${metrics[t - 1].grad_norm} vs ${norm}`);
    if (t === 1) {
      for (
        const name of [
          "embeddings.word_embeddings.weight",
          "embeddings.position_embeddings.weight",
          "embeddings.token_type_embeddings.weight",
          "encoder.layer.0.attention.self.query.weight",
          "encoder.layer.1.output.LayerNorm.weight",
        ]
      ) {
        const g = grads.get(name)!, w = ref.get(name)!;
        worstFd = Math.max(
          worstFd,
          assertFiniteDifferences(`${name}`, g, w, () => lossOf(), 2, FD_TOL),
        );
      }
    }
    // PyTorch's clip_grad_norm_, then AdamW with decoupled decay (Hugging Face's no-decay rule).
    const scale = Math.min(1, o.maxGradNorm / (norm + 1e-6));
    for (const n of names) {
      const w0 = before.get(n)!;
      const got = (await enc.params.read(n)).map((x, i) => x - w0[i]);
      if (!grads.has(n)) {
        ok(got.every((x) => x === 0), `step ${t}: ${n} is not trained and must not move`);
        continue;
      }
      if (!m.has(n)) {
        m.set(n, new Float64Array(w0.length));
        v.set(n, new Float64Array(w0.length));
      }
      const mm = m.get(n)!, vv = v.get(n)!, g = grads.get(n)!;
      const wd = hfDecays(n) ? o.weightDecay : 0;
      const bc1 = 1 - o.beta1 ** t, bc2 = 1 - o.beta2 ** t;
      let num = 0, den = 0;
      for (let i = 0; i < w0.length; i++) {
        const gi = g[i] * scale;
        mm[i] = o.beta1 * mm[i] + (1 - o.beta1) * gi;
        vv[i] = o.beta2 * vv[i] + (1 - o.beta2) * gi * gi;
        const w = w0[i] * (1 - lr * wd) -
          (lr / bc1) * mm[i] / (Math.sqrt(vv[i]) / Math.sqrt(bc2) + o.eps);
        const want = w - w0[i];
        num += (got[i] - want) ** 2;
        den += want ** 2;
      }
      const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 0.01 * lr * Math.sqrt(w0.length));
      worstUpdate = Math.max(worstUpdate, e);
      ok(e <= UPDATE_TOL, `step ${t}: ${n} update relative error ${e}`);
    }
  }
  // The replay ends where the run ended.
  const saved = await Checkpoint.open(run);
  try {
    for (const n of names) {
      deepEqual(await saved.readF32(n), await enc.params.read(n), `${n} differs from the run's`);
    }
  } finally {
    saved.close();
  }
  if (verbose) {
    console.log(
      `bert train replay: loss ${worstLoss}, norm ${worstNorm}, FD ${worstFd}, update ${worstUpdate}`,
    );
  }
  trainer.release();
  enc.release();
  await Deno.remove(root, { recursive: true });
});
