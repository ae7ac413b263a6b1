import { ok } from "node:assert/strict";
import { presetConfig, type XlmrConfig } from "../../model/config.ts";
import { XlmrParams } from "../../model/params.ts";
import { randomWeights } from "../../model/init.ts";
import { makeTokenBatch, type Pooling, XlmrModel } from "../../model/xlmr.ts";
import { referenceForward, referenceInfoNce, type RefWeights } from "../../model/xlmr_reference.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";

function tinyConfig(): XlmrConfig {
  return presetConfig("tiny", {
    vocabSize: 97,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 48,
    maxPositions: 40,
  });
}

function randomSeqs(r: () => number, lengths: number[], vocab: number): number[][] {
  return lengths.map((n) => {
    const s = [0];
    for (let i = 0; i < n - 2; i++) s.push(4 + Math.floor(r() * (vocab - 4)));
    s.push(2);
    return s;
  });
}

function refWeights(ws: { name: string; data: Float32Array }[]): RefWeights {
  return new Map(ws.map((w) => [w.name, Float64Array.from(w.data)]));
}

/** Random weights with non-trivial LayerNorm and biases, so that every path is exercised. */
function perturbedWeights(config: XlmrConfig, seed: number) {
  const r = rng(seed);
  return randomWeights(config, seed).map((w) => {
    const data = w.data.map((v) =>
      w.name.includes("LayerNorm") || w.name.endsWith(".bias") ? v + (r() - 0.5) * 0.2 : v * 5
    );
    return { ...w, data };
  });
}

for (const pooling of ["cls", "mean", "pooler"] as Pooling[]) {
  gpuTest(
    `the GPU forward matches the float64 reference with ${pooling} pooling on unequal lengths`,
    async (gpu) => {
      const seed = freshSeed("xlmr forward");
      const config = tinyConfig();
      const weights = perturbedWeights(config, seed);
      const params = XlmrParams.init(gpu, config, 0);
      for (const w of weights) params.upload(w.name, w.data);
      const r = rng(seed + 1);
      const batch = makeTokenBatch(randomSeqs(r, [11, 3, 7, 11, 5], config.vocabSize), config);
      const model = new XlmrModel(params);
      const { pooled } = model.forward(batch, pooling);
      const got = await gpu.read(pooled);
      const want = referenceForward(refWeights(weights), config, batch, pooling);
      const H = config.hiddenSize;
      for (let b = 0; b < batch.batch; b++) {
        const e = relErr(got.subarray(b * H, (b + 1) * H), want.subarray(b * H, (b + 1) * H));
        ok(e <= 1e-4, `sequence ${b}: relative error ${e}`);
      }
      gpu.release(pooled);
      params.release();
    },
  );
}

gpuTest(
  "the whole tiny model's gradient matches finite differences of the float64 loss",
  async (gpu) => {
    const seed = freshSeed("xlmr grad");
    const config = tinyConfig();
    const weights = perturbedWeights(config, seed);
    const params = XlmrParams.init(gpu, config, 0);
    for (const w of weights) params.upload(w.name, w.data);
    const r = rng(seed + 7);
    const queries = randomSeqs(r, [6, 4, 9], config.vocabSize);
    const passages = randomSeqs(r, [8, 5, 7], config.vocabSize);
    const temperature = 0.5;
    const trainer = new Trainer(params, {
      ...DEFAULT_TRAINER_OPTIONS,
      pooling: "mean",
      temperature,
      maxGradNorm: 0,
    });
    // lr 0: the step computes gradients but leaves the weights as they are.
    trainer.step(queries, passages, 0);
    const [stats] = await trainer.collect();
    const ref = refWeights(weights);
    const qb = makeTokenBatch(queries, config), pb = makeTokenBatch(passages, config);
    const H = config.hiddenSize;
    const lossOf = (w: RefWeights) =>
      referenceInfoNce(
        referenceForward(w, config, qb, "mean"),
        referenceForward(w, config, pb, "mean"),
        3,
        3,
        H,
        temperature,
      );
    const base = lossOf(ref);
    ok(Math.abs(stats.loss - base) <= 1e-4 * Math.abs(base), `loss ${stats.loss} vs ${base}`);
    const checked = [
      "embeddings.word_embeddings.weight",
      "embeddings.position_embeddings.weight",
      "embeddings.LayerNorm.weight",
      "encoder.layer.0.attention.self.query.weight",
      "encoder.layer.0.attention.self.value.bias",
      "encoder.layer.0.attention.output.dense.weight",
      "encoder.layer.1.intermediate.dense.weight",
      "encoder.layer.1.output.dense.bias",
      "encoder.layer.1.output.LayerNorm.bias",
    ];
    for (const name of checked) {
      const grad = await gpu.read(trainer.grads.get(name)![0]);
      const w = ref.get(name)!;
      // Entries with the largest gradient magnitude are well above float32 noise.
      const idx = [...grad.keys()].sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a])).slice(
        0,
        3,
      );
      for (const i of idx) {
        const h = 1e-5, old = w[i];
        w[i] = old + h;
        const up = lossOf(ref);
        w[i] = old - h;
        const down = lossOf(ref);
        w[i] = old;
        const fd = (up - down) / (2 * h);
        const err = Math.abs(grad[i] - fd) / Math.max(Math.abs(fd), 1e-3);
        ok(err <= 2e-2, `${name}[${i}]: GPU ${grad[i]} vs finite difference ${fd}`);
      }
    }
    trainer.release();
    params.release();
  },
);
