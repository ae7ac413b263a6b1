/**
 * Dropout in training: hidden (embeddings, attention output, FFN output) and attention
 * probabilities (inside the fused attention):
 * - the trainer's loss with dropout p > 0 equals the float64 reference run with the same masks,
 *   and its gradient matches the reference's finite differences with the masks fixed;
 * - GradCache chunks and activation checkpointing see the same masks (same gradients);
 * - evaluation (evaluateLoss) runs without dropout;
 * - p = 0 is today's computation bit for bit; a resumed run with dropout is byte-identical.
 * Tolerances: measured with hidden dropout 0.3 and attention dropout 0.2 over 6 seeds
 * (TEST_VERBOSE=1): loss ≤ 1.5e-7 relative, evaluation loss ≤ 2.2e-7, finite differences
 * ≤ 8.3e-7, GradCache + checkpointing vs plain gradients ≤ 8.1e-7 (each limit says its margin).
 */
import { equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetConfig } from "../../model/config.ts";
import { initModelDir } from "../../model/init.ts";
import { referenceLoss } from "../../model/xlmr_reference.ts";
import { dropoutKey } from "../../kernels/dropout.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../../training/trainer.ts";
import { train } from "../../training/train.ts";
import { assertFiniteDifferences, freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";
import {
  perturbedWeights,
  randomSeqs,
  refWeights,
  tinyConfig,
  uploadWeights,
} from "../model/_tiny.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");
const PAIRS = join(FIXTURES, "xlmr-tiny/pairs.jsonl");
const verbose = Deno.env.get("TEST_VERBOSE");

const LOSS_TOL = 3e-6; // measured ≤ 2.2e-7 (14×)
const FD_TOL = 1e-5; // measured ≤ 8.3e-7 (12×)
const CHUNK_TOL = 1e-5; // GradCache/checkpointing vs plain gradients, measured ≤ 8.1e-7 (12×)
const P = 0.3;
const PA = 0.2; // attention-probability dropout

gpuTest(
  "dropout: loss and gradient match the float64 reference with the same masks",
  async (gpu) => {
    const seed = freshSeed("dropout loss");
    const config = tinyConfig();
    const weights = perturbedWeights(config, seed);
    const r = rng(seed + 1);
    const queries = randomSeqs(r, [6, 4, 9, 5], config.vocabSize);
    const passages = randomSeqs(r, [8, 5, 7, 3, 6], config.vocabSize); // one hard negative
    const opts = { pooling: "mean" as const, temperature: 0.2, symmetric: false };
    const dropoutSeed = seed % 1000;
    const run = async (extra: Partial<typeof DEFAULT_TRAINER_OPTIONS>) => {
      const params = uploadWeights(gpu, config, weights);
      const trainer = new Trainer(params, {
        ...DEFAULT_TRAINER_OPTIONS,
        ...opts,
        maxGradNorm: 0,
        dropout: P,
        attentionDropout: PA,
        dropoutSeed,
        ...extra,
      });
      trainer.step(queries, passages, 0); // lr 0: gradients only
      const [stats] = await trainer.collect();
      const grads = new Map<string, Float32Array>();
      for (const n of trainer.trainedNames()) {
        grads.set(
          n,
          await gpu.read(trainer.grads.get(n)![0]),
        );
      }
      const evalLoss = (await trainer.evaluateLoss([{ queries, passages }]))[0].loss;
      trainer.release();
      params.release();
      return { loss: stats.loss, grads, evalLoss };
    };
    const got = await run({});
    const ref = refWeights(weights);
    const dropout = {
      p: P,
      attention: PA,
      queryKey: dropoutKey(dropoutSeed, 1, 0),
      passageKey: dropoutKey(dropoutSeed, 1, 1),
    };
    const lossOf = () => referenceLoss(ref, config, queries, passages, { ...opts, dropout });
    const base = lossOf();
    const noDrop = referenceLoss(ref, config, queries, passages, opts);
    const lossErr = Math.abs(got.loss - base) / base;
    ok(lossErr <= LOSS_TOL, `loss ${got.loss} vs reference with the masks ${base} (${lossErr})`);
    ok(Math.abs(noDrop - base) / base > 100 * LOSS_TOL, "dropout did not change the loss");
    // The attention dropout is part of what matched: without it the reference loss differs.
    const hiddenOnly = referenceLoss(ref, config, queries, passages, {
      ...opts,
      dropout: { ...dropout, attention: 0 },
    });
    ok(Math.abs(hiddenOnly - base) / base > 10 * LOSS_TOL, "attention dropout changed nothing");
    // Evaluation runs without dropout.
    const evalErr = Math.abs(got.evalLoss - noDrop) / noDrop;
    ok(evalErr <= LOSS_TOL, `evaluateLoss ${got.evalLoss} vs reference without dropout ${noDrop}`);
    let worst = 0;
    for (
      const name of [
        "embeddings.word_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.1.attention.self.value.weight",
        "encoder.layer.1.output.dense.bias",
        "encoder.layer.1.intermediate.dense.weight",
      ]
    ) {
      const grad = got.grads.get(name)!;
      const w = ref.get(name)!;
      worst = Math.max(
        worst,
        assertFiniteDifferences(`${name}`, grad, w, () => lossOf(), 2, FD_TOL),
      );
    }
    // GradCache in chunks of 2 with checkpointing: the same masks, so the same gradients.
    const chunked = await run({ gradCacheChunk: 2, checkpointing: true });
    let chunkErr = 0;
    for (const [n, g] of got.grads) {
      // The key bias does not change attention (softmax is shift-invariant): its true gradient is
      // 0 and what the GPU computes is rounding noise, so it has no relative error to compare.
      if (n.endsWith("attention.self.key.bias")) continue;
      chunkErr = Math.max(chunkErr, relErr(chunked.grads.get(n)!, g));
    }
    ok(chunkErr <= CHUNK_TOL, `GradCache + checkpointing gradients differ: ${chunkErr}`);
    if (verbose) {
      console.log(`dropout: loss ${lossErr}, eval ${evalErr}, fd ${worst}, chunks ${chunkErr}`);
    }
  },
);

