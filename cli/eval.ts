/**
 * `eval --model DIR --dataset DIR --out FILE.json [--langs ar,de,…] [--pooling cls|mean]
 * [--max-length N] [--candidate sentence|sentence+context] [--batch-size N]
 * [--limit-questions N] [--report DIR] [--format lareqa|beir]`.
 * @module
 */
import { join } from "node:path";
import { choiceFlag, listFlag, numberFlag, parseFlags, required } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { Encoder } from "../model/encoder.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { evaluateBeir, evaluateLareqa } from "../eval/retrieval.ts";
import { loadLareqa } from "../eval/lareqa.ts";
import { loadBeir } from "../eval/beir.ts";
import { writeReportDir } from "../eval/report.ts";

async function isBeir(dir: string): Promise<boolean> {
  try {
    await Deno.stat(join(dir, "corpus.jsonl"));
    return true;
  } catch {
    return false;
  }
}

/** Runs the `eval` command. */
export async function evalCommand(args: string[]): Promise<void> {
  const f = parseFlags("eval", args, {
    model: { type: "string" },
    dataset: { type: "string" },
    out: { type: "string" },
    langs: { type: "string" },
    pooling: { type: "string" },
    "max-length": { type: "string" },
    candidate: { type: "string" },
    "batch-size": { type: "string" },
    "limit-questions": { type: "string" },
    "block-size": { type: "string" },
    report: { type: "string" },
    tokenizer: { type: "string" },
    "max-memory": { type: "string" },
    dtype: { type: "string" },
  });
  const modelDir = required("eval", f, "model");
  const dataset = required("eval", f, "dataset");
  const out = required("eval", f, "out");
  const pooling = choiceFlag(f, "pooling", ["cls", "mean", "pooler"] as const) ?? "cls";
  const maxLength = numberFlag(f, "max-length", { integer: true, min: 3 }) ?? 512;
  const batchSize = numberFlag(f, "batch-size", { integer: true, min: 1 }) ?? 64;
  const candidate = choiceFlag(f, "candidate", ["sentence", "sentence+context"] as const) ??
    "sentence";
  const opts = {
    langs: listFlag(f, "langs"),
    limitQuestions: numberFlag(f, "limit-questions", { integer: true, min: 1 }),
    candidate,
    blockSize: numberFlag(f, "block-size", { integer: true, min: 1 }),
    onProgress: (m: string) => console.error(m),
  };
  // Load and validate the data before touching the GPU.
  const beir = await isBeir(dataset);
  const set = beir ? await loadBeir(dataset) : await loadLareqa(dataset, opts);
  if (typeof f["max-memory"] === "string") {
    await checkMemoryBudget("eval", modelDir, {
      budget: parseBytes(f["max-memory"]),
      batchSize,
      maxLength,
    });
  }
  const gpu = await Gpu.create();
  const encoder = await Encoder.load(gpu, modelDir, f.tokenizer as string | undefined, {
    dtype: choiceFlag(f, "dtype", ["f32", "f16"] as const),
  });
  const embed = (items: { text: string; pair?: string }[]) =>
    encoder.embed(items.map((x) => ({ text: x.text, pair: x.pair })), {
      pooling,
      maxLength,
      batchSize,
    });
  const t0 = performance.now();
  const report = beir
    ? await evaluateBeir(gpu, set as Awaited<ReturnType<typeof loadBeir>>, embed, opts)
    : await evaluateLareqa(gpu, set as Awaited<ReturnType<typeof loadLareqa>>, embed, opts);
  const secs = (performance.now() - t0) / 1000;
  await writeJsonAtomic(out, report);
  if (!beir) {
    const m = (report as { map: Record<string, number> }).map;
    console.log(
      `mAP mono ${m.monolingual.toFixed(4)} cross ${m.crosslingual.toFixed(4)} ` +
        `multi ${m.multilingual.toFixed(4)} (${secs.toFixed(1)} s) → ${out}`,
    );
    if (typeof f.report === "string") {
      const paths = await writeReportDir(f.report, [{
        name: modelDir,
        report: report as Awaited<ReturnType<typeof evaluateLareqa>>,
      }]);
      console.log(`report: ${paths.join(", ")}`);
    }
  } else {
    console.log(`${JSON.stringify(report)}\n→ ${out}`);
  }
  encoder.release();
}
