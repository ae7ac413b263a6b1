/**
 * The training run: data → sampler → steps on the GPU → logs, checkpoints and the final
 * Hugging Face-format model directory. Resumable: a checkpoint holds the weights, the AdamW
 * moments, the sampler's state and the step, so a resumed run continues exactly.
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { configToJson, loadConfig, type XlmrConfig } from "../model/config.ts";
import { assertFinite, SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import { copyTokenizerFiles } from "../model/init.ts";
import { exists, writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { loadQaData, type QaDataset } from "./data.ts";
import {
  type AlphaSchedule,
  type Batch,
  BatchSampler,
  batchToJson,
  type SamplerKind,
  type SamplerOptions,
  similarityFromJson,
} from "./sampler.ts";
import { learningRate } from "./schedule.ts";
import {
  DEFAULT_TRAINER_OPTIONS,
  type StepStats,
  Trainer,
  type TrainerOptions,
} from "./trainer.ts";
import { languageSimilarity } from "./language_similarity.ts";
import {
  guardLeakage,
  holdOut,
  isBetter,
  metricOf,
  type SelectBy,
  type ValidationBatch,
  validationBatches,
} from "./validation.ts";
import { ensureFreeSpace } from "../util/disk.ts";
import { writeRunCard } from "./run_card.ts";
import { withDense, writeSentenceTransformers } from "../model/sentence_transformers.ts";
import { resolveModel, resolveModelDir } from "../model/hub.ts";

/** Everything a training run needs; the CLI's flags map onto this one to one. */
export interface TrainOptions extends Partial<TrainerOptions> {
  model: string;
  train: string;
  out: string;
  tokenizer?: string;
  sampler?: SamplerKind;
  alpha?: number;
  alphaSchedule?: AlphaSchedule;
  batchSize?: number;
  steps?: number;
  epochs?: number;
  lr?: number;
  warmupSteps?: number;
  schedule?: "linear" | "constant";
  maxLength?: number;
  seed?: number;
  langs?: string[];
  hardNegatives?: number;
  queryPrefix?: string;
  passagePrefix?: string;
  /** Read losses back every N steps (one queue wait per N steps). */
  logEvery?: number;
  saveEvery?: number;
  resume?: string;
  /** For lang-sim: a JSON file {"langs": [...], "matrix": [[...]]} or {"en": {"de": 0.9}}; else measured. */
  similarityFile?: string;
  similarityEvery?: number;
  /** Evaluate on a LAReQA directory every `evalEvery` steps and at the end. */
  eval?: string;
  evalEvery?: number;
  evalLimitQuestions?: number;
  quiet?: boolean;
  /** Keep the newest N `checkpoint-<step>/` folders (default 1). */
  saveTotalLimit?: number;
  /**
   * Graceful stop: once aborted, the run finishes the current step, writes a checkpoint at that
   * step and returns with `stopped` set (the final model is not written).
   */
  stopSignal?: AbortSignal;
  /** How the model card names the base model (e.g. its Hub id); default `model`. */
  modelName?: string;
  /** Validation items (JSONL or LAReQA folder); the loss on them at the `evalEvery` cadence. */
  val?: string;
  /** Hold out this fraction of the training items (whole ids, seeded) as the validation set. */
  valFraction?: number;
  /** Validation batches (default: one pass, ceil(validation items / batch size)). */
  valBatches?: number;
  /**
   * Stop after this many evaluations without a better `selectBy` value. Setting it (or
   * `selectBy`) keeps the best checkpoint and writes it as the run's model, the last under `last/`.
   */
  earlyStoppingPatience?: number;
  /** The metric that picks the best checkpoint (default val_loss with a validation set, else multi_map). */
  selectBy?: SelectBy;
  /** Refuse (throw {@linkcode LeakageError}) instead of warning when training overlaps `eval`/`val`. */
  strictLeakage?: boolean;
}

/** Called after each read-back with the steps just read. */
export type StepCallback = (stats: StepStats[]) => void | Promise<void>;

/** What {@linkcode train} returns. */
export interface TrainResult {
  steps: number;
  stats: StepStats[];
  outDir: string;
  pairsPerSecond: number;
  tokensPerSecond: number;
  evals: { step: number; report: unknown }[];
  /** Set when {@linkcode TrainOptions.stopSignal} ended the run early: the step checkpointed. */
  stopped?: { step: number; checkpoint: string };
  /** With model selection: the best evaluation (the run's model) and whether patience ran out. */
  best?: { step: number; metric: SelectBy; value: number; stoppedEarly: boolean };
}

interface TrainerState {
  step: number;
  sampler: unknown;
  options: Record<string, unknown>;
  modelFingerprint: string;
  /** SHA-256 (hex) of the checkpoint's files, verified on --resume. */
  sha256?: Record<string, string>;
  /** Model selection so far: the best evaluation and evaluations since it. */
  selection?: Selection;
}

