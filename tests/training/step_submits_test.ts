/**
 * A training step's host data (ids, positions, types, mask and the embedding backward's scatter
 * plans) goes up at the start of the forward, so the step records everything else without a
 * write and submits once (each write ends the command buffer).
 */
import { equal } from "node:assert/strict";
import { presetConfig } from "../../model/config.ts";
import { XlmrParams } from "../../model/params.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer, type TrainerOptions } from "../../training/trainer.ts";
import { gpuTest } from "../_helpers.ts";

const config = presetConfig("tiny", {
  vocabSize: 97,
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  intermediateSize: 96,
  maxPositions: 40,
});
const qs = [[0, 5, 6, 2], [0, 7, 8, 9, 10, 2]], ps = [[0, 11, 2], [0, 12, 13, 14, 2]];

for (
  const [what, options, submits] of [
    ["plain", {}, 1],
    ["checkpointing", { checkpointing: true }, 1],
    // The re-cast of the f16 weights is recorded before the forward's first upload.
    ["fp16", { fp16: true }, 2],
  ] as [string, Partial<TrainerOptions>, number][]
) {
  gpuTest(`a training step submits ${submits === 1 ? "once" : "twice"} (${what})`, async (gpu) => {
    const params = XlmrParams.init(gpu, config, 1);
    const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, ...options });
    trainer.step(qs, ps, 1e-3); // warm-up: pipelines, pool
    await trainer.collect();
    await gpu.sync();
    // The test GPU's NaN fill of each new buffer is a dispatch, which a following upload's
    // write must submit first: count this step as a user's GPU runs it, without poisoning.
    const poison = gpu.options.poison;
    gpu.options.poison = false;
    try {
      const before = gpu.submitCount;
      trainer.step(qs, ps, 1e-3);
      equal(gpu.submitCount - before, submits);
    } finally {
      gpu.options.poison = poison;
    }
    await trainer.collect();
    trainer.release();
    params.release();
  });
}
