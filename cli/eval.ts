/**
 * `eval --model DIR|ORG/NAME[@REV] --dataset DIR|xquad-r|mlqa-r|tatoeba --out FILE.json [--langs ar,de,…]
 * [--pooling cls|mean] [--max-length N] [--candidate sentence|sentence+context] [--batch-size N]
 * [--limit-questions N] [--report DIR] [--query-prefix P] [--passage-prefix P]`. The JSON and
 * the reports record their provenance (model, dataset, engine, adapter, options).
 * `--shard I/N --save-embeddings DIR` embeds the I-th of N parts of every question and candidate
 * list into DIR (N such runs, e.g. a job array); `--embeddings DIR` then ranks from the shards.
 * @module
 */
import { join } from "node:path";
import { defineFlags, UsageError } from "./flags.ts";
import { evalShardMode, shardEmbed } from "./eval_shards.ts";
import { Gpu } from "../kernels/runtime.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { folderMaxSeqLength } from "../model/sentence_transformers.ts";
import { Encoder } from "../model/encoder.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { evaluateBeir, evaluateLareqa } from "../eval/retrieval.ts";
import { loadLareqa } from "../eval/lareqa.ts";
import { loadBeir } from "../eval/beir.ts";
import { writeReportDir } from "../eval/report.ts";
import { resolveModel } from "../model/hub.ts";
import { resolveDataset } from "../eval/named_datasets.ts";
import { progress } from "./progress.ts";
import { resolveTatoeba } from "../eval/tatoeba_named.ts";
import { evalTatoeba } from "./eval_tatoeba.ts";
import {
  addProvenanceToReports,
  datasetProvenance,
  engineInfo,
  folderProvenance,
  modelProvenance,
  printAdapter,
  readRunPrompts,
} from "./provenance.ts";

async function isBeir(dir: string): Promise<boolean> {
  try {
    await Deno.stat(join(dir, "corpus.jsonl"));
    return true;
  } catch {
    return false;
  }
}

