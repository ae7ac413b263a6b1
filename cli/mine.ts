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
import { defineFlags, UsageError } from "./flags.ts";
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

/** The flags of `mine`. */
export const MINE_FLAGS = defineFlags({
  command: "mine",
  summary: "hard negatives: other items' answers the model ranks high, as training JSONL",
  flags: {
    model: {
      type: "string",
      required: true,
      arg: "DIR|ORG/NAME[@REV]",
      description: "the model that ranks (a folder or a Hub id)",
    },
    train: {
      type: "string",
      required: true,
      arg: "DATA",
      description: "training JSONL or a LAReQA folder",
    },
    out: {
      type: "string",
      required: true,
      arg: "OUT.jsonl",
      description: 'training JSONL with "negatives", written atomically',
    },
    tokenizer: {
      type: "string",
      arg: "DIR|ORG/NAME",
      defaultText: "the model's",
      description: "tokenizer files",
    },
    negatives: { type: "integer", min: 1, default: 5, description: "per item and language" },
    range: {
      type: "string",
      arg: "A:B",
      defaultText: "the best-ranked",
      description: "a seeded draw from the eligible candidates ranked A..B (1-based)",
    },
    margin: {
      type: "number",
      min: 0,
      max: 2,
      description: "skip candidates scoring above the positive's score − M",
    },
    "relative-margin": {
      type: "number",
      min: 0,
      max: 1,
      description: "skip candidates scoring above (1 − R) × the positive's score",
    },
    "max-score": {
      type: "number",
      min: -1,
      max: 1,
      description: "skip candidates scoring above S (cosine)",
    },
    "langs-from": {
      type: "choice",
      choices: ["same", "passage", "all"],
      default: "same",
      description: "which languages the candidates come from",
    },
    seed: {
      type: "integer",
      min: 0,
      max: 2 ** 32 - 1,
      default: 0,
      description: "seed of the draw",
    },
    langs: { type: "list", defaultText: "all", description: "languages to mine" },
    pooling: {
      type: "choice",
      choices: ["cls", "mean", "pooler"],
      default: "cls",
      description: "pooling of the embeddings",
    },
    "max-length": { type: "integer", min: 3, default: 128, description: "tokens per text" },
    "batch-size": { type: "integer", min: 1, default: 64, description: "texts per GPU batch" },
    "query-prefix": {
      type: "string",
      arg: "P",
      defaultText: "the model folder's query prompt, else none",
      description: "prepended to questions",
    },
    "passage-prefix": {
      type: "string",
      arg: "P",
      defaultText: "the model folder's passage prompt, else none",
      description: "prepended to candidates",
    },
    trace: { type: "string", arg: "FILE.jsonl", description: "write each negative's rank" },
  },
});

/** Runs the `mine` command. */
export async function mineCommand(args: string[]): Promise<void> {
  const f = MINE_FLAGS.parse(args);
  const modelDir = f.model;
  const trainPath = f.train;
  const out = f.out;
  const opts = {
    negatives: f.negatives,
    range: parseRange(f.range),
    margin: f.margin,
    relativeMargin: f["relative-margin"],
    maxScore: f["max-score"],
    langsFrom: f["langs-from"],
    seed: f.seed,
    queryPrefix: undefined as string | undefined,
    passagePrefix: undefined as string | undefined,
    onProgress: (m: string) => console.error(m),
  };
  const pooling = f.pooling;
  const maxLength = f["max-length"];
  const batchSize = f["batch-size"];
  const langs = f.langs;
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
  opts.queryPrefix = f["query-prefix"] ?? recorded.query ?? "";
  opts.passagePrefix = f["passage-prefix"] ?? recorded.passage ?? "";
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
