/**
 * `train --model DIR --train DATA --out DIR [...]`: contrastive fine-tuning with X-X, X-Y, hybrid
 * or language-similarity batches. Every flag maps onto {@linkcode TrainOptions}.
 * @module
 */
import { defineFlags, type FlagDef, flagValues, required, UsageError } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import {
  DEFAULT_TRAIN_OPTIONS,
  selectionProblem,
  train,
  type TrainOptions,
} from "../training/train.ts";
import { trainWithAutoResume } from "../training/auto_resume.ts";
import { DEFAULT_TRAINER_OPTIONS } from "../training/trainer.ts";
import { LeakageError } from "../training/validation.ts";
import { GracefulStop } from "./signals.ts";
import { parseAlphaSchedule } from "../training/sampler.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { guardRunDir, RunExistsError, RunLockedError } from "../training/run_guard.ts";
import { resolveModel, resolveModelDir } from "../model/hub.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { engineInfo, modelProvenance, printAdapter } from "./provenance.ts";

const T = DEFAULT_TRAIN_OPTIONS, TR = DEFAULT_TRAINER_OPTIONS;

/**
 * Flags of `train`, shared with `sweep`: their defaults are {@linkcode train}'s (shown, not
 * applied here: an absent flag leaves the option undefined); {@linkcode trainOptionsFromFlags}
 * checks types, bounds and choices as stated here.
 */