interface Selection {
  metric: SelectBy;
  bestStep: number | null;
  bestValue: number | null;
  sinceBest: number;
}

/** Checkpoint files whose content hash trainer_state.json carries. */
const HASHED_FILES = ["model.safetensors", "optimizer.safetensors"];

/** SHA-256 of a file in hex, streamed in 4 MiB blocks (checkpoints can be gigabytes). */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 22);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Reads trainer_state.json of a checkpoint and checks the content hashes of its files. */
async function readTrainerState(dir: string): Promise<TrainerState> {
  const path = join(dir, "trainer_state.json");
  let state: TrainerState;
  try {
    state = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`--resume: ${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (
    state === null || typeof state !== "object" || !Number.isInteger(state.step) || state.step < 0
  ) {
    throw new Error(`--resume: ${path}: expected an object with an integer "step"`);
  }
  if (!state.sha256) {
    console.warn(`warning: ${path} carries no content hashes; the checkpoint is not verified`);
    return state;
  }
  for (const f of HASHED_FILES) {
    const want = state.sha256[f];
    const got = await sha256File(join(dir, f));
    if (want !== got) {
      throw new Error(
        `--resume: ${join(dir, f)} is corrupt: its SHA-256 is ${got}, but ${path} ` +
          `records ${want ?? "none"}`,
      );
    }
  }
  return state;
}

function fingerprint(c: XlmrConfig): string {
  return JSON.stringify([c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.intermediateSize]);
}

/** Tokenised text cache: each (text, role) is tokenised once per run. */
class TokenCache {
  private cache = new Map<string, number[]>();
  constructor(private encode: (text: string) => number[]) {}
  get(text: string): number[] {
    let ids = this.cache.get(text);
    if (!ids) {
      ids = this.encode(text);
      this.cache.set(text, ids);
    }
    return ids;
  }
}

/**
 * What {@linkcode train} uses for options left undefined (the trainer's own are
 * `DEFAULT_TRAINER_OPTIONS`); `cli.ts train --help` shows them.
 */
export const DEFAULT_TRAIN_OPTIONS = {
  sampler: "hybrid" as SamplerKind,
  alpha: 0.5,
  batchSize: 32,
  lr: 3e-5,
  warmupSteps: 0,
  schedule: "linear" as const,
  maxLength: 128,
  seed: 42,
  hardNegatives: 0,
  queryPrefix: "",
  passagePrefix: "",
  logEvery: 10,
  saveEvery: 0,
  similarityEvery: 100,
  evalEvery: 0,
};

/**
 * Trains a model with contrastive loss and hybrid (or other) batches.
 *
 * @example
 * ```ts ignore
 * const gpu = await Gpu.create();
 * const result = await train(gpu, { model: "tiny-model", train: "pairs.jsonl", out: "run1", steps: 100 });
 * console.log(result.stats.at(-1));
 * ```
 */
export async function train(
  gpu: Gpu,
  opts: TrainOptions,
  onSteps?: StepCallback,
): Promise<TrainResult> {
  const o = {
    ...DEFAULT_TRAIN_OPTIONS,
    // Flags left out arrive as undefined and must not hide the defaults.
    ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as TrainOptions,
  };
  // Hub ids (ORG/NAME[@REV]) become snapshot folders of the Hugging Face cache first.
  const modelSource = await resolveModel(o.model);
  if (modelSource.kind === "hub") o.modelName ??= `${modelSource.repo}@${modelSource.commit}`;
  o.model = modelSource.dir;
  if (o.tokenizer) o.tokenizer = await resolveModelDir(o.tokenizer, { files: "tokenizer" });
  const log = o.quiet ? () => {} : (s: string) => console.log(s);
  const loaded: QaDataset = await loadQaData(o.train, { langs: o.langs });
  const { data, val } = await holdOut(loaded, o);
  // Before anything is written: a refused run leaves --out as it was.
  await guardLeakage(data, val, o);
  const resumeDir = o.resume ? await findCheckpoint(o.resume) : null;
  // Verified before anything is loaded onto the GPU or written to the output directory.
  const resumeState = resumeDir ? await readTrainerState(resumeDir) : null;
  const modelDir = resumeDir ?? o.model;
  const encoder = await Encoder.load(
    gpu,
    modelDir,
    o.tokenizer ?? (resumeDir ? resumeDir : undefined),
  );
  const config = encoder.config;
  if (!encoder.tokenizer) throw new Error(`${o.model}: training needs tokenizer files`);
  const tokenizer = encoder.tokenizer;

  const samplerOpts: SamplerOptions = {
    kind: o.sampler,
    batchSize: o.batchSize,
    alpha: o.alpha,
    alphaSchedule: o.alphaSchedule,
    seed: o.seed,
    langs: o.langs,
  };
  const itemsPerEpoch = data.items.length;
  const totalSteps = o.steps ??
    Math.max(1, Math.ceil((o.epochs ?? 1) * itemsPerEpoch / o.batchSize));
  if (samplerOpts.alphaSchedule?.kind === "linear" && !samplerOpts.alphaSchedule.steps) {
    samplerOpts.alphaSchedule = { ...samplerOpts.alphaSchedule, steps: totalSteps };
  }
  if (o.sampler === "lang-sim" && o.similarityFile) {
    samplerOpts.similarity = await readSimilarity(o.similarityFile, data.languages, o.langs);
  }

  const trainerOptions: TrainerOptions = { ...DEFAULT_TRAINER_OPTIONS };
  for (const k of Object.keys(DEFAULT_TRAINER_OPTIONS) as (keyof TrainerOptions)[]) {
    if (opts[k] !== undefined) (trainerOptions as unknown as Record<string, unknown>)[k] = opts[k];
  }
  // A sentence-transformers folder trained without --pooling: through its own pipeline (its
  // pooling and Dense layers, which are trained too); the run folder is written in its layout.
  const ownPipeline = encoder.st !== null && opts.pooling === undefined;
  if (ownPipeline) {
    trainerOptions.pooling = encoder.st!.pooling;
    trainerOptions.head = encoder.params.head.length > 0;
  }
  // Hidden dropout as the model's config says (hidden_dropout_prob) unless --dropout overrides
  // it; the masks derive from the run's seed and the step, so a resumed run draws the same ones.
  if (opts.dropout === undefined) trainerOptions.dropout = config.hiddenDropout;
  // --dropout sets both; attention_probs_dropout_prob otherwise.
  if (opts.attentionDropout === undefined) {
    trainerOptions.attentionDropout = opts.dropout ?? config.attentionDropout;
  }
  if (opts.dropoutSeed === undefined) trainerOptions.dropoutSeed = o.seed;
  const trainer = new Trainer(encoder.params, trainerOptions);
  let sampler = new BatchSampler(data, samplerOpts);
  const runOptions = {
    sampler: o.sampler,
    alpha: o.alpha,
    batchSize: o.batchSize,
    lr: o.lr,
    seed: o.seed,
    maxLength: o.maxLength,
    pooling: trainerOptions.pooling,
    temperature: trainerOptions.temperature,
    gradCacheChunk: trainerOptions.gradCacheChunk,
    checkpointing: trainerOptions.checkpointing,
    dropout: trainerOptions.dropout,
    attentionDropout: trainerOptions.attentionDropout,
    totalSteps,
    // The prompts eval/embed apply by default to this run's model.
    queryPrefix: o.queryPrefix,
    passagePrefix: o.passagePrefix,
  };

  await Deno.mkdir(o.out, { recursive: true });
  const metricsPath = join(o.out, "metrics.jsonl");
  const batchesPath = join(o.out, "batches.jsonl");
  let startStep = 0;
  // Where checkpoints and the final model take their tokenizer files from. A resumed run copies
  // them from its checkpoint into --out first: rotation may delete that checkpoint during the run.
  let tokenizerSource = o.tokenizer ?? o.model;
  if (resumeDir && resumeState) {
    const state = resumeState;
    const requested = await loadConfig(o.model);
    if (state.modelFingerprint !== fingerprint(requested)) {
      throw new Error(
        `--resume ${o.resume}: the checkpoint was made for another model shape than ${o.model} ` +
          `(${state.modelFingerprint} vs ${fingerprint(requested)})`,
      );
    }
    sampler = BatchSampler.restore(data, samplerOpts, state.sampler);
    if (!o.tokenizer) {
      await copyTokenizerFiles(resumeDir, o.out);
      tokenizerSource = o.out;
    }
    const opt = await SafetensorsFile.open(join(resumeDir, "optimizer.safetensors"));
    const moments = new Map<string, Float32Array>();
    for (const name of opt.tensors.keys()) {
      const data = await opt.readF32(name);
      assertFinite(data, join(resumeDir, "optimizer.safetensors"), name);
      moments.set(name, data);
    }
    opt.close();
    trainer.writeMoments((n) => moments.get(n), join(resumeDir, "optimizer.safetensors"));
    trainer.stepCount = state.step;
    startStep = state.step;
    // Keep the logs consistent with the checkpoint: drop lines after its step.
    for (const path of [metricsPath, batchesPath, join(o.out, "eval.jsonl")]) {
      await truncateLog(path, startStep);
    }
    log(`resumed from ${resumeDir} at step ${startStep}`);
  } else {
    await writeFileAtomic(metricsPath, "");
    await writeFileAtomic(batchesPath, "");
  }

  const qCache = new TokenCache((t) => tokenizer.encode(o.queryPrefix + t, o.maxLength));
  const pCache = new TokenCache((t) => tokenizer.encode(o.passagePrefix + t, o.maxLength));
  const allStats: StepStats[] = [];
  const evals: { step: number; report: unknown }[] = [];
  // Validation: fixed batches of the held-out items, scored at the eval cadence without updating.
  const valBatches: ValidationBatch[] | null = val
    ? validationBatches(val, {
      ...samplerOpts,
      count: o.valBatches,
      hardNegatives: o.hardNegatives,
      query: (t) => qCache.get(t),
      passage: (t) => pCache.get(t),
    })
    : null;
  // Model selection (early stopping or --select-by): resumed from the checkpoint's state.
  const selection: Selection | null = selectionOf(o, val !== null, resumeState?.selection);
  let lastEvalStep = -1;
  let pairs = 0, tokens = 0;
  const t0 = performance.now();
  let metricsBuffer: string[] = [];
  let batchesBuffer: string[] = [];
  const batchKinds = new Map<number, string>();

  const flushLogs = async (stats: StepStats[]) => {
    for (const s of stats) {
      if (!Number.isFinite(s.loss) || !Number.isFinite(s.gradNorm)) {
        await appendLines();
        const what = Number.isFinite(s.loss)
          ? `gradient norm (${s.gradNorm})`
          : `loss (${s.loss}; gradient norm ${s.gradNorm})`;
        const last = (await listCheckpoints(o.out)).at(-1);
        throw new Error(
          `non-finite ${what} at step ${s.step}: the GPU skipped that update, training stopped. ` +
            (last
              ? `The last good checkpoint is in ${last.dir} (step ${last.step}).`
              : `No checkpoint was saved before it.`),
        );
      }
      metricsBuffer.push(JSON.stringify({
        step: s.step,
        loss: s.loss,
        lr: s.lr,
        grad_norm: s.gradNorm,
        kind: batchKinds.get(s.step),
        accuracy: s.accuracy,
      }));
      batchKinds.delete(s.step);
    }
    await appendLines();
    allStats.push(...stats);
    if (onSteps) await onSteps(stats);
  };
  const appendLines = async () => {
    if (batchesBuffer.length) {
      await Deno.writeTextFile(batchesPath, batchesBuffer.join("\n") + "\n", { append: true });
    }
    if (metricsBuffer.length) {
      await Deno.writeTextFile(metricsPath, metricsBuffer.join("\n") + "\n", { append: true });
    }
    metricsBuffer = [];
    batchesBuffer = [];
  };

  const runEval = async (step: number) => {
    if (!o.eval && !valBatches) return;
    lastEvalStep = step;
    const line: Record<string, unknown> = { step };
    if (valBatches) {
      const r = await trainer.evaluateLoss(valBatches);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      line.val_loss = mean(r.map((x) => x.loss));
      line.val_accuracy = mean(r.map((x) => x.accuracy));
      line.val_batches = r.length;
      line.val_pairs = valBatches.reduce((n, b) => n + b.queries.length, 0);
      log(
        `validation @${step}: loss ${(line.val_loss as number).toFixed(4)} ` +
          `acc ${(line.val_accuracy as number).toFixed(3)} (${r.length} batches)`,
      );
    }
    if (o.eval) Object.assign(line, await evalReport(step));
    if (selection) {
      const v = metricOf(selection.metric, line);
      if (v !== null && isBetter(selection.metric, v, selection.bestValue)) {
        selection.bestStep = step;
        selection.bestValue = v;
        selection.sinceBest = 0;
      } else selection.sinceBest++;
    }
    await Deno.writeTextFile(join(o.out, "eval.jsonl"), JSON.stringify(line) + "\n", {
      append: true,
    });
  };
  const evalReport = async (step: number): Promise<object> => {
    const { evaluateLareqa } = await import("../eval/retrieval.ts");
    const { loadLareqa } = await import("../eval/lareqa.ts");
    const set = await loadLareqa(o.eval!, { limitQuestions: o.evalLimitQuestions });
    // Scored as the model was trained: questions and passages with the training prefixes.
    const report = await evaluateLareqa(
      gpu,
      set,
      (items, role) => {
        const prefix = role === "query" ? o.queryPrefix : role === "passage" ? o.passagePrefix : "";
        return encoder.embed(items.map((x) => ({ text: prefix + x.text, pair: x.pair })), {
          // Through the Dense head too when training runs the folder's own pipeline.
          pooling: ownPipeline ? undefined : trainerOptions.pooling,
          maxLength: o.maxLength,
        });
      },
    );
    evals.push({ step, report });
    const m = (report as { map: Record<string, number> }).map;
    log(
      `eval @${step}: mono ${m.monolingual.toFixed(3)} cross ${m.crosslingual.toFixed(3)} ` +
        `multi ${m.multilingual.toFixed(3)}`,
    );
    return report as object;
  };

  const checkpoint = (step: number) =>
    saveCheckpoint(
      o.out,
      encoder,
      trainer,
      {
        step,
        sampler: sampler.state(),
        options: runOptions,
        modelFingerprint: fingerprint(config),
        ...(selection ? { selection: { ...selection } } : {}),
      },
      tokenizerSource,
      o.saveTotalLimit ?? 1,
      selection?.bestStep,
    );

  log(
    `training ${o.model} on ${data.items.length} items (${data.languages.join(",")}), ` +
      `sampler ${o.sampler}${
        o.sampler === "hybrid" ? ` α=${o.alpha}` : ""
      }, batch ${o.batchSize}, ` +
      `${totalSteps} steps, dropout ${trainerOptions.dropout} hidden, ` +
      `${trainerOptions.attentionDropout} attention` +
      (opts.dropout === undefined ? " (from the config)" : ""),
  );
  let endStep = totalSteps;
  for (let step = startStep + 1; step <= totalSteps; step++) {
    const batch: Batch = sampler.next();
    const qs: number[][] = [], ps: number[][] = [], negs: number[][] = [];
    for (const pair of batch.pairs) {
      const item = data.items[pair.itemIndex];
      qs.push(qCache.get(item.question[pair.queryLang]));
      ps.push(pCache.get(item.answer[pair.passageLang]));
      const pool = item.negatives?.[pair.passageLang] ?? [];
      for (let k = 0; k < Math.min(o.hardNegatives, pool.length); k++) {
        negs.push(pCache.get(pool[k]));
      }
    }
    const lr = learningRate(step, {
      lr: o.lr,
      warmupSteps: o.warmupSteps,
      totalSteps,
      schedule: o.schedule,
    });
    trainer.step(qs, [...ps, ...negs], lr);
    pairs += qs.length;
    tokens += [...qs, ...ps, ...negs].reduce((n, s) => n + s.length, 0);
    batchKinds.set(step, batch.kind);
    batchesBuffer.push(JSON.stringify({ ...batchToJson(batch), step }));

    const last = step === totalSteps;
    const collected = step % o.logEvery === 0 || last ||
      (o.saveEvery > 0 && step % o.saveEvery === 0);
    if (collected) {
      const stats = await trainer.collect();
      await flushLogs(stats);
      const s = stats.at(-1)!;
      const secs = (performance.now() - t0) / 1000;
      const done = step - startStep;
      const eta = secs / done * (totalSteps - step);
      log(
        `step ${step}/${totalSteps} loss ${s.loss.toFixed(4)} acc ${s.accuracy.toFixed(2)} ` +
          `lr ${s.lr.toExponential(2)} |g| ${s.gradNorm.toFixed(3)} ` +
          `${(pairs / secs).toFixed(1)} pairs/s ETA ${eta.toFixed(0)}s`,
      );
    }
    if (o.sampler === "lang-sim" && !o.similarityFile && step % o.similarityEvery === 0) {
      sampler.setSimilarity(
        await languageSimilarity(encoder, data, {
          pooling: trainerOptions.pooling,
          maxLength: o.maxLength,
        }),
      );
    }
    let saved: string | null = null;
    // Evaluated before this step's checkpoint, so that the checkpoint holds the selection state.
    const evalNow = (o.eval || valBatches) && o.evalEvery && step % o.evalEvery === 0 && !last;
    if (evalNow) await runEval(step);
    if (o.saveEvery && step % o.saveEvery === 0 && !last) saved = await checkpoint(step);
    // The best evaluation so far has its checkpoint: it becomes the run's model.
    if (evalNow && selection?.bestStep === step && !saved) saved = await checkpoint(step);
    if (
      evalNow && selection && o.earlyStoppingPatience !== undefined &&
      selection.sinceBest >= o.earlyStoppingPatience
    ) {
      if (!collected) await flushLogs(await trainer.collect());
      log(
        `early stopping at step ${step}: ${selection.metric} did not improve in ` +
          `${selection.sinceBest} evaluations (best ${selection.bestValue} at step ` +
          `${selection.bestStep})`,
      );
      endStep = step;
      break;
    }
    if (!last && o.stopSignal?.aborted) {
      // Graceful stop: this step is complete; its logs and a checkpoint make it resumable.
      if (!collected) await flushLogs(await trainer.collect());
      saved ??= await checkpoint(step);
      trainer.release();
      encoder.release();
      const secs = (performance.now() - t0) / 1000;
      return {
        steps: step,
        stats: allStats,
        outDir: o.out,
        pairsPerSecond: pairs / secs,
        tokensPerSecond: tokens / secs,
        evals,
        stopped: { step, checkpoint: saved },
      };
    }
  }
  const secs = (performance.now() - t0) / 1000;

  // With model selection the last weights are evaluated too, before the final checkpoint.
  const evalAtEnd = (o.eval !== undefined || valBatches !== null) && lastEvalStep !== endStep;
  if (selection && evalAtEnd) await runEval(endStep);

  // Final model: a Hugging Face directory that embed, eval and PyTorch load.
  ensureFreeSpace(
    o.out,
    safetensorsBytes([...encoder.params.byName.values()]) * (selection ? 2 : 1),
    "the final model",
    `. Free some space and finish with --resume ${o.out}`,
  );
  if (selection) {
    // The last weights under last/, the best ones as the run's model.
    const lastDir = join(o.out, "last");
    await Deno.mkdir(lastDir, { recursive: true });
    await encoder.params.save(join(lastDir, "model.safetensors"));
    await writeJsonAtomic(join(lastDir, "config.json"), configToJson(config));
    await copyTokenizerFiles(tokenizerSource, lastDir);
  }
  await checkpoint(endStep);
  if (selection?.bestStep != null && selection.bestStep !== endStep) {
    const best = join(o.out, `checkpoint-${selection.bestStep}`, "model.safetensors");
    await loadTransformerWeights(encoder, best);
    log(`best ${selection.metric} ${selection.bestValue} at step ${selection.bestStep}: ${best}`);
  }
  await encoder.params.save(join(o.out, "model.safetensors"));
  await writeJsonAtomic(join(o.out, "config.json"), configToJson(config));
  await copyTokenizerFiles(tokenizerSource, o.out);
  if (!selection && evalAtEnd) await runEval(endStep);
  const result: TrainResult = {
    steps: endStep,
    stats: allStats,
    outDir: o.out,
    pairsPerSecond: pairs / secs,
    tokensPerSecond: tokens / secs,
    evals,
    best: selection?.bestStep != null
      ? {
        step: selection.bestStep,
        metric: selection.metric,
        value: selection.bestValue!,
        stoppedEarly: endStep < totalSteps,
      }
      : undefined,
  };
  await writeJsonAtomic(join(o.out, "train_summary.json"), {
    steps: endStep,
    ...(result.best
      ? {
        best_step: result.best.step,
        select_by: result.best.metric,
        best_value: result.best.value,
        stopped_early: result.best.stoppedEarly,
      }
      : {}),
    seconds: secs,
    pairs_per_second: result.pairsPerSecond,
    tokens_per_second: result.tokensPerSecond,
    first_loss: allStats[0]?.loss,
    last_loss: allStats.at(-1)?.loss,
    options: runOptions,
  });
  // The run folder is also a sentence-transformers model (pooling, prompts) with a model card.
  const lastEval = (evals.findLast((e) => e.step === result.best?.step) ?? evals.at(-1)) as
    | { step: number; report: { dataset?: string; map: Record<string, number | null> } }
    | undefined;
  await writeRunCard(o.out, {
    pooling: trainerOptions.pooling,
    st: ownPipeline ? withDense(encoder.st!, await encoder.params.readHead()) : undefined,
    hiddenSize: config.hiddenSize,
    maxLength: o.maxLength,
    queryPrefix: o.queryPrefix,
    passagePrefix: o.passagePrefix,
    baseModel: o.modelName ?? o.model,
    train: o.train,
    languages: data.languages,
    sampler: o.sampler,
    alpha: o.sampler === "hybrid" || o.sampler === "lang-sim" ? o.alpha : undefined,
    steps: endStep,
    batchSize: o.batchSize,
    lr: o.lr,
    temperature: trainerOptions.temperature,
    seed: o.seed,
    finalEval: lastEval
      ? { step: lastEval.step, dataset: lastEval.report.dataset, map: lastEval.report.map }
      : undefined,
  });
  trainer.release();
  encoder.release();
  return result;
}

/** The selection state of a run that selects (early stopping or `selectBy`), else null. */
function selectionOf(
  o: TrainOptions,
  hasVal: boolean,
  resumed: Selection | undefined,
): Selection | null {
  if (o.earlyStoppingPatience === undefined && o.selectBy === undefined) return null;
  const metric: SelectBy = o.selectBy ?? (hasVal ? "val_loss" : "multi_map");
  const problem = selectionProblem({ ...o, selectBy: metric });
  if (problem) throw new RangeError(problem);
  if (resumed && resumed.metric === metric) return { ...resumed };
  return { metric, bestStep: null, bestValue: null, sinceBest: 0 };
}

/**
 * Why these selection options cannot work (naming the flags), or null: `val_loss` needs
 * `--val`/`--val-fraction`, a mAP needs `--eval`, early stopping needs `--eval-every`.
 */
export function selectionProblem(o: TrainOptions): string | null {
  const metric = o.selectBy ?? (o.val || o.valFraction !== undefined ? "val_loss" : "multi_map");
  if (metric === "val_loss" && o.val === undefined && o.valFraction === undefined) {
    return "--select-by val_loss needs --val FILE or --val-fraction F";
  }
  if (metric !== "val_loss" && o.eval === undefined) {
    return `--select-by ${metric} needs --eval DIR` +
      (o.selectBy === undefined ? " (or --val/--val-fraction for val_loss)" : "");
  }
  if (o.earlyStoppingPatience !== undefined && !o.evalEvery) {
    return "--early-stopping-patience needs --eval-every N";
  }
  return null;
}

/** Uploads a checkpoint's transformer weights into the encoder's parameters (not a Dense head). */
async function loadTransformerWeights(encoder: Encoder, path: string): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    for (const p of encoder.params.list()) {
      if (p.name.startsWith("head.")) continue;
      if (!file.tensors.has(p.name)) throw new Error(`${path}: lacks ${p.name}`);
      const data = await file.readF32(p.name);
      assertFinite(data, path, p.name);
      encoder.params.upload(p.name, data);
    }
  } finally {
    file.close();
  }
}

/** Bytes of a model.safetensors holding these parameters (data plus a generous header bound). */
function safetensorsBytes(tensors: { shape: readonly number[] }[]): number {
  return tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4 + 160, 4096);
}

/** `checkpoint-<step>` (or a `.old` side copy left by a kill during a same-step replace). */
const CHECKPOINT_DIR = /^checkpoint-(\d+)(\.old)?$/;

async function isCompleteCheckpoint(dir: string): Promise<boolean> {
  return await exists(join(dir, "trainer_state.json")) &&
    await exists(join(dir, "optimizer.safetensors"));
}

/** The complete `checkpoint-<step>` folders of a run directory, oldest first. */
export async function listCheckpoints(out: string): Promise<{ step: number; dir: string }[]> {
  const found: { step: number; dir: string; old: boolean }[] = [];
  try {
    for await (const e of Deno.readDir(out)) {
      const m = e.isDirectory ? CHECKPOINT_DIR.exec(e.name) : null;
      if (m && await isCompleteCheckpoint(join(out, e.name))) {
        found.push({ step: Number(m[1]), dir: join(out, e.name), old: m[2] !== undefined });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  // A side copy only counts when its step has no complete checkpoint of its own.
  const steps = new Set(found.filter((c) => !c.old).map((c) => c.step));
  return found.filter((c) => !c.old || !steps.has(c.step))
    .sort((a, b) => a.step - b.step)
    .map(({ step, dir }) => ({ step, dir }));
}

/**
 * Writes `out/checkpoint-<step>/` atomically: everything goes to a fresh directory that is then
 * renamed into place, so a crash leaves every earlier checkpoint complete. Free space is checked
 * against the checkpoint's planned size first; a failed write removes its temporary directory.
 * Afterwards only the newest `keep` checkpoints remain (and the old single `checkpoint/` layout
 * is dropped). Returns the checkpoint's path.
 */
async function saveCheckpoint(
  out: string,
  encoder: Encoder,
  trainer: Trainer,
  state: TrainerState,
  tokenizerDir: string,
  keep: number,
  protect?: number | null,
): Promise<string> {
  const final = join(out, `checkpoint-${state.step}`);
  // Directories left by a run killed mid-write are incomplete by construction: drop them.
  for await (const e of Deno.readDir(out)) {
    if (e.isDirectory && e.name.startsWith("checkpoint.tmp-")) {
      await Deno.remove(join(out, e.name), { recursive: true });
    }
  }
  const moments = await trainer.readMoments();
  const tmp = join(out, `checkpoint.tmp-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await writeJsonAtomic(join(tmp, "config.json"), configToJson(encoder.config));
    await copyTokenizerFiles(tokenizerDir, tmp);
    const planned = safetensorsBytes([...encoder.params.byName.values()]) +
      safetensorsBytes(moments) + 65536;
    ensureFreeSpace(
      out,
      planned,
      `the checkpoint at step ${state.step}`,
      `. Nothing was lost: free some space and continue with --resume ${out}`,
    );
    await encoder.params.save(join(tmp, "model.safetensors"));
    // A sentence-transformers source: its modules (with the Dense weights as trained so far), so
    // that --resume rebuilds the same pipeline.
    if (encoder.st) {
      await writeSentenceTransformers(tmp, withDense(encoder.st, await encoder.params.readHead()));
    }
    await writeSafetensors(join(tmp, "optimizer.safetensors"), moments);
    const sha256: Record<string, string> = {};
    for (const f of HASHED_FILES) sha256[f] = await sha256File(join(tmp, f));
    await writeJsonAtomic(join(tmp, "trainer_state.json"), { ...state, sha256 });
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  if (await exists(final)) {
    // The same step saved again (a resumed run stopped before its next step): swap via a side
    // copy that listCheckpoints still accepts if a kill lands between the renames.
    const old = `${final}.old`;
    await Deno.remove(old, { recursive: true }).catch(() => {});
    await Deno.rename(final, old);
    await Deno.rename(tmp, final);
    await Deno.remove(old, { recursive: true });
  } else {
    await Deno.rename(tmp, final);
  }
  const all = await listCheckpoints(out);
  // The newest `keep`, and the best one of model selection (`protect`) wherever it lies.
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.step !== protect) await Deno.remove(c.dir, { recursive: true });
  }
  for (const legacy of ["checkpoint", "checkpoint.old"]) {
    await Deno.remove(join(out, legacy), { recursive: true }).catch(() => {});
  }
  return final;
}

