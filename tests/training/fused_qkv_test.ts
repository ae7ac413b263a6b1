/**
 * The fused QKV product (TrainerOptions.fuseQkv): one `[R, H]·[3H, H]ᵀ` product and packed
 * attention instead of three products, with fewer dispatches and the same training up to f32
 * rounding, under every way a step can run (checkpointing, GradCache, dropout, mixed precision).
 * The float64 checks of the fused path are in tests/model/xlmr_test.ts (finite differences at
 * hidden 64) and tests/model/fixture_test.ts (the independent reference's steps).
 * @module
 */
import { equal, ok } from "node:assert/strict";
import type { Gpu } from "../../kernels/runtime.ts";
import { presetConfig } from "../../model/config.ts";
import { XlmrParams } from "../../model/params.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer, type TrainerOptions } from "../../training/trainer.ts";
import { freshSeed, gpuTest, relErr, rng } from "../_helpers.ts";
import { randomSeqs } from "../model/_tiny.ts";

const verbose = !!Deno.env.get("TEST_VERBOSE");
// Hidden 64: the q/k/v biases fill whole 256-byte alignment steps, so the flat layout puts them
// back to back and the fused path runs.
const config = presetConfig("tiny", {
  vocabSize: 97,
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  intermediateSize: 96,
  maxPositions: 40,
});
// Fused and unfused compute each output element as the same dot product; only the wider product's
// tile plan (split-K summation order) differs, so they agree to f32 rounding. Measured with
// TEST_VERBOSE=1 over 3 seeds per case: losses ≤ 2.4e-6 relative (steps 2-3 come after an Adam
// update, which amplifies last-bit gradient differences), whole-tensor gradients ≤ 8.1e-5 (the
// worst are bias and token-type gradients: column sums of rows that nearly cancel). Limits ~12x
// above. The fused path against float64 is checked in the files named above.
const LOSS_TOL = 3e-5;
const GRAD_TOL = 1e-3;

const seqs = (r: () => number, lengths: number[]) => randomSeqs(r, lengths, config.vocabSize);

async function run(gpu: Gpu, seed: number, options: Partial<TrainerOptions>) {
  const r = rng(seed);
  const params = XlmrParams.init(gpu, config, seed);
  const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...options });
  const fused = trainer.model.fusesQkv(0) && trainer.model.fusesQkv(1);
  // Step 1 at lr 0: its gradients, on the weights both runs share.
  const before = gpu.dispatchCount;
  trainer.step(seqs(r, [5, 9, 3, 12]), seqs(r, [7, 4, 11, 6]), 0);
  const dispatches = gpu.dispatchCount - before;
  const grads = new Map<string, Float32Array>();
  for (const name of trainer.trainedNames()) {
    grads.set(name, await gpu.read(trainer.grads.get(name)![0]));
  }
  // Two real steps: the losses after an update.
  for (let s = 0; s < 2; s++) trainer.step(seqs(r, [6, 4, 10]), seqs(r, [8, 5, 3]), 1e-3);
  const stats = await trainer.collect();
  trainer.release();
  params.release();
  return { stats, grads, fused, dispatches };
}

const cases: [string, Partial<TrainerOptions>][] = [
  ["plain", {}],
  ["checkpointing", { checkpointing: true }],
  ["GradCache", { gradCacheChunk: 3 }],
  ["dropout", { dropout: 0.1, attentionDropout: 0.1 }],
  ["fp16", { fp16: true }],
];

for (const [what, options] of cases) {
  gpuTest(`the fused QKV product trains like three products (${what})`, async (gpu) => {
    const seed = freshSeed(`fused qkv ${what}`);
    const fused = await run(gpu, seed, options);
    const split = await run(gpu, seed, { ...options, fuseQkv: false });
    ok(fused.fused, "the fused path did not run");
    ok(!split.fused, "fuseQkv: false still fused");
    let worstLoss = 0, worstGrad = 0;
    fused.stats.forEach((s, i) => {
      const e = Math.abs(s.loss - split.stats[i].loss) / split.stats[i].loss;
      worstLoss = Math.max(worstLoss, e);
      ok(e <= LOSS_TOL, `step ${i + 1}: loss ${s.loss} vs ${split.stats[i].loss} (${e})`);
    });
    for (const [name, g] of split.grads) {
      // The key bias's exact gradient is zero (softmax ignores a shift shared by a row's
      // scores): both runs hold rounding noise there.
      if (name.endsWith("attention.self.key.bias")) continue;
      const e = relErr(fused.grads.get(name)!, g);
      worstGrad = Math.max(worstGrad, e);
      if (verbose && e > 1e-5) console.log(`  ${name}: ${e}`);
      ok(e <= GRAD_TOL, `${name}: gradient relative error ${e} > ${GRAD_TOL}`);
    }
    // Per layer: 2 fewer forward products (GradCache encodes twice: 4), and in the backward one
    // dW product, one bias column sum and one dX product instead of three each (split-K dW
    // products bring their sum dispatch along).
    const saved = split.dispatches - fused.dispatches;
    ok(saved >= 8 * config.numLayers, `${saved} dispatches fewer per step`);
    if (verbose) {
      console.log(
        `fused qkv ${what}: loss ${worstLoss}, gradients ${worstGrad}, ` +
          `dispatches ${split.dispatches} → ${fused.dispatches}`,
      );
    }
  });
}

gpuTest("with checkpointing, the fused QKV step has the plain fused step's bits", async (gpu) => {
  const seed = freshSeed("fused qkv checkpointing");
  const plain = await run(gpu, seed, {});
  const ckpt = await run(gpu, seed, { checkpointing: true });
  ckpt.stats.forEach((s, i) => equal(s.loss, plain.stats[i].loss, `step ${i + 1}'s loss`));
  for (const [name, g] of plain.grads) {
    const got = ckpt.grads.get(name)!;
    ok(got.every((v, i) => Object.is(v, g[i])), `${name}'s gradient differs with checkpointing`);
  }
});
