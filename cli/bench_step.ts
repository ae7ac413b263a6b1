/**
 * `bench step`: times whole contrastive training steps ({@linkcode Trainer.step}) on random token
 * ids and profiles one of them.
 *
 * `deno run -A cli.ts bench step --config tiny|small|base --batch-size B --max-length T
 *   [--steps N] [--warmup W] [--vocab V] [--hard-negatives K] [--fp16] [--no-profile] [--json]`
 *
 * Timed steps: each is recorded, submitted and waited for on its own (wall time), giving tokens/s
 * and pairs/s, dispatches and submits per step, and the peak of pooled device memory.
 *
 * Profile: one more step runs with every dispatch captured (the `Gpu` instance's `dispatch` is
 * wrapped; nothing in the runtime changes) and tagged with its phase (zero_grad, forward, loss,
 * backward, optimizer; with `--fp16` also f16_weights, the re-cast of the f16 weight copies that
 * opens each step). Afterwards the captured dispatches are replayed inside `gpu.timeGpu`,
 * once grouped by phase and once grouped by kernel (matmuls by shape), giving GPU times per phase
 * and per kernel — the matmul share among them. Replays run on the same buffers as the real step,
 * except that integer (index) tensors are replaced by zero-filled scratch buffers so that no
 * data-dependent loop can run away: the embedding scatter then does almost nothing, so its share
 * is a lower bound.
 * @module
 */
import { mulberry32 } from "../model/init.ts";
import { Gpu, type KernelSpec, type ParamValue } from "../kernels/runtime.ts";
import { defineFlags, UsageError } from "./flags.ts";
import { Tensor } from "../kernels/tensor.ts";
import { XlmrParams } from "../model/params.ts";
import { maxSequenceLength, type XlmrConfig } from "../model/config.ts";
import { DEFAULT_TRAINER_OPTIONS, Trainer } from "../training/trainer.ts";
import { memoryPlan, planConfig, type PlanConfigName } from "../training/memory_plan.ts";

/** The flags of `bench step`; their defaults are {@linkcode runStepBench}'s. */
export const BENCH_STEP_FLAGS = defineFlags({
  command: "bench step",
  summary:
    "time whole contrastive training steps on random ids and profile one by phase and kernel",
  flags: {
    config: {
      type: "choice",
      choices: ["tiny", "small", "base", "large"],
      default: "tiny",
      description: "model size",
    },
    "batch-size": { type: "integer", min: 1, default: 8, description: "queries per batch" },
    "max-length": { type: "integer", min: 2, default: 32, description: "tokens per sequence" },
    steps: { type: "integer", min: 1, default: 3, description: "timed steps after warm-up" },
    warmup: { type: "integer", min: 0, default: 1, description: "untimed steps first" },
    vocab: {
      type: "integer",
      min: 8,
      defaultText: "the config's",
      description: "vocabulary size (the word table is the largest tensor)",
    },
    "hard-negatives": {
      type: "integer",
      min: 0,
      default: 0,
      description: "hard negatives per query",
    },
    seed: { type: "integer", min: 0, default: 1, description: "seed of the weights and ids" },
    "no-profile": { type: "boolean", description: "skip the captured-and-replayed profile step" },
    baseline: {
      type: "boolean",
      description: "per-tensor optimiser, separate q/k/v products and query/passage passes (A/B)",
    },
    ab: {
      type: "boolean",
      description: "run --baseline, then the default, in one process and compare them",
    },
    fp16: {
      type: "boolean",
      description: "mixed-precision training (TrainerOptions.fp16), in both runs of --ab too",
    },
    json: { type: "boolean", description: "print one JSON object instead of the summary" },
  },
});