export const TRAIN_FLAGS = {
  model: {
    type: "string",
    required: true,
    arg: "DIR|ORG/NAME[@REV]",
    description: "the model to fine-tune (a folder or a Hugging Face Hub id)",
  },
  train: {
    type: "string",
    required: true,
    arg: "DATA",
    description: "training JSONL or a LAReQA folder",
  },
  out: { type: "string", required: true, arg: "DIR", description: "the run folder" },
  tokenizer: {
    type: "string",
    arg: "DIR|ORG/NAME",
    defaultText: "the model's",
    description: "tokenizer files",
  },
  sampler: {
    type: "choice",
    choices: ["xx", "xy", "hybrid", "lang-sim"],
    defaultText: T.sampler,
    description: "how batches are drawn",
  },
  alpha: {
    type: "number",
    min: 0,
    max: 1,
    defaultText: String(T.alpha),
    description: "hybrid: probability of an X-X batch",
  },
  "alpha-schedule": {
    type: "string",
    arg: "A:B",
    description: "move α linearly from A to B over training",
  },
  "batch-size": {
    type: "integer",
    min: 2,
    defaultText: String(T.batchSize),
    description: "pairs per batch",
  },
  steps: {
    type: "integer",
    min: 1,
    defaultText: "from --epochs",
    description: "optimiser steps (not with --epochs)",
  },
  epochs: {
    type: "number",
    min: 0,
    defaultText: "1",
    description: "passes over the training items (not with --steps)",
  },
  lr: { type: "number", min: 0, defaultText: String(T.lr), description: "peak learning rate" },
  "weight-decay": {
    type: "number",
    min: 0,
    defaultText: String(TR.weightDecay),
    description: "AdamW weight decay",
  },
  "warmup-steps": {
    type: "integer",
    min: 0,
    defaultText: String(T.warmupSteps),
    description: "linear warm-up steps",
  },
  schedule: {
    type: "choice",
    choices: ["linear", "constant"],
    defaultText: T.schedule,
    description: "learning rate after warm-up",
  },
  temperature: {
    type: "number",
    min: 1e-6,
    defaultText: String(TR.temperature),
    description: "InfoNCE temperature",
  },
  pooling: {
    type: "choice",
    choices: ["cls", "mean"],
    defaultText: `the folder's sentence-transformers pipeline, else ${TR.pooling}`,
    description: "how token vectors become one",
  },
  "max-length": {
    type: "integer",
    min: 3,
    defaultText: String(T.maxLength),
    description: "tokens per text",
  },
  seed: {
    type: "integer",
    min: 0,
    defaultText: String(T.seed),
    description: "seed of the batches (and dropout)",
  },
  "max-grad-norm": {
    type: "number",
    min: 0,
    defaultText: String(TR.maxGradNorm),
    description: "gradient clipping norm",
  },
  langs: { type: "list", defaultText: "all", description: "languages to train on" },
  "save-every": {
    type: "integer",
    min: 0,
    defaultText: `${T.saveEvery} (only at the end)`,
    description: "write checkpoint-<step>/ every N steps",
  },
  "log-every": {
    type: "integer",
    min: 1,
    defaultText: String(T.logEvery),
    description: "read losses back every N steps",
  },
  resume: { type: "string", arg: "DIR", description: "continue from a run or checkpoint folder" },
  symmetric: { type: "boolean", description: "add the passage-to-query InfoNCE term" },
  "hard-negatives": {
    type: "integer",
    min: 0,
    defaultText: String(T.hardNegatives),
    description: 'mined negatives per query (from the data\'s "negatives")',
  },
  "query-prefix": {
    type: "string",
    arg: "P",
    defaultText: "none",
    description: "prepended to questions (recorded as the run's query prompt)",
  },
  "passage-prefix": {
    type: "string",
    arg: "P",
    defaultText: "none",
    description: "prepended to passages (recorded as the run's passage prompt)",
  },
  "freeze-embeddings": { type: "boolean", description: "do not train the embedding tables" },
  similarity: {
    type: "string",
    arg: "FILE",
    defaultText: "measured from the model",
    description: "lang-sim: a language-similarity matrix",
  },
  "similarity-every": {
    type: "integer",
    min: 1,
    defaultText: String(T.similarityEvery),
    description: "lang-sim: re-measure the similarity every N steps",
  },
  eval: { type: "string", arg: "DIR", description: "evaluate on a LAReQA folder during training" },
  "eval-every": {
    type: "integer",
    min: 0,
    defaultText: `${T.evalEvery} (only at the end)`,
    description: "evaluate every N steps",
  },
  "eval-limit-questions": {
    type: "integer",
    min: 1,
    defaultText: "all",
    description: "--eval: the first N questions per language",
  },
  "max-memory": {
    type: "string",
    arg: "SIZE",
    description: "refuse before the GPU starts when the plan needs more (e.g. 12GiB)",
  },
  "grad-cache-chunk": {
    type: "integer",
    min: 0,
    defaultText: `${TR.gradCacheChunk} (off)`,
    description: "GradCache: embed in chunks of N sequences",
  },
  checkpointing: {
    type: "boolean",
    description: "activation checkpointing (recompute layers in the backward)",
  },
  fp16: {
    type: "boolean",
    description: "mixed precision: f16 activations and weight copies, f32 master weights",
  },
  "loss-scale": {
    type: "number",
    min: 1,
    defaultText: String(TR.lossScale.init),
    description: "--fp16: initial dynamic loss scale (×0.5 and skip on overflow)",
  },
  "loss-scale-window": {
    type: "integer",
    min: 1,
    defaultText: String(TR.lossScale.growthInterval),
    description: "--fp16: clean steps before the loss scale doubles",
  },
  "save-total-limit": {
    type: "integer",
    min: 1,
    defaultText: "1",
    description: "keep the newest N checkpoints",
  },
  "auto-resume": {
    type: "boolean",
    description: "continue the run in --out; recover from a lost GPU",
  },
  overwrite: { type: "boolean", description: "replace a finished run in --out" },
  quiet: { type: "boolean", description: "warnings only" },
  val: {
    type: "string",
    arg: "DATA",
    description: "validation items: their loss at the --eval-every cadence",
  },
  "val-fraction": {
    type: "number",
    min: 0,
    max: 1,
    description: "hold out this fraction of the training items (by id) for validation",
  },
  "val-batches": {
    type: "integer",
    min: 1,
    defaultText: "one pass over the validation items",
    description: "validation batches",
  },
  "early-stopping-patience": {
    type: "integer",
    min: 1,
    defaultText: "off",
    description: "stop after N evaluations without a better --select-by value",
  },
  "select-by": {
    type: "choice",
    choices: ["val_loss", "multi_map", "mono_map", "cross_map"],
    defaultText: "val_loss with a validation set, else multi_map",
    description: "the metric that picks the best checkpoint",
  },
  "strict-leakage": {
    type: "boolean",
    description: "refuse (not warn) when training items overlap --eval or --val",
  },
  dropout: {
    type: "number",
    min: 0,
    max: 0.99,
    defaultText: "the config's hidden/attention_probs_dropout_prob",
    description: "dropout of hidden states and attention probabilities",
  },
} as const satisfies Record<string, FlagDef>;

