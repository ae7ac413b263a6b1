/**
 * `demo [--quick] [--out DIR] [--seed N]`: the main job on an embedded default. See demo/run.ts.
 * @module
 */
import { defineFlags } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import { DEFAULT_DEMO_SEED, runDemo } from "../demo/run.ts";

/** The flags of `demo`. */
export const DEMO_FLAGS = defineFlags({
  command: "demo",
  summary: "train X-X, X-Y and hybrid on an embedded synthetic corpus and compare them",
  flags: {
    quick: { type: "boolean", description: "a smaller corpus and fewer steps (under a minute)" },
    out: {
      type: "string",
      arg: "DIR",
      defaultText: "out/demo (out/demo-quick with --quick)",
      description: "output folder (replaced)",
    },
    seed: {
      type: "integer",
      min: 0,
      default: DEFAULT_DEMO_SEED,
      description: "seed of the corpus, the initialisation and the training",
    },
  },
});

/** Runs the `demo` command. */
export async function demoCommand(args: string[]): Promise<void> {
  const f = DEMO_FLAGS.parse(args);
  const out = f.out ?? (f.quick ? "out/demo-quick" : "out/demo");
  const gpu = await Gpu.create();
  printAdapter(gpu);
  const r = await runDemo(gpu, {
    out,
    quick: f.quick,
    seed: f.seed,
  });
  console.log(`\n${r.table}\n`);
  console.log(
    "mAP: higher is better. Language bias: mean rank distance between a question's answers in " +
      "different languages in the pooled corpus (lower = less preference for one language).",
  );
  console.log(`report: ${r.reportPaths.join(", ")}`);
  console.log(`wall time ${r.seconds.toFixed(1)} s`);
}
