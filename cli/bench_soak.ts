/**
 * `bench soak [--steps 2000] [--eval-every 200] [--save-every 250] [--save-total-limit 2]
 * [--lose-device-at STEP|0] [--sample-every 50] [--out DIR] [--json]`: a long training run of a
 * small model on the embedded synthetic corpus, with evaluation every N steps, rotated
 * checkpoints and one simulated device loss (recovered by {@linkcode trainWithAutoResume}).
 * Reports, at each evaluation step, the GPU memory held by the buffer pool, live and pooled
 * buffers, host RSS and the step time, then whether memory stayed flat and how step time drifted.
 * Not part of CI: it takes minutes.
 * @module
 */
import { join } from "node:path";
import { defineFlags, UsageError } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { buildSyntheticCorpus, writeSyntheticCorpus } from "../demo/synthetic.ts";
import { XlmrTokenizer } from "../model/tokenizer.ts";
import { presetConfig } from "../model/config.ts";
import { initModelDir } from "../model/init.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { listCheckpoints } from "../training/train.ts";
import { trainWithAutoResume } from "../training/auto_resume.ts";

/** One sample, taken when the losses of a step are read back. */
export interface SoakSample {
  step: number;
  /** Which device (0 before the simulated loss, 1 after). */
  device: number;
  gpuAllocatedBytes: number;
  liveBuffers: number;
  liveBytes: number;
  pooledBuffers: number;
  rssBytes: number;
  /**
   * Mean wall time per step since the previous sample (includes evals and checkpoints); NaN for
   * the first sample after a recovery (the steps since the checkpoint were replayed).
   */
  msPerStep: number;
}