/** The flags of `train`, as a parser (and `--help`). */
export const TRAIN_SPEC = defineFlags({
  command: "train",
  summary: "contrastive fine-tuning with X-X, X-Y, hybrid or language-similarity batches",
  flags: TRAIN_FLAGS,
});

/** Turns parsed flags into training options (all validation naming the flag happens here). */
export function trainOptionsFromFlags(
  command: string,
  f: Record<string, string | boolean | undefined>,
): TrainOptions {
  if (f.steps !== undefined && f.epochs !== undefined) {
    throw new UsageError(`${command}: give --steps or --epochs, not both`);
  }
  const alphaSpec = f["alpha-schedule"];
  if (f.val !== undefined && f["val-fraction"] !== undefined) {
    throw new UsageError(`${command}: give --val or --val-fraction, not both`);
  }
  // Types, bounds and choices as the spec (TRAIN_FLAGS) states them.
  const v = flagValues(TRAIN_FLAGS, f);
  const valFraction = v["val-fraction"];
  if (valFraction === 0 || valFraction === 1) {
    throw new UsageError(`--val-fraction: must be strictly between 0 and 1`);
  }
  if (f.fp16 !== true) {
    for (const flag of ["loss-scale", "loss-scale-window"]) {
      if (f[flag] !== undefined) throw new UsageError(`--${flag}: only applies with --fp16`);
    }
  }

  const opts: TrainOptions = {
    model: required(command, f, "model"),
    train: required(command, f, "train"),
    out: required(command, f, "out"),
    tokenizer: f.tokenizer as string | undefined,
    sampler: v.sampler,
    alpha: v.alpha,
    alphaSchedule: typeof alphaSpec === "string" ? parseAlphaSchedule(alphaSpec) : undefined,
    batchSize: v["batch-size"],
    steps: v.steps,
    epochs: v.epochs,
    lr: v.lr,
    weightDecay: v["weight-decay"],
    warmupSteps: v["warmup-steps"],
    schedule: v.schedule,
    temperature: v.temperature,
    pooling: v.pooling,
    maxLength: v["max-length"],
    seed: v.seed,
    maxGradNorm: v["max-grad-norm"],
    langs: v.langs,
    saveEvery: v["save-every"],
    saveTotalLimit: v["save-total-limit"],
    logEvery: v["log-every"],
    resume: f.resume as string | undefined,
    symmetric: f.symmetric === true ? true : undefined,
    hardNegatives: v["hard-negatives"],
    queryPrefix: f["query-prefix"] as string | undefined,
    passagePrefix: f["passage-prefix"] as string | undefined,
    freezeEmbeddings: f["freeze-embeddings"] === true ? true : undefined,
    similarityFile: f.similarity as string | undefined,
    similarityEvery: v["similarity-every"],
    eval: f.eval as string | undefined,
    evalEvery: v["eval-every"],
    evalLimitQuestions: v["eval-limit-questions"],
    gradCacheChunk: v["grad-cache-chunk"],
    checkpointing: f.checkpointing === true ? true : undefined,
    fp16: f.fp16 === true ? true : undefined,
    lossScale: v["loss-scale"] !== undefined || v["loss-scale-window"] !== undefined
      ? {
        init: v["loss-scale"] ?? TR.lossScale.init,
        growthInterval: v["loss-scale-window"] ?? TR.lossScale.growthInterval,
      }
      : undefined,
    quiet: f.quiet === true ? true : undefined,
    val: f.val as string | undefined,
    valFraction,
    valBatches: v["val-batches"],
    earlyStoppingPatience: v["early-stopping-patience"],
    selectBy: v["select-by"],
    strictLeakage: f["strict-leakage"] === true ? true : undefined,
    dropout: v.dropout,
  };
  if (opts.earlyStoppingPatience !== undefined || opts.selectBy !== undefined) {
    const problem = selectionProblem(opts);
    if (problem) throw new UsageError(`${command}: ${problem}`);
  }
  return opts;
}