/** Options of {@linkcode runStepBench}. */
export interface StepBenchOptions {
  config: PlanConfigName;
  batchSize: number;
  maxLength: number;
  /** Timed steps after warm-up (default 3). */
  steps?: number;
  /** Untimed steps first (pipelines compile here; default 1). */
  warmup?: number;
  /** Vocabulary size override (the word table is the largest tensor). */
  vocab?: number;
  /** Hard negatives per query (default 0). */
  hardNegatives?: number;
  /** Capture and replay one step for the phase and kernel profile (default true). */
  profile?: boolean;
  /** Seed of the weights and token ids (default 1). */
  seed?: number;
  /** Activation checkpointing in the trainer (default false; bench suite turns it on). */
  checkpointing?: boolean;
  /**
   * The A/B baseline: TrainerOptions.flatOptimizer, jointEncode and fuseQkv off (one AdamW, norm
   * and zeroing dispatch per tensor; three q/k/v products; queries and passages in separate
   * passes). Default false.
   */
  baseline?: boolean;
  /** Mixed precision (TrainerOptions.fp16; planned with fp16 too). Default false. */
  fp16?: boolean;
}

/** One kernel group of the profile. */
export interface KernelShare {
  kernel: string;
  dispatches: number;
  gpu_ms: number;
  share: number;
}

/** What `bench step --json` prints. */
export interface StepBenchResult {
  op: "step";
  config: string;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  vocab: number;
  parameters: number;
  batch_size: number;
  passages: number;
  max_length: number;
  /** Mixed precision (`--fp16`): the trainer ran with fp16 and `planned_bytes` is the fp16 plan. */
  fp16: boolean;
  steps: number;
  /** Median wall time of one step (record + submit + wait). */
  step_ms: number;
  step_ms_all: number[];
  /** Tokens encoded per second (queries and passages, padded length). */
  tokens_per_s: number;
  pairs_per_s: number;
  dispatches_per_step: number;
  submits_per_step: number;
  /** Peak of pooled device memory (gpu.peakBytes) over the whole run. */
  peak_bytes: number;
  /** training/memory_plan.ts's total for the same shape (and precision). */
  planned_bytes: number;
  /** GPU ms per phase from the replayed step (null without timestamps or with --no-profile). */
  phases: Record<string, number> | null;
  /** Sum of the replayed kernels' GPU time against the median step's wall time. */
  profile_coverage: number | null;
  matmul_gpu_ms: number | null;
  matmul_share: number | null;
  kernels: KernelShare[] | null;
  adapter: string;
}

