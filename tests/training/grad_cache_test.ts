/**
 * Activation checkpointing and GradCache chunking reorganise the backward pass without changing
 * its result: the same loss and the same gradients as the plain step (bit-identical for
 * checkpointing, summation-order rounding for GradCache), with less device memory at the peak.
 */
import { equal, ok, throws } from "node:assert/strict";
import { presetConfig, type XlmrConfig } from "../../model/config.ts";
import { XlmrParams } from "../../model/params.ts";
import { randomWeights } from "../../model/init.ts";
import { makeTokenBatch, sliceTokenBatch } from "../../model/xlmr.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import {
  DEFAULT_TRAINER_OPTIONS,
  type StepStats,
  Trainer,
  type TrainerOptions,
} from "../../training/trainer.ts";
import { parseFlags } from "../../cli/flags.ts";
import { TRAIN_FLAGS, trainOptionsFromFlags } from "../../cli/train.ts";
import { freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";

function tinyConfig(numLayers = 2): XlmrConfig {
  return presetConfig("tiny", {
    vocabSize: 97,
    hiddenSize: 32,
    numLayers,
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

/**
 * Random weights scaled up (and LayerNorm/biases perturbed) so that the sequences' embeddings
 * differ: with the plain init every CLS embedding is nearly the same, the batch's gradient terms
 * cancel, and float32 rounding alone (even reordering the batch in the plain step) moves the
 * gradient by ~1e-3 relative, which would hide real errors.
 */
function spreadWeights(config: XlmrConfig, seed: number) {
  const r = rng(seed);
  return randomWeights(config, seed).map((w) => {
    const data = w.data.map((v) =>
      w.name.includes("LayerNorm") || w.name.endsWith(".bias") ? v + (r() - 0.5) * 0.2 : v * 5
    );
    return { ...w, data };
  });
}

interface StepResult {
  stats: StepStats;
  grads: Map<string, Float32Array>;
}

/** One step (lr 0) from the same initial weights; returns the loss statistics and gradients. */
async function runStep(
  gpu: Gpu,
  config: XlmrConfig,
  seed: number,
  options: Partial<TrainerOptions>,
  queries: number[][],
  passages: number[][],
): Promise<StepResult> {
  const params = XlmrParams.init(gpu, config, 0);
  for (const w of spreadWeights(config, seed)) params.upload(w.name, w.data);
  const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...options });
  trainer.step(queries, passages, 0);
  const [stats] = await trainer.collect();
  const grads = new Map<string, Float32Array>();
  for (const name of trainer.trainedNames()) {
    const parts = await gpu.readMany(trainer.grads.get(name)!);
    const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    grads.set(name, all);
  }
  trainer.release();
  params.release();
  return { stats, grads };
}

/** Relative error of all gradients together, and of each tensor alone (≤ `tensorTol`). */
function compare(
  got: StepResult,
  want: StepResult,
  tol: number,
  tensorTol: number,
  what: string,
): void {
  equal(got.grads.size, want.grads.size, `${what}: same trained parameters`);
  let num = 0, den = 0;
  for (const [name, w] of want.grads) {
    const g = got.grads.get(name)!;
    for (let i = 0; i < w.length; i++) {
      num += (g[i] - w[i]) ** 2;
      den += w[i] ** 2;
    }
    // The key bias adds the same q·b to every logit of a softmax row: its true gradient is 0 and
    // what is computed is rounding noise, so only the all-gradients measure can judge it.
    if (name.endsWith("attention.self.key.bias") && tensorTol > 1e-6) continue;
    const e = relErr(g, w);
    ok(e <= tensorTol, `${what}: ${name} gradient relative error ${e} > ${tensorTol}`);
  }
  const all = Math.sqrt(num / den);
  ok(all <= tol, `${what}: all gradients, relative error ${all} > ${tol}`);
  const gn = Math.abs(got.stats.gradNorm - want.stats.gradNorm) / want.stats.gradNorm;
  ok(gn <= tol, `${what}: gradient norm ${got.stats.gradNorm} vs ${want.stats.gradNorm}`);
}

for (const pooling of ["cls", "mean"] as const) {
  gpuTest(
    `checkpointing and GradCache give the plain step's loss and gradients with ${pooling} pooling`,
    async (gpu) => {
      const seed = freshSeed("grad cache");
      const config = tinyConfig();
      const r = rng(seed);
      // B = 7 queries, 7 positives + 4 hard negatives; chunk 3 divides neither 7 nor 11.
      const queries = randomSeqs(r, [6, 4, 9, 3, 12, 5, 7], config.vocabSize);
      const passages = randomSeqs(r, [8, 5, 14, 7, 3, 10, 6, 9, 4, 11, 5], config.vocabSize);
      const base = { pooling, temperature: 0.3, symmetric: pooling === "mean" };
      const run = (o: Partial<TrainerOptions>) =>
        runStep(gpu, config, seed, { ...base, ...o }, queries, passages);
      const plain = await run({});
      ok(Number.isFinite(plain.stats.loss) && plain.stats.gradNorm > 0, "the plain step is sane");

      const ckpt = await run({ checkpointing: true });
      equal(ckpt.stats.loss, plain.stats.loss, "checkpointing: same loss");
      compare(ckpt, plain, 1e-6, 1e-6, "checkpointing");

      for (const chunk of [3, 1, 20]) {
        const gc = await run({ gradCacheChunk: chunk });
        // Each chunk is encoded at the whole batch's padded length, so the rows are the same
        // (bit-identical at these sizes; a matmul that picks other tiles for fewer rows rounds
        // differently, hence the 1e-6).
        const dl = Math.abs(gc.stats.loss - plain.stats.loss) / Math.abs(plain.stats.loss);
        ok(dl <= 1e-6, `GradCache ${chunk}: loss ${gc.stats.loss} vs ${plain.stats.loss}`);
        equal(gc.stats.accuracy, plain.stats.accuracy, `GradCache ${chunk}: same accuracy`);
        // Only the order of the weight-gradient sums changes (~3e-7 measured, 7e-6 per tensor).
        compare(gc, plain, 5e-6, 5e-5, `GradCache ${chunk}`);
        if (chunk === 3) {
          const both = await run({ gradCacheChunk: 3, checkpointing: true });
          equal(both.stats.loss, gc.stats.loss, "both: same loss as GradCache alone");
          compare(both, gc, 1e-6, 1e-6, "GradCache 3 + checkpointing vs GradCache 3");
        }
      }
    },
  );
}

gpuTest("checkpointing and GradCache lower the peak memory of a step", async (gpu) => {
  const config = tinyConfig(4);
  const r = rng(11);
  const B = 8;
  const queries = randomSeqs(r, Array(B).fill(24), config.vocabSize);
  const passages = randomSeqs(r, Array(B).fill(24), config.vocabSize);
  const peakOf = async (o: Partial<TrainerOptions>) => {
    const params = XlmrParams.init(gpu, config, 1);
    const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...o });
    // Start from an empty pool so that the step's own allocations are what is measured.
    gpu.trim();
    const before = gpu.allocatedBytes;
    gpu.peakBytes = before;
    trainer.step(queries, passages, 1e-4);
    const [stats] = await trainer.collect();
    ok(Number.isFinite(stats.loss));
    const peak = gpu.peakBytes - before;
    trainer.release();
    params.release();
    return peak;
  };
  const plain = await peakOf({});
  const ckpt = await peakOf({ checkpointing: true });
  const gc = await peakOf({ gradCacheChunk: 2 });
  const both = await peakOf({ gradCacheChunk: 2, checkpointing: true });
  ok(ckpt < 0.75 * plain, `checkpointing: ${ckpt} bytes vs plain ${plain}`);
  ok(gc < 0.5 * plain, `GradCache: ${gc} bytes vs plain ${plain}`);
  ok(both < gc, `both: ${both} bytes vs GradCache alone ${gc}`);
});

