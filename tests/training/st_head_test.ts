/**
 * Training through a sentence-transformers Dense head (`XlmrParams.head`: Dense layers after
 * pooling, as LaBSE's cls → Dense(tanh) → Normalize): the loss and gradients against the float64
 * reference with the same head, GradCache and checkpointing with the head against the plain step,
 * and a head left alone when the trainer does not run it.
 *
 * Tolerances as in tests/model/xlmr_test.ts (measured here with TEST_VERBOSE=1, see each).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { XlmrParams } from "../../model/params.ts";
import { referenceLoss } from "../../model/xlmr_reference.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer, type TrainerOptions } from "../../training/trainer.ts";
import { assertFiniteDifferences, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";
import {
  type NamedWeight,
  perturbedWeights,
  randomSeqs,
  refWeights,
  tinyBertConfig,
  uploadWeights,
} from "../model/_tiny.ts";

const verbose = Deno.env.get("TEST_VERBOSE");

// Measured over 5 seeds: loss ≤ 2.4e-7 relative (limit 21×), finite differences ≤ 8.3e-6 (limit
// 12×); GradCache/checkpointing: identical loss, gradients ≤ 2.0e-7 (limit 25×).
const LOSS_TOL = 5e-6;
const FD_TOL = 1e-4;
const SAME_TOL = 5e-6;

/** Two Dense layers: H → 24 with tanh (as LaBSE's), 24 → 16 without activation. */
function headLayers(H: number, r: () => number) {
  const layer = (i: number, o: number, act: "tanh" | "identity") => ({
    inFeatures: i,
    outFeatures: o,
    weight: randn(i * o, r, 0.4),
    bias: randn(o, r, 0.2),
    activation: act,
  });
  return [layer(H, 24, "tanh"), layer(24, 16, "identity")];
}

function bertSeqs(r: () => number, lengths: number[], vocab: number): number[][] {
  return randomSeqs(r, lengths, vocab).map((s) => [2, ...s.slice(1, -1), 3]);
}

function withHead(params: XlmrParams, weights: NamedWeight[], r: () => number): NamedWeight[] {
  const layers = headLayers(params.config.hiddenSize, r);
  params.addHead(layers);
  return [
    ...weights,
    ...layers.flatMap((l, i) => [
      { name: `head.${i}.weight`, shape: [l.outFeatures, l.inFeatures], data: l.weight },
      { name: `head.${i}.bias`, shape: [l.outFeatures], data: l.bias },
    ]),
  ];
}

for (const pooling of ["cls", "mean"] as const) {
  gpuTest(
    `training through a Dense head (${pooling}) matches the float64 loss and gradient`,
    async (gpu) => {
      const seed = freshSeed(`st head ${pooling}`);
      const config = tinyBertConfig();
      const r = rng(seed);
      const params = uploadWeights(gpu, config, perturbedWeights(config, seed));
      const weights = withHead(params, perturbedWeights(config, seed), r);
      equal(params.head.length, 2);
      const queries = bertSeqs(r, [6, 4, 9], config.vocabSize);
      const passages = bertSeqs(r, [8, 5, 7, 6], config.vocabSize);
      const opts = { pooling, temperature: 0.2 };
      const trainer = new Trainer(params, {
        ...DEFAULT_TRAINER_OPTIONS,
        ...opts,
        maxGradNorm: 0,
        head: true,
      });
      ok(trainer.trainedNames().includes("head.1.bias"));
      trainer.step(queries, passages, 0);
      const [stats] = await trainer.collect();
      const ref = refWeights(weights);
      const head = [{ tanh: true }, { tanh: false }];
      const lossOf = () => referenceLoss(ref, config, queries, passages, { ...opts, head });
      const base = lossOf();
      // Without the head the loss is another number: the head is really in the loop.
      const noHead = referenceLoss(ref, config, queries, passages, opts);
      ok(Math.abs(noHead - base) / base > 100 * LOSS_TOL, "the head does not change the loss");
      const le = Math.abs(stats.loss - base) / base;
      ok(le <= LOSS_TOL, `loss ${stats.loss} vs ${base}: relative error ${le}`);
      let worst = 0;
      for (
        const name of [
          "head.0.weight",
          "head.0.bias",
          "head.1.weight",
          "head.1.bias",
          "encoder.layer.1.output.dense.weight",
          "embeddings.word_embeddings.weight",
        ]
      ) {
        const grad = await gpu.read(trainer.grads.get(name)![0]);
        const w = ref.get(name)!;
        worst = Math.max(
          worst,
          assertFiniteDifferences(`${name}`, grad, w, () => lossOf(), 2, FD_TOL),
        );
      }
      if (verbose) console.log(`st head ${pooling}: loss ${le}, finite differences ${worst}`);
      trainer.release();
      params.release();
    },
  );
}

gpuTest("GradCache and checkpointing through the head give the plain step", async (gpu) => {
  const seed = freshSeed("st head grad cache");
  const config = tinyBertConfig();
  const weights = perturbedWeights(config, seed);
  const r = rng(seed + 1);
  const layers = headLayers(config.hiddenSize, r);
  const queries = bertSeqs(r, [6, 9, 4, 7, 5], config.vocabSize);
  const passages = bertSeqs(r, [7, 5, 8, 3, 9], config.vocabSize);
  const run = async (o: Partial<TrainerOptions>) => {
    const params = uploadWeights(gpu, config, weights);
    params.addHead(layers);
    const trainer = new Trainer(params, {
      ...DEFAULT_TRAINER_OPTIONS,
      pooling: "cls",
      temperature: 0.2,
      head: true,
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
  for (const o of [{ checkpointing: true }, { gradCacheChunk: 2 }]) {
    const got = await run(o);
    const dl = Math.abs(got.loss - plain.loss) / plain.loss;
    ok(dl <= 1e-6, `${JSON.stringify(o)}: loss ${got.loss} vs ${plain.loss}`);
    deepEqual([...got.grads.keys()], [...plain.grads.keys()]);
    let num = 0, den = 0;
    for (const [n, w] of plain.grads) {
      const g = got.grads.get(n)!;
      for (let i = 0; i < w.length; i++) {
        num += (g[i] - w[i]) ** 2;
        den += w[i] ** 2;
      }
    }
    const e = Math.sqrt(num / den);
    if (verbose) console.log(`st head ${JSON.stringify(o)}: loss ${dl}, gradients ${e}`);
    ok(e <= SAME_TOL, `${JSON.stringify(o)}: all gradients, relative error ${e}`);
  }
});

gpuTest("a trainer that does not run the head leaves it untouched", async (gpu) => {
  const seed = freshSeed("st head off");
  const config = tinyBertConfig();
  const r = rng(seed);
  const params = uploadWeights(gpu, config, perturbedWeights(config, seed));
  const layers = headLayers(config.hiddenSize, r);
  params.addHead(layers);
  const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, weightDecay: 0.1 });
  ok(!trainer.trainedNames().some((n) => n.startsWith("head.")));
  trainer.step(bertSeqs(r, [5, 6], config.vocabSize), bertSeqs(r, [4, 7], config.vocabSize), 1e-2);
  await trainer.collect();
  deepEqual(await params.read("head.0.weight"), layers[0].weight);
  deepEqual(await params.read("head.1.bias"), layers[1].bias);
  trainer.release();
  params.release();
});