/** The flags of `eval`. */
export const EVAL_FLAGS = defineFlags({
  command: "eval",
  summary: "retrieval metrics of a model on LAReQA (XQuAD-R, MLQA-R), BEIR/MIRACL or Tatoeba, " +
    "with provenance",
  flags: {
    model: {
      type: "string",
      required: true,
      arg: "DIR|ORG/NAME[@REV]",
      description: "model folder or Hugging Face Hub id",
    },
    dataset: {
      type: "string",
      required: true,
      arg: "DIR|xquad-r|mlqa-r|tatoeba",
      description: "a LAReQA, BEIR or Tatoeba folder, or a named set (downloaded, sha256-pinned)",
    },
    out: { type: "string", required: true, arg: "FILE.json", description: "the results" },
    langs: { type: "list", defaultText: "all", description: "languages to evaluate" },
    pooling: {
      type: "choice",
      choices: ["cls", "mean", "pooler"],
      defaultText: "the folder's sentence-transformers pipeline, else cls",
      description: "how token vectors become one",
    },
    "max-length": {
      type: "integer",
      min: 3,
      defaultText: "the folder's max_seq_length, else 512",
      description: "tokens per text",
    },
    candidate: {
      type: "choice",
      choices: ["sentence", "sentence+context"],
      default: "sentence",
      description: "LAReQA candidate text (with its paragraph as the pair)",
    },
    "batch-size": { type: "integer", min: 1, default: 64, description: "texts per GPU batch" },
    "limit-questions": {
      type: "integer",
      min: 1,
      defaultText: "all",
      description: "the first N questions (Tatoeba: pairs) of each language",
    },
    "block-size": {
      type: "integer",
      min: 1,
      defaultText: "all candidates",
      description: "candidates scored per GPU block (no effect on results)",
    },
    report: { type: "string", arg: "DIR", description: "write report.md and report.html" },
    tokenizer: {
      type: "string",
      arg: "DIR|ORG/NAME",
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
    "query-prefix": {
      type: "string",
      arg: "P",
      defaultText: "the model folder's query prompt, else none",
      description: "prepended to questions",
    },
    "passage-prefix": {
      type: "string",
      arg: "P",
      defaultText: "the model folder's passage prompt, else none",
      description: "prepended to candidates",
    },
    quiet: { type: "boolean", description: "no progress, warnings only" },
    shard: {
      type: "string",
      arg: "I/N",
      description: "with --save-embeddings: embed the I-th of N parts only",
    },
    "save-embeddings": {
      type: "string",
      arg: "DIR",
      description: "with --shard: where this shard's embeddings go",
    },
    embeddings: {
      type: "string",
      arg: "DIR",
      description: "rank from the N saved shards instead of embedding",
    },
  },
});

/** Runs the `eval` command. */
export async function evalCommand(args: string[]): Promise<void> {
  // Typed values (v), and the raw record (f) for the shard and Tatoeba helpers.
  const { values: v, raw: f } = EVAL_FLAGS.parseAll(args);
  const shardMode = evalShardMode(f);
  const quiet = v.quiet;
  const modelSpec = v.model;
  const datasetSpec = v.dataset;
  const out = v.out;
  // Unset: the model's own (a sentence-transformers folder's pipeline and max_seq_length).
  const poolingFlag = v.pooling;
  const pooling = poolingFlag ?? "cls";
  const maxLengthFlag = v["max-length"];
  let maxLength = maxLengthFlag ?? 512;
  const batchSize = v["batch-size"];
  const tatoebaSrc = await resolveTatoeba(datasetSpec, {
    langs: v.langs,
    log: quiet ? (m) => m.startsWith("licence") && console.error(m) : undefined,
  });
  if (tatoebaSrc) {
    if (shardMode.kind !== "none") {
      throw new UsageError("eval: Tatoeba takes no --shard/--embeddings");
    }
    const dtype = v.dtype;
    const s = {
      modelSpec,
      dataset: tatoebaSrc.dir,
      source: tatoebaSrc,
      out,
      pooling: poolingFlag,
      maxLength: maxLengthFlag,
      batchSize,
      dtype,
      langs: v.langs,
      limitQuestions: v["limit-questions"],
      blockSize: v["block-size"],
    };
    return await evalTatoeba(s, f, args);
  }
  const candidate = v.candidate;
  const opts = {
    langs: v.langs,
    limitQuestions: v["limit-questions"],
    candidate,
    blockSize: v["block-size"],
    // --quiet keeps the warnings only.
    onProgress: (m: string) => {
      if (!quiet || m.startsWith("warning")) console.error(m);
    },
  };
  // Resolve names (Hub ids, named datasets), load and validate the data before touching the GPU.
  const beir = await isBeir(datasetSpec);
  const dsSrc = beir ? null : await resolveDataset(datasetSpec, {
    langs: opts.langs,
    log: quiet ? (m) => m.startsWith("licence") && console.error(m) : undefined,
  });
  const dataset = dsSrc?.dir ?? datasetSpec;
  const set = beir ? await loadBeir(dataset) : await loadLareqa(dataset, opts);
  const modelSrc = await resolveModel(modelSpec, { quiet });
  const modelDir = modelSrc.dir;
  maxLength = maxLengthFlag ?? await folderMaxSeqLength(modelDir) ?? 512;
  const tokenizerDir = typeof f.tokenizer === "string"
    ? (await resolveModel(f.tokenizer, { files: "tokenizer", quiet })).dir
    : undefined;
  // Prompts: the flags, else what the model folder records (a run's training prefixes).
  const recorded = await readRunPrompts(modelDir);
  const queryPrefix = v["query-prefix"] ?? recorded.query ?? "";
  const passagePrefix = v["passage-prefix"] ?? recorded.passage ?? "";
  if (typeof f["max-memory"] === "string") {
    await checkMemoryBudget("eval", modelDir, {
      budget: parseBytes(f["max-memory"]),
      batchSize,
      maxLength,
    });
  }
  const gpu = await Gpu.create();
  const adapter = printAdapter(gpu, (s) => console.error(s));
  const dtype = v.dtype;
  const encoder = await Encoder.load(gpu, modelDir, tokenizerDir, { dtype });
  const embed = async (items: { text: string; pair?: string }[], role?: "query" | "passage") => {
    const prefix = role === "query" ? queryPrefix : role === "passage" ? passagePrefix : "";
    const bar = progress(`  ${role === "query" ? "questions" : "candidates"}`, items.length, {
      quiet,
    });
    const out = await encoder.embed(items.map((x) => ({ text: prefix + x.text, pair: x.pair })), {
      pooling: poolingFlag,
      maxLength,
      batchSize,
      onProgress: (done) => bar.update(done),
    });
    bar.done();
    return out;
  };
  // --shard/--save-embeddings: embed this shard's rows only; --embeddings: rank from the shards.
  const sharded = await shardEmbed(shardMode, embed, encoder.embeddingDim(poolingFlag), {
    model: modelSpec,
    pooling: poolingFlag ?? null,
    max_length: maxLength,
    candidate,
    query_prefix: queryPrefix,
    passage_prefix: passagePrefix,
    dtype: dtype ?? "f32",
    tokenizer: f.tokenizer ?? null,
  });
  const t0 = performance.now();
  const report = beir
    ? await evaluateBeir(gpu, set as Awaited<ReturnType<typeof loadBeir>>, sharded.embed, opts)
    : await evaluateLareqa(gpu, set as Awaited<ReturnType<typeof loadLareqa>>, sharded.embed, opts);
  const secs = (performance.now() - t0) / 1000;
  if (sharded.finish) {
    // One shard's embeddings only: the ranking above used placeholders and is not reported.
    const dir = await sharded.finish();
    await writeJsonAtomic(out, { shard: f.shard, embeddings: dir, argv: ["eval", ...args] });
    console.log(
      `shard ${f.shard}: embeddings → ${dir} (${secs.toFixed(1)} s); when every shard is done, ` +
        `rank with eval … --embeddings ${f["save-embeddings"]}`,
    );
    encoder.release();
    return;
  }
  const provenance = {
    model: { spec: modelSpec, ...(await modelProvenance(modelSrc)) },
    dataset: beir
      ? await folderProvenance(datasetSpec)
      : await datasetProvenance(dsSrc!, (report as { languages: string[] }).languages),
    engine: await engineInfo(),
    adapter,
    options: {
      pooling: encoder.st && !poolingFlag ? "sentence-transformers" : pooling,
      max_length: maxLength,
      batch_size: batchSize,
      candidate,
      langs: opts.langs ?? null,
      limit_questions: opts.limitQuestions ?? null,
      query_prefix: queryPrefix,
      passage_prefix: passagePrefix,
      dtype: dtype ?? "f32",
      tokenizer: f.tokenizer ?? null,
    },
    argv: ["eval", ...args],
  };
  await writeJsonAtomic(out, { ...report, provenance });
  if (!beir) {
    const m = (report as { map: Record<string, number> }).map;
    console.log(
      `mAP mono ${m.monolingual.toFixed(4)} cross ${m.crosslingual.toFixed(4)} ` +
        `multi ${m.multilingual.toFixed(4)} (${secs.toFixed(1)} s) → ${out}`,
    );
    if (typeof f.report === "string") {
      const paths = await addProvenanceToReports(
        await writeReportDir(f.report, [{
          name: modelSpec,
          report: report as Awaited<ReturnType<typeof evaluateLareqa>>,
        }]),
        provenance,
      );
      console.log(`report: ${paths.join(", ")}`);
    }
  } else {
    console.log(`${JSON.stringify(report)}\n→ ${out}`);
  }
  encoder.release();
}
