/**
 * Evaluate a Hugging Face XLM-R checkpoint on XQuAD-R (LAReQA format) in the monolingual,
 * cross-lingual and multilingual settings.
 *
 *   deno run -A examples/eval_xquad.ts MODEL_DIR XQUAD_R_DIR [--langs en,de,zh] [--limit N]
 *
 * MODEL_DIR: a directory with config.json, model.safetensors (or a sharded index) and
 * tokenizer.json or sentencepiece.bpe.model, e.g. a download of FacebookAI/xlm-roberta-base.
 */
import { parseArgs } from "node:util";
import { Encoder, evaluateLareqa, Gpu, loadLareqa, renderReport } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { langs: { type: "string" }, limit: { type: "string" }, pooling: { type: "string" } },
});
const [modelDir, dataDir] = positionals;
if (!modelDir || !dataDir) {
  console.error(
    "usage: deno run -A examples/eval_xquad.ts MODEL_DIR XQUAD_R_DIR [--langs …] [--limit N]",
  );
  Deno.exit(2);
}
const opts = {
  langs: values.langs?.split(","),
  limitQuestions: values.limit ? Number(values.limit) : undefined,
};
const set = await loadLareqa(dataDir, opts);
const gpu = await Gpu.create();
const encoder = await Encoder.load(gpu, modelDir);
const pooling = (values.pooling ?? "mean") as "cls" | "mean";
const report = await evaluateLareqa(
  gpu,
  set,
  (items) => encoder.embed(items, { pooling, maxLength: 128 }),
  opts,
);
console.log(renderReport(report, "md"));
