/**
 * `eval --dataset DIR` when DIR holds Tatoeba files (`tatoeba.xxx-eng.{xxx,eng}`): accuracy@1
 * per language and direction (`eval/tatoeba.ts`), written as
 * `{"dataset": "tatoeba", "accuracy": {"deu": {"to_eng", "from_eng", "mean"}, …}, "average", …}`
 * with provenance, and with `--report DIR` as `report.md`/`report.html`. `--langs` picks
 * languages, `--limit-questions N` the first N pairs of each. `cli/eval.ts` hands over here.
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { Gpu } from "../kernels/runtime.ts";
import { checkMemoryBudget, parseBytes } from "./memory_budget.ts";
import { Encoder } from "../model/encoder.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { resolveModel } from "../model/hub.ts";
import { folderMaxSeqLength } from "../model/sentence_transformers.ts";
import type { DatasetSource } from "../eval/named_datasets.ts";
import { evaluateTatoeba, loadTatoeba, renderTatoebaReport } from "../eval/tatoeba.ts";
import { addProvenanceToReports, engineInfo, modelProvenance, printAdapter } from "./provenance.ts";

/** The settings `cli/eval.ts` has already parsed and checked. */
export interface TatoebaEvalSettings {
  modelSpec: string;
  dataset: string;
  out: string;
  /** Unset: the model's own (a sentence-transformers folder's pipeline), else cls. */
  pooling?: "cls" | "mean" | "pooler";
  /** Unset: a sentence-transformers folder's max_seq_length, else 512. */
  maxLength?: number;
  batchSize: number;
  dtype?: "f32" | "f16";
  /** Languages to evaluate (default: all). */
  langs?: string[];
  /** The first N pairs of each language. */
  limitQuestions?: number;
  /** Candidates scored per GPU block. */
  blockSize?: number;
  /** Where the folder came from (`--dataset tatoeba`: the pinned download). */
  source?: DatasetSource;
}

/** Runs `eval` on a Tatoeba folder. */
export async function evalTatoeba(
  s: TatoebaEvalSettings,
  f: Record<string, string | boolean | undefined>,
  args: string[],
): Promise<void> {
  const { langs, limitQuestions: limit, blockSize } = s;
  const progress = (m: string) => console.error(m);
  const set = await loadTatoeba(s.dataset, { langs, limit, onProgress: progress });
  const modelSrc = await resolveModel(s.modelSpec);
  const maxLength = s.maxLength ?? await folderMaxSeqLength(modelSrc.dir) ?? 512;
  const tokenizerDir = typeof f.tokenizer === "string"
    ? (await resolveModel(f.tokenizer, { files: "tokenizer" })).dir
    : undefined;
  if (typeof f["max-memory"] === "string") {
    await checkMemoryBudget("eval", modelSrc.dir, {
      budget: parseBytes(f["max-memory"]),
      batchSize: s.batchSize,
      maxLength,
    });
  }
  const gpu = await Gpu.create();
  const adapter = printAdapter(gpu, (m) => console.error(m));
  const encoder = await Encoder.load(gpu, modelSrc.dir, tokenizerDir, { dtype: s.dtype });
  try {
    const t0 = performance.now();
    const report = await evaluateTatoeba(
      gpu,
      set,
      (items) =>
        encoder.embed(items, {
          pooling: s.pooling,
          maxLength,
          batchSize: s.batchSize,
        }),
      { blockSize, onProgress: progress },
    );
    const secs = (performance.now() - t0) / 1000;
    const sha256: Record<string, string> = {};
    for (const l of set.languages) {
      for (const file of set.byLanguage[l].files) {
        sha256[basename(file)] = createHash("sha256").update(await Deno.readFile(file)).digest(
          "hex",
        );
      }
    }
    const provenance = {
      model: { spec: s.modelSpec, ...(await modelProvenance(modelSrc)) },
      dataset: {
        name: "tatoeba",
        dir: s.dataset,
        sha256,
        ...(s.source?.kind === "named"
          ? { spec: s.source.spec, url: s.source.url, commit: s.source.commit }
          : {}),
      },
      engine: await engineInfo(),
      adapter,
      options: {
        pooling: s.pooling ?? (encoder.st ? "sentence-transformers" : "cls"),
        max_length: maxLength,
        batch_size: s.batchSize,
        langs: langs ?? null,
        limit_questions: limit ?? null,
        dtype: s.dtype ?? "f32",
        tokenizer: f.tokenizer ?? null,
      },
      argv: ["eval", ...args],
    };
    await writeJsonAtomic(s.out, { ...report, provenance });
    console.log(
      `Tatoeba accuracy@1 average ${(100 * report.average).toFixed(2)}% over ` +
        `${report.languages.length} languages (xxx→eng ` +
        `${(100 * report.average_by_direction.to_eng).toFixed(2)}%, eng→xxx ` +
        `${(100 * report.average_by_direction.from_eng).toFixed(2)}%) (${secs.toFixed(1)} s) → ` +
        s.out,
    );
    if (typeof f.report === "string") {
      await Deno.mkdir(f.report, { recursive: true });
      const dir = f.report.replace(/[\\/]+$/, "");
      const paths: string[] = [];
      for (const format of ["md", "html"] as const) {
        const p = `${dir}/report.${format}`;
        await writeFileAtomic(p, renderTatoebaReport(report, format, s.modelSpec));
        paths.push(p);
      }
      console.log(`report: ${(await addProvenanceToReports(paths, provenance)).join(", ")}`);
    }
  } finally {
    encoder.release();
  }
}