/** What `bench soak --json` prints. */
export interface SoakReport {
  steps: number;
  evalEvery: number;
  saveEvery: number;
  saveTotalLimit: number;
  lostDeviceAt: number | null;
  recoveries: number;
  seconds: number;
  samples: SoakSample[];
  /** Samples at evaluation steps (taken just before that step's evaluation). */
  atEvals: SoakSample[];
  /** Growth of pooled GPU bytes and live buffers from the second eval sample of each device on. */
  gpuBytesGrowth: number;
  liveBuffersGrowth: number;
  /** RSS growth from each device's second eval sample to its last (the largest). */
  rssGrowthBytes: number;
  /** Median ms/step of the last quarter of samples over the first quarter's (1 = no drift). */
  stepTimeDrift: number;
  checkpointsLeft: string[];
  flat: boolean;
  adapter: string;
}

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** Runs the soak benchmark and returns its report. */
export async function runSoak(opts: {
  steps: number;
  evalEvery: number;
  saveEvery: number;
  saveTotalLimit: number;
  loseDeviceAt: number;
  sampleEvery: number;
  out: string;
  log?: (line: string) => void;
}): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  await Deno.mkdir(opts.out, { recursive: true });
  const seed = 7;
  const corpus = buildSyntheticCorpus({ seed, items: 160 });
  const files = await writeSyntheticCorpus(join(opts.out, "data"), corpus);
  const tokenizer = XlmrTokenizer.fromVocab(corpus.vocabulary, { foldWhitespace: true });
  const tokDir = join(opts.out, "tokenizer");
  await Deno.mkdir(tokDir, { recursive: true });
  await writeJsonAtomic(join(tokDir, "tokenizer.json"), tokenizer.toJson());
  const maxLength = 24;
  const config = presetConfig("tiny", {
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 2,
    intermediateSize: 64,
    maxPositions: maxLength + 2,
  });
  const initDir = join(opts.out, "init-model");
  await initModelDir(initDir, config, { seed, tokenizerDir: tokDir });

  let gpu = await Gpu.create();
  const adapter = gpu.describe();
  const first = gpu;
  let device = 0;
  let lost = false;
  const samples: SoakSample[] = [];
  let last = { t: performance.now(), step: 0 };
  const t0 = performance.now();
  const r = await trainWithAutoResume(
    gpu,
    {
      model: initDir,
      train: files.trainJsonl,
      out: join(opts.out, "run"),
      sampler: "hybrid",
      batchSize: 8,
      steps: opts.steps,
      lr: 1e-3,
      warmupSteps: 20,
      maxLength,
      pooling: "mean",
      seed,
      logEvery: opts.sampleEvery,
      saveEvery: opts.saveEvery,
      saveTotalLimit: opts.saveTotalLimit,
      eval: files.testDir,
      evalEvery: opts.evalEvery,
      quiet: true,
    },
    {
      createGpu: async () => {
        gpu = await Gpu.create();
        device++;
        return gpu;
      },
      waitMs: 100,
    },
    (stats) => {
      const step = stats.at(-1)!.step;
      const now = performance.now();
      const pool = gpu.poolStats();
      const s: SoakSample = {
        step,
        device,
        gpuAllocatedBytes: gpu.allocatedBytes,
        liveBuffers: pool.liveBuffers,
        liveBytes: pool.liveBytes,
        pooledBuffers: pool.freeBuffers,
        rssBytes: Deno.memoryUsage().rss,
        msPerStep: step > last.step ? (now - last.t) / (step - last.step) : NaN,
      };
      last = { t: now, step };
      samples.push(s);
      if (step % opts.evalEvery === 0) {
        log(
          `step ${step} (device ${device}): GPU ${
            (s.gpuAllocatedBytes / 2 ** 20).toFixed(2)
          } MiB, ` +
            `${s.liveBuffers} live + ${s.pooledBuffers} pooled buffers, RSS ${
              (s.rssBytes / 2 ** 20).toFixed(0)
            } MiB, ${s.msPerStep.toFixed(1)} ms/step`,
        );
      }
      if (!lost && opts.loseDeviceAt > 0 && step >= opts.loseDeviceAt) {
        lost = true;
        log(`simulating a lost device at step ${step}`);
        first.device.destroy();
      }
    },
  );
  const seconds = (performance.now() - t0) / 1000;
  const atEvals = samples.filter((s) => s.step % opts.evalEvery === 0);
  // Memory is compared from each device's second eval sample on (the first eval warms the pool).
  let gpuBytesGrowth = 0, liveBuffersGrowth = 0, rssGrowthBytes = 0;
  for (const d of new Set(atEvals.map((s) => s.device))) {
    const seg = atEvals.filter((s) => s.device === d).slice(1);
    if (seg.length < 2) continue;
    const growth = (f: (s: SoakSample) => number) => f(seg.at(-1)!) - f(seg[0]);
    gpuBytesGrowth = Math.max(gpuBytesGrowth, growth((s) => s.gpuAllocatedBytes));
    liveBuffersGrowth = Math.max(liveBuffersGrowth, growth((s) => s.liveBuffers));
    rssGrowthBytes = Math.max(rssGrowthBytes, growth((s) => s.rssBytes));
  }
  const timed = samples.filter((s) => Number.isFinite(s.msPerStep));
  const q = Math.max(1, Math.floor(timed.length / 4));
  const stepTimeDrift = median(timed.slice(-q).map((s) => s.msPerStep)) /
    median(timed.slice(0, q).map((s) => s.msPerStep));
  const checkpointsLeft = (await listCheckpoints(join(opts.out, "run"))).map((c) => c.dir);
  r.gpu.destroy();
  return {
    steps: opts.steps,
    evalEvery: opts.evalEvery,
    saveEvery: opts.saveEvery,
    saveTotalLimit: opts.saveTotalLimit,
    lostDeviceAt: opts.loseDeviceAt > 0 ? opts.loseDeviceAt : null,
    recoveries: r.recoveries,
    seconds,
    samples,
    atEvals,
    gpuBytesGrowth,
    liveBuffersGrowth,
    rssGrowthBytes,
    stepTimeDrift,
    checkpointsLeft,
    // Pool bytes and live buffers exactly; RSS within allocator noise.
    flat: gpuBytesGrowth === 0 && liveBuffersGrowth === 0 && rssGrowthBytes < 16 * 2 ** 20,
    adapter,
  };
}