/** Runs the `train` command. */
export async function trainCommand(args: string[]): Promise<void> {
  const f = TRAIN_SPEC.parseRaw(args);
  const opts = trainOptionsFromFlags("train", f);
  // Hub ids (ORG/NAME[@REV]) become snapshot folders of the Hugging Face cache first.
  const modelSrc = await resolveModel(opts.model);
  opts.model = modelSrc.dir;
  opts.modelName = modelSrc.kind === "hub" ? `${modelSrc.repo}@${modelSrc.commit}` : modelSrc.spec;
  if (opts.tokenizer) {
    opts.tokenizer = await resolveModelDir(opts.tokenizer, { files: "tokenizer" });
  }
  if (typeof f["max-memory"] === "string") {
    await checkMemoryBudget("train", opts.resume ?? opts.model, {
      budget: parseBytes(f["max-memory"]),
      batchSize: opts.batchSize ?? DEFAULT_TRAIN_OPTIONS.batchSize,
      hardNegatives: opts.hardNegatives,
      maxLength: opts.maxLength ?? DEFAULT_TRAIN_OPTIONS.maxLength,
      freezeEmbeddings: opts.freezeEmbeddings,
      checkpointing: opts.checkpointing,
      fp16: opts.fp16,
      gradCacheChunk: opts.gradCacheChunk,
    });
  }
  const gpu = await Gpu.create();
  const adapter = printAdapter(gpu);
  // A run in --out is continued (--resume/--auto-resume) or replaced (--overwrite), never
  // overwritten by accident; the lock refuses a second writer.
  let lock;
  try {
    lock = await guardRunDir(opts.out, {
      // --resume continues the run in --out only when it points into --out.
      continues: f["auto-resume"] === true ||
        (opts.resume !== undefined && await isInside(opts.resume, opts.out)),
      overwrite: f.overwrite === true,
    });
  } catch (e) {
    if (e instanceof RunExistsError || e instanceof RunLockedError) {
      throw new UsageError(`train: ${e.message}`);
    }
    throw e;
  }
  if (lock.replaced.length) {
    console.log(`--overwrite: removed the previous run's ${lock.replaced.join(", ")}`);
  }
  const stop = new GracefulStop(() =>
    `finishing the current step, then a checkpoint in ${opts.out}`
  );
  const run = { ...opts, stopSignal: stop.signal };
  let r;
  try {
    r = f["auto-resume"] === true
      ? await trainWithAutoResume(gpu, run, { createGpu: () => Gpu.create() })
      : await train(gpu, run);
  } catch (e) {
    // Refused before anything was written (the lock's release removes a folder it created).
    if (e instanceof LeakageError) throw new UsageError(`train: ${e.message}`);
    throw e;
  } finally {
    stop.dispose();
    await lock.release();
  }
  if (r.stopped) {
    console.log(
      `stopped after step ${r.stopped.step} (${stop.received}): checkpoint ${r.stopped.checkpoint}\n` +
        `continue with: deno run -A cli.ts train ${resumeArgs(args, opts.out)}`,
    );
    Deno.exit(stop.exitCode);
  }
  await writeJsonAtomic(`${opts.out}/provenance.json`, {
    base_model: { spec: modelSrc.spec, ...(await modelProvenance(modelSrc)) },
    train: opts.train,
    engine: await engineInfo(),
    adapter,
    argv: ["train", ...args],
  });
  console.log(
    `done: ${r.steps} steps, ${r.pairsPerSecond.toFixed(1)} pairs/s, ` +
      `${r.tokensPerSecond.toFixed(0)} tokens/s → ${r.outDir}`,
  );
}

/** Whether `path` is `dir` or lies inside it (after resolving links; false when absent). */
async function isInside(path: string, dir: string): Promise<boolean> {
  try {
    const [p, d] = [await Deno.realPath(path), await Deno.realPath(dir)];
    return p === d || p.startsWith(d.endsWith("/") ? d : `${d}/`);
  } catch {
    return false;
  }
}

/** The command line again with `--resume OUT` in place of any earlier `--resume`. */
export function resumeArgs(args: string[], out: string): string {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--resume") i++;
    else if (!args[i].startsWith("--resume=")) kept.push(args[i]);
  }
  const quote = (a: string) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
  return [...kept, "--resume", out].map(quote).join(" ");
}
