/**
 * Whole contrastive training steps of the tiny configuration (hidden 64, 2 layers): one
 * `Trainer.step` on random token ids, submitted and waited for, per iteration. The CLI's
 * `bench step` reports the same with phases, kernel shares, dispatches and memory; benches measure
 * only (correctness lives in the tests).
 * @module
 */
import { Gpu } from "../kernels/runtime.ts";
import { presetConfig } from "../model/config.ts";
import { XlmrParams } from "../model/params.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../training/trainer.ts";

const gpu = await Gpu.create();
const config = presetConfig("tiny");
const params = XlmrParams.init(gpu, config, 1);
const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS });

/** B random sequences of T tokens: `<s>`, ids in [4, vocab), `</s>`. */
function batch(b: number, t: number, seed: number): number[][] {
  let s = seed;
  const next = () => (s = (s * 16807) % 2147483647) / 2147483647;
  return Array.from({ length: b }, () => [
    0,
    ...Array.from({ length: t - 2 }, () => 4 + Math.floor(next() * (config.vocabSize - 4))),
    2,
  ]);
}

for (const [b, t] of [[4, 16], [8, 32]]) {
  const q = batch(b, t, 11), p = batch(b, t, 23);
  Deno.bench({
    name: `tiny step B${b}×T${t}`,
    group: "step",
    n: 3,
    warmup: 1,
    async fn(ctx) {
      ctx.start();
      trainer.step(q, p, 1e-5);
      await gpu.sync();
      ctx.end();
      await trainer.collect(); // untimed: keeps the pending statistics from piling up
    },
  });
}