gpuTest("bad memory-saving options fail naming the field", (gpu) => {
  const params = XlmrParams.init(gpu, tinyConfig(1), 0);
  try {
    const make = (o: Partial<TrainerOptions>) =>
      new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...o });
    throws(() => make({ gradCacheChunk: -1 }), /gradCacheChunk/);
    throws(() => make({ gradCacheChunk: 2.5 }), /gradCacheChunk/);
    throws(() => make({ checkpointing: "yes" as unknown as boolean }), /checkpointing/);
  } finally {
    params.release();
  }
  return Promise.resolve();
});

Deno.test("a batch slice keeps the padded length and the rows it names", () => {
  const config = tinyConfig();
  const whole = makeTokenBatch([[0, 5, 2], [0, 6, 7, 8, 2], [0, 9, 2]], config);
  const part = sliceTokenBatch(whole, 1, 2);
  equal(part.batch, 2);
  equal(part.seq, 5);
  equal([...part.ids].join(","), [...whole.ids.subarray(5)].join(","));
  equal([...part.positions].join(","), [...whole.positions.subarray(5)].join(","));
  equal([...part.mask].join(","), [...whole.mask.subarray(5)].join(","));
  throws(() => sliceTokenBatch(whole, 2, 2), RangeError);
  throws(() => sliceTokenBatch(whole, 0, 0), RangeError);
});

Deno.test("train's --grad-cache-chunk and --checkpointing flags reach the trainer options", () => {
  const args = ["--model", "m", "--train", "t", "--out", "o"];
  const on = trainOptionsFromFlags(
    "train",
    parseFlags("train", [...args, "--grad-cache-chunk", "8", "--checkpointing"], TRAIN_FLAGS),
  );
  equal(on.gradCacheChunk, 8);
  equal(on.checkpointing, true);
  const off = trainOptionsFromFlags("train", parseFlags("train", args, TRAIN_FLAGS));
  equal(off.gradCacheChunk, undefined);
  equal(off.checkpointing, undefined);
  throws(
    () =>
      trainOptionsFromFlags(
        "train",
        parseFlags("train", [...args, "--grad-cache-chunk", "2.5"], TRAIN_FLAGS),
      ),
    /grad-cache-chunk/,
  );
});