interface Captured {
  spec: KernelSpec;
  tensors: (Tensor | null)[];
  params: ParamValue[] | null;
  workgroups: [number, number?, number?];
  phase: string;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

/** Random sequences of exactly `len` tokens: `<s>`, ids from 4 to vocab−1, `</s>`. */
function randomSeqs(count: number, len: number, vocab: number, next: () => number): number[][] {
  return Array.from({ length: count }, () => {
    const s = [0];
    for (let t = 1; t < len - 1; t++) s.push(4 + Math.floor(next() * (vocab - 4)));
    if (len > 1) s.push(2);
    return s;
  });
}

/** The matmul group name of a captured dispatch: its problem size and transposes. */
function kernelName(c: Captured): string {
  const name = `${c.spec.shader.replace(/\.wgsl$/, "")}:${c.spec.entry ?? "main"}`;
  if (c.spec.shader !== "matmul.wgsl" || !c.params) return name;
  const v = (i: number) => (c.params![i] as { u32: number }).u32;
  const ta = c.spec.constants?.TRANS_A ? "ᵀ" : "", tb = c.spec.constants?.TRANS_B ? "ᵀ" : "";
  return `matmul ${v(0)}×${v(1)}×${v(2)} A${ta}B${tb}`;
}

/**
 * Replays `list` inside timestamped passes (at most `perPass` dispatches each, below the uniform
 * ring's 1024 slots so that no flush cuts a pass) and returns the summed GPU ms.
 */
async function replay(
  gpu: Gpu,
  list: Captured[],
  scratch: (t: Tensor | null) => Tensor | null,
  perPass = 800,
): Promise<number | null> {
  let total = 0;
  for (let i = 0; i < list.length; i += perPass) {
    const part = list.slice(i, i + perPass);
    const ms = await gpu.timeGpu(() => {
      for (const c of part) gpu.dispatch(c.spec, c.tensors.map(scratch), c.params, c.workgroups);
    });
    if (ms === null) return null;
    total += ms;
  }
  return total;
}

/**
 * Runs the step benchmark on `gpu` (a fresh one is best: peak memory is per device).
 *
 * @example
 * ```ts ignore
 * import { Gpu } from "../kernels/runtime.ts";
 * import { runStepBench } from "./bench_step.ts";
 * const r = await runStepBench(await Gpu.create(), { config: "tiny", batchSize: 4, maxLength: 16 });
 * console.log(r.tokens_per_s);
 * ```
 */
export async function runStepBench(gpu: Gpu, o: StepBenchOptions): Promise<StepBenchResult> {
  const d = BENCH_STEP_FLAGS.flags;
  const steps = o.steps ?? d.steps.default, warmup = o.warmup ?? d.warmup.default;
  const hardNegatives = o.hardNegatives ?? d["hard-negatives"].default;
  const seed = o.seed ?? d.seed.default;
  const overrides: Partial<XlmrConfig> = o.vocab ? { vocabSize: o.vocab } : {};
  const config = planConfig(o.config, overrides);
  const maxTokens = maxSequenceLength(config);
  if (o.maxLength < 2 || o.maxLength > maxTokens) {
    throw new RangeError(
      `bench step: --max-length must be in [2, ${maxTokens}] for ${o.config}, got ${o.maxLength}`,
    );
  }
  const fp16 = o.fp16 ?? false;
  const plan = memoryPlan(config, {
    batchSize: o.batchSize,
    maxLength: o.maxLength,
    hardNegatives,
    fp16,
  });
  const next = mulberry32(seed);
  const params = XlmrParams.init(gpu, config, seed);
  const trainer = new Trainer(params, {
    ...DEFAULT_TRAINER_OPTIONS,
    checkpointing: o.checkpointing ?? DEFAULT_TRAINER_OPTIONS.checkpointing,
    fp16,
    ...(o.baseline ? { flatOptimizer: false, jointEncode: false, fuseQkv: false } : {}),
  });
  const P = o.batchSize * (1 + hardNegatives);
  const batches = Array.from({ length: warmup + steps + 1 }, () => ({
    q: randomSeqs(o.batchSize, o.maxLength, config.vocabSize, next),
    p: randomSeqs(P, o.maxLength, config.vocabSize, next),
  }));
  await gpu.sync();

  const times: number[] = [];
  let dispatches = 0, submits = 0;
  for (let i = 0; i < warmup + steps; i++) {
    const d0 = gpu.dispatchCount, s0 = gpu.submitCount;
    const t0 = performance.now();
    trainer.step(batches[i].q, batches[i].p, 1e-5);
    await gpu.sync();
    const ms = performance.now() - t0;
    if (i >= warmup) {
      times.push(ms);
      dispatches = gpu.dispatchCount - d0;
      submits = gpu.submitCount - s0;
    }
  }
  const stats = await trainer.collect();
  if (!stats.every((s) => Number.isFinite(s.loss))) {
    throw new Error(`bench step: a step produced a non-finite loss (${JSON.stringify(stats)})`);
  }
  const stepMs = median(times);
  const peakBytes = gpu.peakBytes; // before the profile's scratch buffers
  const tokens = (o.batchSize + P) * o.maxLength;

  let phases: Record<string, number> | null = null;
  let kernels: KernelShare[] | null = null;
  let matmulMs: number | null = null, coverage: number | null = null;
  if (o.profile !== false && gpu.hasTimestamps) {
    const captured = captureStep(gpu, trainer, batches[warmup + steps], fp16);
    await gpu.sync();
    await trainer.collect();
    // Integer tensors are indices (token ids, scatter plans): replay them as zeros.
    const scratchOf = new Map<GPUBuffer, Tensor>();
    // Float tensors are bound as they were, even those the step has released since (their
    // contents do not matter for timing): as tensors made by hand, which are not tracked.
    const scratch = (t: Tensor | null): Tensor | null => {
      if (!t) return t;
      if (t.dtype === "f32" || t.dtype === "f16") {
        return new Tensor(t.buffer, t.shape, t.dtype, t.offset);
      }
      let s = scratchOf.get(t.buffer);
      if (!s) {
        s = gpu.zeros([Math.ceil((t.offset + t.byteLength) / 4)], t.dtype, "bench.scratch");
        scratchOf.set(t.buffer, s);
      }
      return new Tensor(s.buffer, t.shape, t.dtype, t.offset);
    };
    for (const c of captured) c.tensors.forEach(scratch);
    await gpu.sync();
    await replay(gpu, captured.slice(0, 50), scratch); // warm the pipelines again
    phases = {};
    const names = ["zero_grad", "forward", "loss", "backward", "optimizer"];
    for (const phase of fp16 ? ["f16_weights", ...names] : names) {
      const ms = await replay(gpu, captured.filter((c) => c.phase === phase), scratch);
      phases[phase] = round(ms ?? 0);
    }
    const groups = new Map<string, Captured[]>();
    for (const c of captured) {
      const k = kernelName(c);
      groups.set(k, [...(groups.get(k) ?? []), c]);
    }
    const rows: KernelShare[] = [];
    for (const [kernel, list] of groups) {
      rows.push({
        kernel,
        dispatches: list.length,
        gpu_ms: (await replay(gpu, list, scratch))!,
        share: 0,
      });
    }
    const total = rows.reduce((a, r) => a + r.gpu_ms, 0);
    for (const r of rows) {
      r.share = round(r.gpu_ms / total, 4);
      r.gpu_ms = round(r.gpu_ms);
    }
    rows.sort((a, b) => b.gpu_ms - a.gpu_ms);
    kernels = rows;
    matmulMs = round(
      rows.filter((r) => r.kernel.startsWith("matmul")).reduce((a, r) => a + r.gpu_ms, 0),
    );
    coverage = round(total / stepMs, 3);
    gpu.release(...scratchOf.values());
  }
  trainer.release();
  params.release();
  return {
    op: "step",
    config: o.config,
    hidden: config.hiddenSize,
    layers: config.numLayers,
    heads: config.numHeads,
    intermediate: config.intermediateSize,
    vocab: config.vocabSize,
    parameters: params.count(),
    batch_size: o.batchSize,
    passages: P,
    max_length: o.maxLength,
    fp16,
    steps,
    step_ms: round(stepMs),
    step_ms_all: times.map((t) => round(t)),
    tokens_per_s: round(tokens / (stepMs / 1000), 1),
    pairs_per_s: round(o.batchSize / (stepMs / 1000), 3),
    dispatches_per_step: dispatches,
    submits_per_step: submits,
    peak_bytes: peakBytes,
    planned_bytes: plan.total,
    phases,
    profile_coverage: coverage,
    matmul_gpu_ms: matmulMs,
    matmul_share: matmulMs === null || !kernels
      ? null
      : round(matmulMs / kernels.reduce((a, r) => a + r.gpu_ms, 0), 4),
    kernels,
    adapter: gpu.describe(),
  };
}

/**
 * Runs one step with every dispatch recorded and tagged with its phase. With fp16, what runs
 * before the forward is the re-cast of the f16 weight copies.
 */
function captureStep(
  gpu: Gpu,
  trainer: Trainer,
  batch: { q: number[][]; p: number[][] },
  fp16: boolean,
) {
  const captured: Captured[] = [];
  let phase = fp16 ? "f16_weights" : "zero_grad";
  const model = trainer.model;
  const dispatch = gpu.dispatch;
  const forward = model.forward;
  const backward = model.backward;
  gpu.dispatch = (spec, tensors, params, workgroups) => {
    captured.push({ spec, tensors: [...tensors], params, workgroups, phase });
    dispatch.call(gpu, spec, tensors, params, workgroups);
  };
  model.forward = (...args) => {
    phase = "forward";
    const r = forward.apply(model, args);
    phase = "loss";
    return r;
  };
  model.backward = (...args) => {
    phase = "backward";
    backward.apply(model, args);
    phase = "optimizer";
  };
  // The trainer zeroes the gradients just before its first backward.
  const zeroGrad = trainer.zeroGrad;
  trainer.zeroGrad = () => {
    const was = phase;
    phase = "zero_grad";
    zeroGrad.call(trainer);
    phase = was;
  };
  try {
    trainer.step(batch.q, batch.p, 1e-5);
  } finally {
    // Drop the instance overrides: the prototype methods show through again.
    Reflect.deleteProperty(gpu, "dispatch");
    Reflect.deleteProperty(model, "forward");
    Reflect.deleteProperty(model, "backward");
    Reflect.deleteProperty(trainer, "zeroGrad");
  }
  return captured;
}

/** A human-readable report of a step benchmark. */
export function formatStepBench(r: StepBenchResult): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const lines = [
    `step ${r.config} (H ${r.hidden}, L ${r.layers}, heads ${r.heads}, I ${r.intermediate}, ` +
    `vocab ${r.vocab}, ${r.parameters.toLocaleString("en-US")} params${
      r.fp16 ? ", mixed precision" : ""
    }), batch ${r.batch_size} ` +
    `queries + ${r.passages} passages × ${r.max_length} tokens on ${r.adapter}`,
    `  step ${r.step_ms} ms (median of ${r.steps}: ${r.step_ms_all.join(", ")}), ` +
    `${r.tokens_per_s} tokens/s, ${r.pairs_per_s} pairs/s`,
    `  ${r.dispatches_per_step} dispatches, ${r.submits_per_step} submits per step; ` +
    `peak ${mib(r.peak_bytes)} MiB (plan ${mib(r.planned_bytes)} MiB)`,
  ];
  if (r.phases) {
    lines.push(
      `  phases (GPU ms, replayed): ${
        Object.entries(r.phases).map(([k, v]) => `${k} ${v}`).join(", ")
      }; coverage ${r.profile_coverage} of the step's wall time`,
      `  matmuls: ${r.matmul_gpu_ms} ms = ${((r.matmul_share ?? 0) * 100).toFixed(1)}% of GPU time`,
      "",
      "| kernel | dispatches | GPU ms | share |",
      "| --- | --: | --: | --: |",
      ...r.kernels!.map((k) =>
        `| ${k.kernel} | ${k.dispatches} | ${k.gpu_ms} | ${(k.share * 100).toFixed(1)}% |`
      ),
    );
  }
  return lines.join("\n");
}

