/**
 * `embed --model DIR|ORG/NAME[@REV] --input IN.jsonl --out OUT.safetensors [--pooling cls|mean|pooler]
 * [--max-length N] [--batch-size N] [--tokenizer DIR] [--dtype f32|f16] [--prefix P]
 * [--prompt-name query|passage]`: one F32 tensor `embeddings` [lines, hidden], not normalised, in
 * input order. Text lines get `--prefix`, else the model folder's recorded prompt named by
 * `--prompt-name` (else its `default_prompt_name`, as sentence-transformers does), else none.
 * `--shard I/N` embeds only the I-th of N contiguous parts (metadata `first_line`); jobs longer
 * than `--part-lines N` (default 4096) write resumable parts to `OUT.parts/` (see
 * {@linkcode runEmbedJob}); a first SIGINT/SIGTERM exits 130/143 without writing OUT.
 * @module
 */
import { defineFlags, UsageError } from "./flags.ts";
import { parseShard, type Shard } from "../eval/shards.ts";
import { runEmbedJob } from "./embed_job.ts";
import { readJsonl } from "./jsonl.ts";
import { Gpu } from "../kernels/runtime.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { type EmbedInput, Encoder } from "../model/encoder.ts";
import { folderMaxSeqLength } from "../model/sentence_transformers.ts";
import { resolveModel } from "../model/hub.ts";
import { printAdapter, readRunPrompts } from "./provenance.ts";
import { progress } from "./progress.ts";
import { shardRange } from "../eval/shards.ts";

/** The flags of `embed`. */
export const EMBED_FLAGS = defineFlags({
  command: "embed",
  summary: "embed JSONL texts (or ids) into one F32 safetensors tensor [lines, hidden]",
  flags: {
    model: {
      type: "string",
      required: true,
      arg: "DIR|ORG/NAME[@REV]",
      description: "model folder or Hugging Face Hub id",
    },
    input: {
      type: "string",
      required: true,
      arg: "IN.jsonl",
      description: '{"text": …} or {"input_ids": […]} lines',
    },
    out: {
      type: "string",
      required: true,
      arg: "OUT.safetensors",
      description: "tensor `embeddings`, in input order, not normalised",
    },
    pooling: {
      type: "choice",
      choices: ["cls", "mean", "pooler"],
      defaultText: "the folder's sentence-transformers pipeline, else cls",
      description: "how token vectors become one",
    },
    "max-length": {
      type: "integer",
      min: 2,
      defaultText: "the folder's max_seq_length, else 512",
      description: "tokens per text",
    },
    "batch-size": { type: "integer", min: 1, default: 64, description: "texts per GPU batch" },
    tokenizer: {
      type: "string",
      arg: "DIR",
      defaultText: "the model's",
      description: "tokenizer files",
    },
    "max-memory": {
      type: "string",
      arg: "SIZE",
      description: "refuse before the GPU starts when the job needs more (e.g. 2GiB)",
    },
    dtype: {
      type: "choice",
      choices: ["f32", "f16"],
      defaultText: "f32",
      description: "linear weights (f16: f32 accumulation)",
    },
    prefix: {
      type: "string",
      arg: "P",
      defaultText: "the --prompt-name prompt",
      description: "prepended to every text",
    },
    "prompt-name": {
      type: "choice",
      choices: ["query", "passage"],
      defaultText: "the folder's default_prompt_name, else none",
      description: "a prompt the model folder records",
    },
    shard: {
      type: "string",
      arg: "I/N",
      description: "embed only the I-th of N contiguous parts",
    },
    "part-lines": {
      type: "integer",
      min: 1,
      default: 4096,
      description: "longer jobs write resumable parts to OUT.parts/",
    },
    quiet: { type: "boolean", description: "no progress, warnings only" },
  },
});

