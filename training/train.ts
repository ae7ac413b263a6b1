/**
 * The training run: data → sampler → steps on the GPU → logs, checkpoints and the final
 * Hugging Face-format model directory. Resumable: a checkpoint holds the weights, the AdamW
 * moments, the sampler's state and the step, so a resumed run continues exactly.
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { configToJson, loadConfig } from "../model/config.ts";
import { assertFinite, SafetensorsFile } from "../model/safetensors.ts";
import { copyTokenizerFiles } from "../model/init.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
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
import { withDense } from "../model/sentence_transformers.ts";
import { resolveModel, resolveModelDir } from "../model/hub.ts";
import {
  findCheckpoint,
  fingerprint,
  listCheckpoints,
  loadTransformerWeights,
  readTrainerState,
  safetensorsBytes,
  saveCheckpoint,
  type Selection,
  truncateLog,
} from "./checkpoints.ts";

export { findCheckpoint, listCheckpoints } from "./checkpoints.ts";

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
    fp16: trainerOptions.fp16,
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
  // A resumed run whose checkpoint step was already evaluated (a finished run's final eval comes
  // after its last checkpoint) does not evaluate that step again.
  let lastEvalStep = -1;
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
    // An fp16 run goes on with the loss scale it had; a checkpoint of an f32 run (or one from
    // before the scale was saved) starts the scale afresh.
    if (trainerOptions.fp16 && state.lossScale) {
      trainer.writeLossScale(state.lossScale, join(resumeDir, "trainer_state.json"));
    }
    trainer.stepCount = state.step;
    startStep = state.step;
    // Keep the logs consistent with the checkpoint: drop lines after its step.
    await truncateLog(metricsPath, startStep);
    await truncateLog(batchesPath, startStep);
    lastEvalStep = await truncateLog(join(o.out, "eval.jsonl"), startStep);
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
  let pairs = 0, tokens = 0;
  const t0 = performance.now();
  let metricsBuffer: string[] = [];
  let batchesBuffer: string[] = [];
  const batchKinds = new Map<number, string>();

  const flushLogs = async (stats: StepStats[]) => {
    for (const s of stats) {
      // fp16: overflowing gradients at a finite loss are GradScaler's skipped step (the scale
      // backs off and training goes on); anything else non-finite stops the run.
      if (s.skipped) {
        log(`step ${s.step}: gradients overflowed at loss scale ${s.lossScale}; update skipped`);
      } else if (!Number.isFinite(s.loss) || !Number.isFinite(s.gradNorm)) {
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
        ...(s.lossScale === undefined ? {} : { loss_scale: s.lossScale }),
        ...(s.skipped ? { skipped: true } : {}),
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
