/**
 * `compare RUN_A RUN_B [--resamples N] [--seed N] [--out FILE.json] [--report DIR]`: the paired
 * difference B − A of every metric of two evaluations of the same queries, with a 95% confidence
 * interval and a p-value from a paired bootstrap over queries (`eval/compare.ts` states the
 * method). RUN_A and RUN_B are eval JSONs, or folders holding exactly one eval JSON with
 * per-query results; several runs of one side (seeds) are given separated by commas
 * (`a1,a2,a3 b1,b2,b3`) and are resampled too.
 * @module
 */
import { basename, join } from "node:path";
import { defineFlags, UsageError } from "./flags.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { compareRuns, renderComparisonReport } from "../eval/compare.ts";
import { readTextStrict } from "../util/text_file.ts";

/** Reads an eval JSON, or the one eval JSON with per-query results inside a run folder. */
export async function readEvalJson(path: string): Promise<{ file: string; json: unknown }> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new Error(`compare: cannot read ${path}: ${(e as Error).message}`);
  }
  let file = path;
  if (info.isDirectory) {
    const found: string[] = [];
    for await (const e of Deno.readDir(path)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      try {
        const j = JSON.parse(await Deno.readTextFile(join(path, e.name)));
        if (j && typeof j === "object" && "dataset" in j && "per_query" in j) found.push(e.name);
      } catch {
        // not JSON: not an eval result
      }
    }
    found.sort();
    if (found.length === 0) {
      throw new Error(`compare: ${path} holds no eval JSON with per-query results (run eval)`);
    }
    if (found.length > 1) {
      throw new UsageError(
        `compare: ${path} holds several eval JSONs (${found.join(", ")}); name one`,
      );
    }
    file = join(path, found[0]);
  }
  const text = await readTextStrict(file);
  try {
    return { file, json: JSON.parse(text) };
  } catch (e) {
    throw new SyntaxError(`${file}: not JSON (${(e as Error).message})`);
  }
}

/** The flags of `compare`. */
export const COMPARE_FLAGS = defineFlags({
  command: "compare",
  summary: "RUN_B − RUN_A per metric with 95% paired-bootstrap intervals and p-values",
  positionals: "RUN_A RUN_B",
  flags: {
    resamples: {
      type: "integer",
      min: 100,
      max: 1e7,
      default: 10000,
      description: "bootstrap resamples",
    },
    seed: {
      type: "integer",
      min: 0,
      max: 2 ** 32 - 1,
      default: 0,
      description: "seed of the resampling",
    },
    out: { type: "string", arg: "FILE.json", description: "write the comparison as JSON" },
    report: { type: "string", arg: "DIR", description: "write report.md and report.html" },
  },
});

/** Runs the `compare` command. */
export async function compareCommand(args: string[]): Promise<void> {
  const parsed = COMPARE_FLAGS.parsePositionals(args);
  const f = parsed.values;
  if (parsed.positionals.length !== 2) {
    throw new UsageError(
      `compare: expected two runs (RUN_A RUN_B: eval JSONs or run folders), got ` +
        `${parsed.positionals.length}`,
    );
  }
  const resamples = f.resamples;
  const seed = f.seed;
  // A side may list several runs (seeds) separated by commas.
  const [pa, pb] = parsed.positionals.map((p) => p.split(",").filter((x) => x !== ""));
  if (pa.length === 0 || pb.length === 0) throw new UsageError("compare: a run is empty");
  const a = await Promise.all(pa.map(readEvalJson)), b = await Promise.all(pb.map(readEvalJson));
  const name = (p: string, file: string) => {
    const n = basename(p.replace(/[\\/]+$/, ""));
    return n === basename(file) ? n.replace(/\.json$/, "") : n;
  };
  const runNames = {
    a: pa.map((p, i) => name(p, a[i].file)),
    b: pb.map((p, i) => name(p, b[i].file)),
  };
  const sideName = (ns: string[]) => (ns.length === 1 ? ns[0] : `${ns[0]} +${ns.length - 1}`);
  let names = { a: sideName(runNames.a), b: sideName(runNames.b) };
  if (names.a === names.b) names = { a: `A (${names.a})`, b: `B (${names.b})` };
  if (pa.length === 1 && pb.length === 1) {
    runNames.a = [names.a];
    runNames.b = [names.b];
  }
  const t0 = performance.now();
  const c = compareRuns(
    a.length === 1 ? a[0].json : a.map((x) => x.json),
    b.length === 1 ? b[0].json : b.map((x) => x.json),
    { resamples, seed, names, runNames, onProgress: (m) => console.error(m) },
  );
  const secs = (performance.now() - t0) / 1000;
  const result = { ...c, files: { a: a.map((x) => x.file), b: b.map((x) => x.file) } };
  console.log(renderComparisonReport(c, "md"));
  console.error(`${c.resamples} resamples in ${secs.toFixed(1)} s`);
  if (f.out) {
    await writeJsonAtomic(f.out, result);
    console.error(`→ ${f.out}`);
  }
  if (f.report) {
    await Deno.mkdir(f.report, { recursive: true });
    const dir = f.report.replace(/[\\/]+$/, "");
    for (const format of ["md", "html"] as const) {
      await writeFileAtomic(`${dir}/report.${format}`, renderComparisonReport(c, format));
    }
    console.error(`report: ${dir}/report.md, ${dir}/report.html`);
  }
}