/**
 * The checkpoint to resume from: `dir` itself when it is one, else the newest complete
 * `checkpoint-<step>/` in it, else the old single-folder layout (`checkpoint/`, `checkpoint.old/`).
 */
export async function findCheckpoint(dir: string): Promise<string> {
  if (await isCompleteCheckpoint(dir)) return dir;
  const rotated = await listCheckpoints(dir);
  if (rotated.length > 0) return rotated.at(-1)!.dir;
  for (const c of [join(dir, "checkpoint"), join(dir, "checkpoint.old")]) {
    if (await isCompleteCheckpoint(c)) return c;
  }
  throw new Error(
    `--resume ${dir}: no complete checkpoint (trainer_state.json + optimizer.safetensors)`,
  );
}

async function truncateLog(path: string, step: number): Promise<void> {
  if (!(await exists(path))) return;
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim());
  // A kill during an append can leave a torn last line: drop lines that do not parse.
  const stepOf = (l: string) => {
    try {
      return (JSON.parse(l) as { step: number }).step;
    } catch {
      return Infinity;
    }
  };
  const kept = lines.filter((l) => stepOf(l) <= step);
  await writeFileAtomic(path, kept.length ? kept.join("\n") + "\n" : "");
}

async function readSimilarity(
  path: string,
  available: string[],
  langs?: string[],
): Promise<number[][]> {
  try {
    return similarityFromJson(JSON.parse(await Deno.readTextFile(path)), langs ?? available);
  } catch (e) {
    throw new Error(`--similarity ${path}: ${(e as Error).message}`);
  }
}

