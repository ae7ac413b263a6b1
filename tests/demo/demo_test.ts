import { ok } from "node:assert/strict";
import { join } from "node:path";
import { runDemo } from "../../demo/run.ts";
import { gpuTest } from "../_helpers.ts";

gpuTest("the quick demo trains three runs, evaluates them and writes the report", async (gpu) => {
  const out = await Deno.makeTempDir();
  const lines: string[] = [];
  const r = await runDemo(gpu, { out, quick: true, log: (l) => lines.push(l) });
  ok(r.runs.map((x) => x.sampler).join() === "xx,xy,hybrid", "three runs in order");
  for (const run of r.runs) {
    ok(run.lastLoss < run.firstLoss, `${run.name}: loss ${run.firstLoss} → ${run.lastLoss}`);
    for (const [k, v] of Object.entries(run.report.map)) {
      ok(typeof v === "number" && v > 0 && v <= 1, `${run.name}: map.${k} = ${v}`);
    }
    const bias = run.report.language_bias.mean;
    ok(typeof bias === "number" && bias >= 0, `${run.name}: bias ${bias}`);
    const metrics = await Deno.readTextFile(join(out, "runs", run.sampler, "metrics.jsonl"));
    ok(metrics.trim().split("\n").length === 30, `${run.name}: one metrics line per step`);
    const kinds = new Set(
      metrics.trim().split("\n").map((l) => JSON.parse(l).kind as string),
    );
    const expected = run.sampler === "xx" ? ["xx"] : run.sampler === "xy" ? ["xy"] : ["xx", "xy"];
    ok([...kinds].sort().join() === expected.join(), `${run.name}: batch kinds ${[...kinds]}`);
  }
  for (
    const f of ["report/report.md", "report/report.html", "demo_summary.json", "data/train.jsonl"]
  ) {
    ok((await Deno.stat(join(out, f))).size > 0, `${f} written`);
  }
  ok(r.table.includes("hybrid"), "comparison table names the hybrid run");
  // Each trained run's curves are in the comparison report (and in its own folder).
  const md = await Deno.readTextFile(join(out, "report/report.md"));
  for (const run of r.runs) ok(md.includes(`### ${run.name}: training curves`), run.name);
  await Deno.remove(out, { recursive: true });
});
