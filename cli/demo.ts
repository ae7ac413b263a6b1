/**
 * `demo [--quick] [--out DIR] [--seed N]`: the main job on an embedded default. See demo/run.ts.
 * @module
 */
import { numberFlag, parseFlags } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import { runDemo } from "../demo/run.ts";

/** Runs the `demo` command. */
export async function demoCommand(args: string[]): Promise<void> {
  const f = parseFlags("demo", args, {
    quick: { type: "boolean" },
    out: { type: "string" },
    seed: { type: "string" },
  });
  const out = (f.out as string | undefined) ?? (f.quick ? "out/demo-quick" : "out/demo");
  const gpu = await Gpu.create();
  printAdapter(gpu);
  const r = await runDemo(gpu, {
    out,
    quick: f.quick === true,
    seed: numberFlag(f, "seed", { integer: true, min: 0 }),
  });
  console.log(`\n${r.table}\n`);
  console.log(
    "mAP: higher is better. Language bias: mean rank distance between a question's answers in " +
      "different languages in the pooled corpus (lower = less preference for one language).",
  );
  console.log(`report: ${r.reportPaths.join(", ")}`);
  console.log(`wall time ${r.seconds.toFixed(1)} s`);
}
