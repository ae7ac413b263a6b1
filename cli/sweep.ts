/**
 * `sweep --model DIR --train DATA --eval DIR --out DIR [--alphas 0,0.25,0.5,0.75,1]
 * [--samplers xx,xy,hybrid,lang-sim] [--groups FILE.json] [train flags…]`: the same training
 * with several α (hybrid) or samplers, each evaluated, one comparison report.
 * @module
 */
import { join } from "node:path";
import { defineFlags, listFlag, required, UsageError } from "./flags.ts";
import { resumeArgs, TRAIN_FLAGS, trainOptionsFromFlags } from "./train.ts";
import { GracefulStop } from "./signals.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import { runSweep, type SweepVariant } from "../training/sweep.ts";
import { DEFAULT_TRAIN_OPTIONS } from "../training/train.ts";

/** α values swept when neither --alphas nor --samplers is given. */
const DEFAULT_ALPHAS = [0, 0.25, 0.5, 0.75, 1];

/** The flags of `sweep`: those of `train` (--eval required) and the variants. */
export const SWEEP_FLAGS = defineFlags({
  command: "sweep",
  summary: "train with several α or samplers, evaluate each, write one comparison report",
  flags: {
    ...TRAIN_FLAGS,
    eval: {
      type: "string",
      required: true,
      arg: "DIR",
      description: "LAReQA folder every variant is evaluated on",
    },
    alphas: {
      type: "list",
      defaultText: `${DEFAULT_ALPHAS.join(",")} (without --samplers)`,
      description: "hybrid variants, one per α in [0, 1]",
    },
    samplers: {
      type: "list",
      arg: "xx,xy,hybrid,lang-sim",
      description: "one variant per sampler (α from --alpha)",
    },
    groups: {
      type: "string",
      arg: "FILE.json",
      description: 'language groups for per-group averages ({"low": [...], ...})',
    },
    "limit-questions": {
      type: "integer",
      min: 1,
      defaultText: "all",
      description: "evaluate on the first N questions per language",
    },
    seeds: {
      type: "list",
      arg: "1,2,3",
      defaultText: "--seed",
      description: "train every variant once per seed; the table gives mean ± std",
    },
  },
});

/** Runs the `sweep` command. */
export async function sweepCommand(args: string[]): Promise<void> {
  const { values: v, raw: f } = SWEEP_FLAGS.parseAll(args);
  const evalDir = required("sweep", f, "eval");
  const base = trainOptionsFromFlags("sweep", f);
  const seeds = listFlag(f, "seeds")?.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) {
      throw new UsageError(`--seeds: "${s}" is not an integer ≥ 0`);
    }
    return n;
  });
  if (seeds && new Set(seeds).size !== seeds.length) {
    throw new UsageError(`--seeds: a seed is given twice (${seeds.join(",")})`);
  }
  const variants: SweepVariant[] = [];
  for (const a of listFlag(f, "alphas") ?? []) {
    const alpha = Number(a);
    if (!Number.isFinite(alpha) || alpha < 0 || alpha > 1) {
      throw new UsageError(`--alphas: "${a}" is not a number in [0, 1]`);
    }
    variants.push({ name: `hybrid α=${alpha}`, sampler: "hybrid", alpha });
  }
  for (const s of listFlag(f, "samplers") ?? []) {
    if (!["xx", "xy", "hybrid", "lang-sim"].includes(s)) {
      throw new UsageError(`--samplers: unknown sampler "${s}" (xx|xy|hybrid|lang-sim)`);
    }
    variants.push({
      name: s,
      sampler: s as SweepVariant["sampler"],
      alpha: base.alpha ?? DEFAULT_TRAIN_OPTIONS.alpha,
    });
  }
  if (variants.length === 0) {
    for (const alpha of DEFAULT_ALPHAS) {
      variants.push({ name: `hybrid α=${alpha}`, sampler: "hybrid", alpha });
    }
  }
  const gpu = await Gpu.create();
  printAdapter(gpu);
  const stop = new GracefulStop(() => "finishing the current step, then a checkpoint");
  let r;
  try {
    r = await runSweep(gpu, {
      base: { ...base, eval: undefined, stopSignal: stop.signal },
      variants,
      evalDir,
      groupsFile: v.groups,
      limitQuestions: v["limit-questions"],
      seeds,
    });
  } finally {
    stop.dispose();
  }
  if (r.stopped) {
    console.log(
      `stopped in ${r.stopped.variant.name} after step ${r.stopped.step} (${stop.received}): ` +
        `checkpoint ${r.stopped.checkpoint}\ncontinue with: deno run -A cli.ts sweep ` +
        resumeArgs(args, base.out),
    );
    Deno.exit(stop.exitCode);
  }
  console.log(
    `\n${r.table}\n\nreport: ${r.reportPaths.join(", ")} (${join(base.out, "sweep.json")})`,
  );
}