/** Runs the `embed` command. */
export async function embedCommand(args: string[]): Promise<void> {
  const f = EMBED_FLAGS.parse(args);
  const quiet = f.quiet;
  const modelSpec = f.model;
  const input = f.input;
  const out = f.out;
  // Unset: the model's own (a sentence-transformers folder's pipeline and max_seq_length).
  const pooling = f.pooling;
  const maxLengthFlag = f["max-length"];
  const batchSize = f["batch-size"];
  const promptName = f["prompt-name"];
  const partLines = f["part-lines"];
  let shard: Shard | undefined;
  try {
    shard = typeof f.shard === "string" ? parseShard(f.shard) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const rows = await readJsonl(input);
  const modelSrc = await resolveModel(modelSpec, { quiet });
  const modelDir = modelSrc.dir;
  const maxLength = maxLengthFlag ?? await folderMaxSeqLength(modelDir) ?? 512;
  const recorded = await readRunPrompts(modelDir);
  const name = promptName ?? recorded.defaultName;
  if (promptName && recorded[promptName] === undefined && f.prefix === undefined) {
    throw new Error(`--prompt-name ${promptName}: ${modelSpec} records no "${promptName}" prompt`);
  }
  const prefix = f.prefix ?? (name ? recorded[name] : undefined) ?? "";
  if (prefix) console.error(`prefix: ${JSON.stringify(prefix)}`);
  const inputs: EmbedInput[] = rows.map(({ line, value }) => {
    if (Array.isArray(value.input_ids)) {
      const ids = value.input_ids;
      if (!ids.every((x) => Number.isInteger(x))) {
        throw new Error(`${input}:${line}: input_ids must be integers`);
      }
      return { inputIds: ids as number[] };
    }
    if (typeof value.text === "string") return { text: prefix + value.text };
    throw new Error(`${input}:${line}: expected "text" (string) or "input_ids" (array)`);
  });
  if (typeof f["max-memory"] === "string") {
    await checkMemoryBudget("embed", modelDir, {
      budget: parseBytes(f["max-memory"]),
      batchSize,
      maxLength,
    });
  }
  const gpu = await Gpu.create();
  printAdapter(gpu, (s) => console.error(s));
  const encoder = await Encoder.load(gpu, modelDir, f.tokenizer, {
    dtype: f.dtype,
  });
  for (const [i, x] of inputs.entries()) {
    if ("inputIds" in x) {
      try {
        // Validates ids against the vocabulary and the position table before any GPU work.
        const bad = x.inputIds.find((id) => id < 0 || id >= encoder.config.vocabSize);
        if (bad !== undefined) throw new RangeError(`id ${bad} is outside the vocabulary`);
        if (x.inputIds.length > encoder.maxSequence) {
          throw new RangeError(
            `${x.inputIds.length} ids exceed the position table (${encoder.maxSequence})`,
          );
        }
      } catch (e) {
        throw new Error(`${input}:${rows[i].line}: ${(e as Error).message}`);
      }
    }
  }
  // Progress over this shard's lines (parts done by an earlier run are skipped, not counted).
  const [first, end] = shard
    ? shardRange(inputs.length, shard.index, shard.count)
    : [0, inputs.length];
  const bar = progress("embedding", end - first, { quiet });
  let base = 0;
  await runEmbedJob({
    inputs,
    out,
    shard,
    partLines,
    embed: async (items) => {
      const e = await encoder.embed(items, {
        pooling,
        maxLength,
        batchSize,
        onProgress: (done) => bar.update(base + done),
      });
      base += items.length;
      return e;
    },
    dim: encoder.embeddingDim(pooling),
    metadata: {
      model: modelSrc.kind === "hub" ? `${modelSrc.repo}@${modelSrc.commit}` : modelSpec,
      pooling: pooling ?? (encoder.st ? "sentence-transformers" : "cls"),
      max_length: String(maxLength),
      prefix,
    },
    job: { dtype: f.dtype ?? "f32", tokenizer: f.tokenizer ?? null },
  });
  bar.done();
  encoder.release();
}