/**
 * Runs `bench step ...flags` (`args` are the words after `step`).
 *
 * @example
 * ```ts ignore
 * import { benchStepCommand } from "./bench_step.ts";
 * await benchStepCommand(["--config", "tiny", "--batch-size", "4", "--max-length", "16", "--json"]);
 * ```
 */
export async function benchStepCommand(args: string[]): Promise<void> {
  const f = BENCH_STEP_FLAGS.parse(args);
  // A length the configuration's position table cannot hold is a usage error, found before the GPU.
  const maxTokens = maxSequenceLength(planConfig(f.config, f.vocab ? { vocabSize: f.vocab } : {}));
  if (f["max-length"] > maxTokens) {
    throw new UsageError(
      `bench step: --max-length must be in [2, ${maxTokens}] for ${f.config}, got ${
        f["max-length"]
      }`,
    );
  }
  const gpu = await Gpu.create();
  const run = (baseline: boolean) =>
    runStepBench(gpu, {
      config: f.config,
      batchSize: f["batch-size"],
      maxLength: f["max-length"],
      steps: f.steps,
      warmup: f.warmup,
      vocab: f.vocab,
      hardNegatives: f["hard-negatives"],
      seed: f.seed,
      profile: !f["no-profile"],
      baseline,
      fp16: f.fp16,
    });
  if (f.ab) {
    const baseline = await run(true), current = await run(false);
    if (f.json) console.log(JSON.stringify({ op: "step-ab", baseline, current }));
    else {
      console.log(`baseline:\n${formatStepBench(baseline)}\ncurrent:\n${formatStepBench(current)}`);
      const row = (name: string, r: StepBenchResult) =>
        `| ${name} | ${r.dispatches_per_step} | ${r.submits_per_step} | ${r.step_ms} | ` +
        `${r.tokens_per_s} |`;
      console.log(
        "| run | dispatches/step | submits/step | ms/step | tokens/s |\n|---|---|---|---|---|\n" +
          `${row("baseline", baseline)}\n${row("current", current)}`,
      );
    }
    return;
  }
  const result = await run(f.baseline);
  console.log(f.json ? JSON.stringify(result) : formatStepBench(result));
}