/** The flags of `bench soak`. */
export const BENCH_SOAK_FLAGS = defineFlags({
  command: "bench soak",
  summary: "a long training run with evals, rotated checkpoints and a simulated device loss: " +
    "is memory flat, does step time drift",
  flags: {
    steps: { type: "integer", min: 1, default: 2000, description: "training steps" },
    "eval-every": {
      type: "integer",
      min: 1,
      default: 200,
      description: "evaluate (and report a sample) every N steps; a multiple of --sample-every",
    },
    "save-every": {
      type: "integer",
      min: 1,
      default: 250,
      description: "checkpoint every N steps",
    },
    "save-total-limit": {
      type: "integer",
      min: 1,
      default: 2,
      description: "checkpoints kept",
    },
    "lose-device-at": {
      type: "integer",
      min: 0,
      defaultText: "55% of --steps",
      description: "destroy the device at this step (0: never)",
    },
    "sample-every": {
      type: "integer",
      min: 1,
      default: 50,
      description: "read losses back and sample memory every N steps",
    },
    out: {
      type: "string",
      arg: "DIR",
      defaultText: "a new temporary folder",
      description: "work folder",
    },
    json: { type: "boolean", description: "print the report as one JSON object" },
  },
});

/** Runs `bench soak ...flags`. */
export async function benchSoakCommand(args: string[]): Promise<void> {
  const values = BENCH_SOAK_FLAGS.parse(args);
  const steps = values.steps;
  const evalEvery = values["eval-every"];
  const opts = {
    steps,
    evalEvery,
    saveEvery: values["save-every"],
    saveTotalLimit: values["save-total-limit"],
    // Between checkpoints, so the recovery replays steps.
    loseDeviceAt: values["lose-device-at"] ?? Math.round(steps * 0.55),
    sampleEvery: values["sample-every"],
    out: values.out ?? await Deno.makeTempDir({ prefix: "xlmr_soak_" }),
  };
  if (opts.evalEvery % opts.sampleEvery !== 0) {
    throw new UsageError("bench soak: --eval-every must be a multiple of --sample-every");
  }
  const json = values.json;
  const r = await runSoak({ ...opts, log: json ? undefined : (l) => console.log(l) });
  if (json) {
    console.log(JSON.stringify(r));
    return;
  }
  const mib = (n: number) => (n / 2 ** 20).toFixed(2);
  console.log(
    `\n${r.steps} steps in ${r.seconds.toFixed(0)} s (${r.adapter}), eval every ${r.evalEvery}, ` +
      `checkpoint every ${r.saveEvery} (keep ${r.saveTotalLimit}), device lost at ` +
      `${r.lostDeviceAt ?? "never"} (${r.recoveries} recovery)\n\n` +
      `| step | device | GPU pool MiB | live buffers | pooled buffers | RSS MiB | ms/step |\n` +
      `| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n` +
      r.atEvals.map((s) =>
        `| ${s.step} | ${s.device} | ${mib(s.gpuAllocatedBytes)} | ${s.liveBuffers} | ` +
        `${s.pooledBuffers} | ${(s.rssBytes / 2 ** 20).toFixed(0)} | ` +
        // The first sample after a recovery follows a replay from the checkpoint: no rate.
        `${Number.isFinite(s.msPerStep) ? s.msPerStep.toFixed(1) : "–"} |`
      ).join("\n") +
      `\n\nGPU pool growth after warm-up: ${r.gpuBytesGrowth} bytes, live buffers ` +
      `${r.liveBuffersGrowth}; RSS growth after warm-up ${
        mib(r.rssGrowthBytes)
      } MiB; step time drift ` +
      `×${r.stepTimeDrift.toFixed(3)} (last quarter / first quarter, median); checkpoints left: ` +
      `${r.checkpointsLeft.map((d) => d.split("/").at(-1)).join(", ")}; memory ` +
      `${r.flat ? "flat" : "NOT flat"}\n→ ${opts.out}`,
  );
}