async function tinyModel(dir: string, dropout = 0): Promise<string> {
  const config = presetConfig("tiny", {
    vocabSize: 16002,
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 2,
    intermediateSize: 64,
    maxPositions: 42,
    hiddenDropout: dropout,
    attentionDropout: dropout,
  });
  await initModelDir(dir, config, { seed: 3, tokenizerDir: TOKENIZER });
  return dir;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const x = await Deno.readFile(a), y = await Deno.readFile(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

gpuTest(
  "dropout: p = 0 is the computation without dropout; the config's p is the default; a " +
    "resumed run with dropout is byte-identical",
  async (gpu) => {
    const root = await Deno.makeTempDir();
    const plain = await tinyModel(join(root, "plain"));
    // Same weights, config hidden and attention dropout 0.2.
    const withP = await tinyModel(join(root, "with-p"), 0.2);
    const common = {
      train: PAIRS,
      steps: 6,
      batchSize: 6,
      lr: 1e-3,
      maxLength: 24,
      logEvery: 1,
      seed: 9,
      quiet: true,
    };
    const run = (model: string, name: string, extra = {}) =>
      train(gpu, { ...common, model, out: join(root, name), ...extra });
    await run(plain, "a");
    await run(plain, "b", { dropout: 0 });
    await run(withP, "c", { dropout: 0 });
    await run(withP, "d"); // the config's 0.2
    await run(plain, "e", { dropout: 0.2 });
    const m = (name: string) => join(root, name, "model.safetensors");
    ok(await sameBytes(m("a"), m("b")), "--dropout 0 changed the result");
    ok(await sameBytes(m("a"), m("c")), "--dropout 0 does not override the config");
    ok(!(await sameBytes(m("a"), m("d"))), "the config's hidden_dropout_prob was not applied");
    // The config's p (hidden and attention) and --dropout 0.2 (both): the same masks.
    const md = await Deno.readTextFile(join(root, "d", "metrics.jsonl"));
    equal(md, await Deno.readTextFile(join(root, "e", "metrics.jsonl")));
    // Killed after the checkpoint of step 4, resumed: byte-identical to the straight run.
    const resumed = join(root, "f");
    const again = { dropout: 0.2, saveEvery: 4 };
    await rejects(
      train(gpu, { ...common, model: plain, out: resumed, ...again }, (stats) => {
        if (stats.some((s) => s.step === 5)) throw new Error("simulated crash");
      }),
      /simulated crash/,
    );
    await train(gpu, { ...common, model: plain, out: resumed, ...again, resume: resumed });
    ok(await sameBytes(m("e"), m("f")), "a resumed run with dropout differs");
    equal(
      await Deno.readTextFile(join(resumed, "metrics.jsonl")),
      await Deno.readTextFile(join(root, "e", "metrics.jsonl")),
    );
    await Deno.remove(root, { recursive: true });
  },
);
