/**
 * `train --model DIR --train DATA --out DIR [...]`: contrastive fine-tuning with X-X, X-Y, hybrid
 * or language-similarity batches. Every flag maps onto {@linkcode TrainOptions}.
 * @module
 */
import { choiceFlag, listFlag, numberFlag, parseFlags, required, UsageError } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import {
  selectionProblem,
  train,
  type TrainOptions,
  trainWithAutoResume,
} from "../training/train.ts";
import { LeakageError } from "../training/validation.ts";
import { GracefulStop } from "./signals.ts";
import { parseAlphaSchedule } from "../training/sampler.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { guardRunDir, RunExistsError, RunLockedError } from "../training/run_guard.ts";
import { resolveModel, resolveModelDir } from "../model/hub.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { engineInfo, modelProvenance, printAdapter } from "./provenance.ts";

/** Flags of `train`, shared with `sweep`. */
export const TRAIN_FLAGS = {
  model: { type: "string" },
  train: { type: "string" },
  out: { type: "string" },
  tokenizer: { type: "string" },
  sampler: { type: "string" },
  alpha: { type: "string" },
  "alpha-schedule": { type: "string" },
  "batch-size": { type: "string" },
  steps: { type: "string" },
  epochs: { type: "string" },
  lr: { type: "string" },
  "weight-decay": { type: "string" },
  "warmup-steps": { type: "string" },
  schedule: { type: "string" },
  temperature: { type: "string" },
  pooling: { type: "string" },
  "max-length": { type: "string" },
  seed: { type: "string" },
  "max-grad-norm": { type: "string" },
  langs: { type: "string" },
  "save-every": { type: "string" },
  "log-every": { type: "string" },
  resume: { type: "string" },
  symmetric: { type: "boolean" },
  "hard-negatives": { type: "string" },
  "query-prefix": { type: "string" },
  "passage-prefix": { type: "string" },
  "freeze-embeddings": { type: "boolean" },
  similarity: { type: "string" },
  "similarity-every": { type: "string" },
  eval: { type: "string" },
  "eval-every": { type: "string" },
  "eval-limit-questions": { type: "string" },
  "max-memory": { type: "string" },
  "grad-cache-chunk": { type: "string" },
  checkpointing: { type: "boolean" },
  "save-total-limit": { type: "string" },
  "auto-resume": { type: "boolean" },
  overwrite: { type: "boolean" },
  quiet: { type: "boolean" },
  val: { type: "string" },
  "val-fraction": { type: "string" },
  "val-batches": { type: "string" },
  "early-stopping-patience": { type: "string" },
  "select-by": { type: "string" },
  "strict-leakage": { type: "boolean" },
  dropout: { type: "string" },
} as const;

/** Turns parsed flags into training options (all validation naming the flag happens here). */
export function trainOptionsFromFlags(
  command: string,
  f: Record<string, string | boolean | undefined>,
): TrainOptions {
  const int = (name: string, min = 0) => numberFlag(f, name, { integer: true, min });
  const num = (name: string, min?: number, max?: number) => numberFlag(f, name, { min, max });
  if (f.steps !== undefined && f.epochs !== undefined) {
    throw new UsageError(`${command}: give --steps or --epochs, not both`);
  }
  const alphaSpec = f["alpha-schedule"];
  if (f.val !== undefined && f["val-fraction"] !== undefined) {
    throw new UsageError(`${command}: give --val or --val-fraction, not both`);
  }
  const valFraction = num("val-fraction", 0, 1);
  if (valFraction === 0 || valFraction === 1) {
    throw new UsageError(`--val-fraction: must be strictly between 0 and 1`);
  }
  const opts: TrainOptions = {
    model: required(command, f, "model"),
    train: required(command, f, "train"),
    out: required(command, f, "out"),
    tokenizer: f.tokenizer as string | undefined,
    sampler: choiceFlag(f, "sampler", ["xx", "xy", "hybrid", "lang-sim"] as const),
    alpha: num("alpha", 0, 1),
    alphaSchedule: typeof alphaSpec === "string" ? parseAlphaSchedule(alphaSpec) : undefined,
    batchSize: int("batch-size", 2),
    steps: int("steps", 1),
    epochs: num("epochs", 0),
    lr: num("lr", 0),
    weightDecay: num("weight-decay", 0),
    warmupSteps: int("warmup-steps", 0),
    schedule: choiceFlag(f, "schedule", ["linear", "constant"] as const),
    temperature: num("temperature", 1e-6),
    pooling: choiceFlag(f, "pooling", ["cls", "mean"] as const),
    maxLength: int("max-length", 3),
    seed: int("seed", 0),
    maxGradNorm: num("max-grad-norm", 0),
    langs: listFlag(f, "langs"),
    saveEvery: int("save-every", 0),
    saveTotalLimit: int("save-total-limit", 1),
    logEvery: int("log-every", 1),
    resume: f.resume as string | undefined,
    symmetric: f.symmetric === true ? true : undefined,
    hardNegatives: int("hard-negatives", 0),
    queryPrefix: f["query-prefix"] as string | undefined,
    passagePrefix: f["passage-prefix"] as string | undefined,
    freezeEmbeddings: f["freeze-embeddings"] === true ? true : undefined,
    similarityFile: f.similarity as string | undefined,
    similarityEvery: int("similarity-every", 1),
    eval: f.eval as string | undefined,
    evalEvery: int("eval-every", 0),
    evalLimitQuestions: int("eval-limit-questions", 1),
    gradCacheChunk: int("grad-cache-chunk", 0),
    checkpointing: f.checkpointing === true ? true : undefined,
    quiet: f.quiet === true ? true : undefined,
    val: f.val as string | undefined,
    valFraction,
    valBatches: int("val-batches", 1),
    earlyStoppingPatience: int("early-stopping-patience", 1),
    selectBy: choiceFlag(
      f,
      "select-by",
      ["val_loss", "multi_map", "mono_map", "cross_map"] as const,
    ),
    strictLeakage: f["strict-leakage"] === true ? true : undefined,
    dropout: num("dropout", 0, 0.99),
  };
  if (opts.earlyStoppingPatience !== undefined || opts.selectBy !== undefined) {
    const problem = selectionProblem(opts);
    if (problem) throw new UsageError(`${command}: ${problem}`);
  }
  return opts;
}

/** Runs the `train` command. */
export async function trainCommand(args: string[]): Promise<void> {
  const f = parseFlags("train", args, TRAIN_FLAGS);
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
      batchSize: opts.batchSize ?? 32,
      hardNegatives: opts.hardNegatives,
      maxLength: opts.maxLength ?? 128,
      freezeEmbeddings: opts.freezeEmbeddings,
      checkpointing: opts.checkpointing,
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
