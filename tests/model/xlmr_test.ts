/**
 * The GPU model against the float64 reference (`model/xlmr_reference.ts`), which encodes each raw
 * sequence on its own with its own position ids, so batching bugs cannot cancel out.
 *
 * Tolerances (measured on lavapipe over 6 seeds with TEST_VERBOSE=1, see each test): about 10–20× the worst error
 * seen, so that a real bug (a wrong eps, position or mask) cannot hide under them.
 */
import { ok } from "node:assert/strict";
import { makeTokenBatch, type Pooling, XlmrModel } from "../../model/xlmr.ts";
import { referenceForward, referenceLoss } from "../../model/xlmr_reference.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { assertFiniteDifferences, freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";
import { perturbedWeights, randomSeqs, refWeights, tinyConfig, uploadWeights } from "./_tiny.ts";

const verbose = Deno.env.get("TEST_VERBOSE");

// Worst relative error per sequence measured: 2.1e-7 (cls), 1.8e-7 (mean), 2.4e-7 (pooler); 5e-6
// is 20× that.
const FORWARD_TOL = 5e-6;

for (const pooling of ["cls", "mean", "pooler"] as Pooling[]) {
  gpuTest(
    `the GPU forward matches the float64 reference with ${pooling} pooling on unequal lengths`,
    async (gpu) => {
      const seed = freshSeed("xlmr forward");
      const config = tinyConfig();
      const weights = perturbedWeights(config, seed);
      const params = uploadWeights(gpu, config, weights);
      const seqs = randomSeqs(rng(seed + 1), [11, 3, 7, 11, 5], config.vocabSize);
      const model = new XlmrModel(params);
      const { pooled } = model.forward(makeTokenBatch(seqs, config), pooling);
      const got = await gpu.read(pooled);
      const want = referenceForward(refWeights(weights), config, seqs, pooling);
      const H = config.hiddenSize;
      let worst = 0;
      for (let b = 0; b < seqs.length; b++) {
        const e = relErr(got.subarray(b * H, (b + 1) * H), want.subarray(b * H, (b + 1) * H));
        worst = Math.max(worst, e);
        ok(e <= FORWARD_TOL, `sequence ${b}: relative error ${e} > ${FORWARD_TOL}`);
      }
      if (verbose) console.log(`forward ${pooling}: worst relative error ${worst}`);
      gpu.release(pooled);
      params.release();
    },
  );
}

// Measured: loss relative error ≤ 2.7e-7 (limit 19× that); finite-difference disagreement ≤ 3.7e-6
// (limit 27× that): float32 gradients against central differences of the float64 loss with
// h = 1e-5, whose own truncation and rounding error is ~1e-9.
const LOSS_TOL = 5e-6;
const FD_TOL = 1e-4;

// Hidden 32 runs the three q/k/v products; hidden 64 the trainer's fused QKV product (its q/k/v
// biases fill whole 256-byte steps of the flat layout, so they lie back to back).
for (const hiddenSize of [32, 64]) {
  gpuTest(
    `the whole tiny model's gradient matches finite differences of the float64 loss (hidden ${hiddenSize})`,
    async (gpu) => {
      const seed = freshSeed("xlmr grad");
      const config = tinyConfig({ hiddenSize });
      const weights = perturbedWeights(config, seed);
      const params = uploadWeights(gpu, config, weights);
      const r = rng(seed + 7);
      const queries = randomSeqs(r, [6, 4, 9], config.vocabSize);
      const passages = randomSeqs(r, [8, 5, 7], config.vocabSize);
      const opts = { pooling: "mean" as const, temperature: 0.5 };
      const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...opts, maxGradNorm: 0 });
      // lr 0: the step computes gradients but leaves the weights as they are.
      for (let l = 0; l < config.numLayers; l++) {
        ok(trainer.model.fusesQkv(l) === (hiddenSize === 64), `layer ${l}: fused QKV as expected`);
      }
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
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.value.bias",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.1.intermediate.dense.weight",
        "encoder.layer.1.output.dense.bias",
        "encoder.layer.1.output.LayerNorm.bias",
      ];
      let worst = 0;
      for (const name of checked) {
        const grad = await gpu.read(trainer.grads.get(name)![0]);
        const w = ref.get(name)!;
        // Entries with the largest gradient magnitude are well above float32 noise.
        worst = Math.max(
          worst,
          assertFiniteDifferences(`${name}`, grad, w, () => lossOf(), 3, FD_TOL),
        );
      }
      if (verbose) {
        console.log(`grad: loss error ${lossErr}, worst finite-difference error ${worst}`);
      }
      trainer.release();
      params.release();
    },
  );
}