/** Options of {@linkcode trainWithAutoResume}. */
export interface AutoResumeOptions {
  /** Requests a new adapter and device after a loss (e.g. `() => Gpu.create()`). */
  createGpu: () => Promise<Gpu>;
  /** Recoveries before giving up (default 3). */
  retries?: number;
  /** Wait before requesting a new device, in ms (default 2000). */
  waitMs?: number;
}

/** Whether `gpu`'s device is lost (the `lost` promise settles asynchronously: give it a moment). */
async function deviceLost(gpu: Gpu, e: unknown): Promise<boolean> {
  if (/device (is )?lost|device.*destroyed/i.test((e as Error)?.message ?? "")) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const lost = await Promise.race([
    gpu.device.lost.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), 200)),
  ]);
  clearTimeout(timer);
  return lost;
}

/**
 * {@linkcode train} that survives a lost GPU device (driver reset, sleep, an unplugged external
 * GPU): it waits, requests a new adapter and device, reloads the newest checkpoint in `opts.out`
 * (or starts over when none was written yet) and continues. Resuming replays exactly, so on the
 * same adapter the run ends byte-identical to an uninterrupted one. Started again on a run folder
 * that holds a checkpoint (a preempted job restarted by its scheduler), it continues from there.
 * Returns the result and the GPU the run ended on.
 */
