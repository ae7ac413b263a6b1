/**
 * Fine-tune an XLM-R checkpoint on your own parallel QA JSONL with hybrid batches.
 *
 *   deno run -A examples/finetune.ts MODEL_DIR train.jsonl OUT_DIR [steps]
 *
 * Each line of train.jsonl: {"id": …, "question": {"en": …, "de": …}, "answer": {"en": …, "de": …}}
 */
import { Gpu, train } from "../mod.ts";

const [model, data, out, steps = "1000"] = Deno.args;
if (!model || !data || !out) {
  console.error("usage: deno run -A examples/finetune.ts MODEL_DIR train.jsonl OUT_DIR [steps]");
  Deno.exit(2);
}
const gpu = await Gpu.create();
const result = await train(gpu, {
  model,
  train: data,
  out,
  sampler: "hybrid",
  alpha: 0.5,
  batchSize: 32,
  steps: Number(steps),
  lr: 3e-5,
  weightDecay: 0.01,
  warmupSteps: 100,
  pooling: "cls",
  maxLength: 128,
  queryPrefix: "Query: ",
  passagePrefix: "Passage: ",
  saveEvery: 500,
}, (stats) => {
  // Called after every read-back with the steps just read: hook your own logging here.
  const last = stats.at(-1);
  if (last) console.log(`callback: step ${last.step} loss ${last.loss.toFixed(4)}`);
});
console.log(`${result.steps} steps, ${result.pairsPerSecond.toFixed(1)} pairs/s → ${out}`);
