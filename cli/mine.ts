/**
 * `mine --model DIR|ORG/NAME --train DATA --out OUT.jsonl [--negatives N] [--range A:B] [--margin M]
 * [--relative-margin R] [--max-score S] [--langs-from same|passage|all] [--seed N] [--langs …]
 * [--pooling cls|mean] [--max-length N] [--batch-size N] [--tokenizer DIR]
 * [--query-prefix P] [--passage-prefix P] [--trace FILE.jsonl]` (prefixes default to the prompts
 * the model folder records, as in `eval`): hard-negative mining with the
 * engine's GPU retrieval (rules in `training/mine.ts`). `DATA` is training JSONL or a LAReQA folder;
 * the output is training JSONL with `"negatives": {"lang": [texts…]}`, written atomically.
 * @module
 */
import { choiceFlag, listFlag, numberFlag, parseFlags, required, UsageError } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { writeFileAtomic } from "../model/atomic_write.ts";
import { loadQaData } from "../training/data.ts";
import { mineHardNegatives } from "../training/mine.ts";
import { resolveModelDir } from "../model/hub.ts";
import { readRunPrompts } from "./provenance.ts";

/** `A:B` with 1 ≤ A ≤ B integers, or a usage error naming --range. */
export function parseRange(v: string | boolean | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = typeof v === "string" ? /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(v) : null;
  const a = m ? Number(m[1]) : NaN, b = m ? Number(m[2]) : NaN;
  if (!m || a < 1 || b < a || !Number.isSafeInteger(b)) {
    throw new UsageError(`--range: expected A:B with integers 1 ≤ A ≤ B (e.g. 2:100), got "${v}"`);
  }
  return [a, b];
}

/** Runs the `mine` command. */
export async function mineCommand(args: string[]): Promise<void> {
  const f = parseFlags("mine", args, {
    model: { type: "string" },
    train: { type: "string" },
    out: { type: "string" },
    tokenizer: { type: "string" },
    negatives: { type: "string" },
    range: { type: "string" },
    margin: { type: "string" },
    "relative-margin": { type: "string" },
    "max-score": { type: "string" },
    "langs-from": { type: "string" },
    seed: { type: "string" },
    langs: { type: "string" },
    pooling: { type: "string" },
    "max-length": { type: "string" },
    "batch-size": { type: "string" },
    "query-prefix": { type: "string" },
    "passage-prefix": { type: "string" },
    trace: { type: "string" },
  });
  const modelDir = required("mine", f, "model");
  const trainPath = required("mine", f, "train");
  const out = required("mine", f, "out");
  const opts = {
    negatives: numberFlag(f, "negatives", { integer: true, min: 1 }) ?? 5,
    range: parseRange(f.range),
    margin: numberFlag(f, "margin", { min: 0, max: 2 }),
    relativeMargin: numberFlag(f, "relative-margin", { min: 0, max: 1 }),
    maxScore: numberFlag(f, "max-score", { min: -1, max: 1 }),
    langsFrom: choiceFlag(f, "langs-from", ["same", "passage", "all"] as const) ?? "same",
    seed: numberFlag(f, "seed", { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 0,
    queryPrefix: undefined as string | undefined,
    passagePrefix: undefined as string | undefined,
    onProgress: (m: string) => console.error(m),
  };
  const pooling = choiceFlag(f, "pooling", ["cls", "mean", "pooler"] as const) ?? "cls";
  const maxLength = numberFlag(f, "max-length", { integer: true, min: 3 }) ?? 128;
  const batchSize = numberFlag(f, "batch-size", { integer: true, min: 1 }) ?? 64;
  const langs = listFlag(f, "langs");
  // Data first: a bad file fails before the GPU starts.
  const data = await loadQaData(trainPath, { langs });
  console.error(
    `mining ${data.items.length} items (${data.languages.join(",")}) from ${trainPath}: ` +
      `${opts.negatives} per language, ${
        opts.range ? `sampled from ranks ${opts.range.join("..")}` : "best-ranked"
      }, candidates from ${opts.langsFrom}, seed ${opts.seed}`,
  );
  // Hub ids as in eval; prompts: the flags, else what the model folder records (as eval does).
  const modelPath = await resolveModelDir(modelDir);
  const tokenizerDir = typeof f.tokenizer === "string"
    ? await resolveModelDir(f.tokenizer, { files: "tokenizer" })
    : undefined;
  const recorded = await readRunPrompts(modelPath);
  opts.queryPrefix = (f["query-prefix"] as string | undefined) ?? recorded.query ?? "";
  opts.passagePrefix = (f["passage-prefix"] as string | undefined) ?? recorded.passage ?? "";
  const gpu = await Gpu.create();
  const encoder = await Encoder.load(gpu, modelPath, tokenizerDir);
  try {
    const t0 = performance.now();
    let last = 0;
    const r = await mineHardNegatives(
      gpu,
      data,
      (items) =>
        encoder.embed(items, {
          pooling,
          maxLength,
          batchSize,
          onProgress: (done, total) => {
            const now = performance.now();
            if (now - last > 2000 || done === total) {
              last = now;
              console.error(`  embedded ${done}/${total}`);
            }
          },
        }),
      opts,
    );
    await writeFileAtomic(out, r.items.map((it) => JSON.stringify(it)).join("\n") + "\n");
    if (typeof f.trace === "string") {
      const lines = r.items.map((it, i) => JSON.stringify({ id: it.id, negatives: r.trace[i] }));
      await writeFileAtomic(f.trace, lines.join("\n") + "\n");
    }
    const s = r.stats;
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `mined ${s.negatives} negatives for ${s.keys} (item, language) keys of ${s.items} items ` +
        `in ${secs.toFixed(1)} s → ${out}\n` +
        `skipped: ${s.skippedSameId} with the item's own id (translations of the answer), ` +
        `${s.skippedSameText} with the text of one of its answers, ${s.skippedMaxScore} above ` +
        `--max-score, ${s.skippedMargin} within --margin, ${s.skippedRelativeMargin} within ` +
        `--relative-margin; ${s.short} keys got fewer than ${opts.negatives}`,
    );
  } finally {
    encoder.release();
  }
}