export async function trainWithAutoResume(
  gpu: Gpu,
  opts: TrainOptions,
  auto: AutoResumeOptions,
  onSteps?: StepCallback,
): Promise<TrainResult & { gpu: Gpu; recoveries: number }> {
  const retries = auto.retries ?? 3;
  const waitMs = auto.waitMs ?? 2000;
  let current = gpu;
  // A restarted job (e.g. after a scheduler's preemption) continues from the newest checkpoint.
  let runOpts = opts.resume !== undefined ? opts : {
    ...opts,
    resume: await findCheckpoint(opts.out).then(() => opts.out, () => undefined),
  };
  for (let recoveries = 0;; recoveries++) {
    try {
      return { ...(await train(current, runOpts, onSteps)), gpu: current, recoveries };
    } catch (e) {
      if (recoveries >= retries || !(await deviceLost(current, e))) throw e;
      const resume = await findCheckpoint(opts.out).then(() => opts.out, () => opts.resume);
      console.error(
        `GPU device lost (${(e as Error).message}); waiting ${waitMs} ms, then a new device and ` +
          `${resume ? `the newest checkpoint in ${resume}` : "a fresh start (no checkpoint yet)"}`,
      );
      // The adapter may take a while to come back (driver reset, wake-up): retry the request.
      for (let attempt = 1;; attempt++) {
        await new Promise((r) => setTimeout(r, waitMs));
        try {
          current = await auto.createGpu();
          break;
        } catch (err) {
          if (attempt >= retries) {
            throw new Error(
              `GPU device lost and no new device after ${attempt} requests: ` +
                `${(err as Error).message}. Continue later with --resume ${opts.out}`,
            );
          }
          console.error(`no GPU device yet (${(err as Error).message}); retrying`);
        }
      }
      runOpts = { ...opts, resume };
    }
  }
}
