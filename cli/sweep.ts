/**
 * `sweep --model DIR --train DATA --eval DIR --out DIR [--alphas 0,0.25,0.5,0.75,1]
 * [--samplers xx,xy,hybrid,lang-sim] [--groups FILE.json] [train flags…]`: the same training
 * with several α (hybrid) or samplers, each evaluated, one comparison report.
 * @module
 */
import { join } from "node:path";
import { listFlag, parseFlags, required, UsageError } from "./flags.ts";
import { resumeArgs, TRAIN_FLAGS, trainOptionsFromFlags } from "./train.ts";
import { GracefulStop } from "./signals.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import { runSweep, type SweepVariant } from "../training/sweep.ts";

/** Runs the `sweep` command. */
export async function sweepCommand(args: string[]): Promise<void> {
  const f = parseFlags("sweep", args, {
    ...TRAIN_FLAGS,
    alphas: { type: "string" },
    samplers: { type: "string" },
    groups: { type: "string" },
    "limit-questions": { type: "string" },
    seeds: { type: "string" },
  });
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
    variants.push({ name: s, sampler: s as SweepVariant["sampler"], alpha: base.alpha ?? 0.5 });
  }
  if (variants.length === 0) {
    for (const alpha of [0, 0.25, 0.5, 0.75, 1]) {
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
      groupsFile: f.groups as string | undefined,
      limitQuestions: f["limit-questions"] ? Number(f["limit-questions"]) : undefined,
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
