/**
 * `--max-memory SIZE`: refuse up front, before any GPU work, a job whose planned device memory
 * exceeds the budget, naming both numbers.
 * @module
 */
import { UsageError } from "./flags.ts";
import { loadConfig, maxSequenceLength, type XlmrConfig } from "../model/config.ts";
import { memoryPlan } from "../training/memory_plan.ts";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
};

/**
 * Parses `2GiB`, `512MiB`, `1.5G`, `3e9` into bytes.
 *
 * @example
 * ```ts
 * import { parseBytes } from "./memory_budget.ts";
 * console.log(parseBytes("2GiB")); // 2147483648
 * ```
 */
export function parseBytes(text: string, flag = "--max-memory"): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`${flag}: expected a size such as 2GiB or 512MiB, got "${text}"`);
  }
  return Math.floor(Number(m[1]) * unit);
}

/** Human-readable bytes. */
export function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** Planned device bytes of an inference job (weights + the largest batch's transient buffers). */
export function inferenceBytes(c: XlmrConfig, batchSize: number, maxLength: number): number {
  const plan = memoryPlan(c, { batchSize: 1, maxLength: 1 });
  const rows = batchSize * Math.min(maxLength, c.maxPositions);
  // Live at once inside a layer: input, q, k, v, context, sums and outputs ([rows, H]) and the
  // intermediate pre-/post-activation ([rows, I]).
  const transient = 4 * rows * (8 * c.hiddenSize + 2 * c.intermediateSize);
  return plan.parameters + transient;
}

/** ", with activation checkpointing and GradCache chunks of N" as it applies to a plan. */
function savers(o: { checkpointing: boolean; gradCacheChunk: number }): string {
  const parts = [
    ...(o.checkpointing ? ["activation checkpointing"] : []),
    ...(o.gradCacheChunk > 0 ? [`GradCache chunks of ${o.gradCacheChunk}`] : []),
  ];
  return parts.length ? `, with ${parts.join(" and ")}` : "";
}

/**
 * Throws a UsageError when the job would not fit `budget` bytes.
 *
 * @example
 * ```ts ignore
 * await checkMemoryBudget("train", "model-dir", { budget: 2 ** 30, batchSize: 100, maxLength: 128 });
 * ```
 */
export async function checkMemoryBudget(
  job: "train" | "embed" | "eval",
  modelDir: string,
  o: {
    budget: number;
    batchSize: number;
    maxLength: number;
    hardNegatives?: number;
    freezeEmbeddings?: boolean;
    /** Training only: plan for activation checkpointing. */
    checkpointing?: boolean;
    /** Training only: plan for GradCache chunks of this many sequences (0: off). */
    gradCacheChunk?: number;
    /** Training only: plan for mixed precision (`train --fp16`). */
    fp16?: boolean;
  },
): Promise<void> {
  const c = await loadConfig(modelDir);
  let need: number, what: string;
  if (job === "train") {
    const plan = memoryPlan(c, {
      batchSize: o.batchSize,
      maxLength: Math.min(o.maxLength, maxSequenceLength(c)),
      hardNegatives: o.hardNegatives ?? 0,
      freezeEmbeddings: o.freezeEmbeddings ?? false,
      checkpointing: o.checkpointing ?? false,
      gradCacheChunk: o.gradCacheChunk ?? 0,
      fp16: o.fp16 ?? false,
    });
    need = plan.total;
    what =
      `parameters ${formatBytes(plan.parameters)} + gradients ${
        formatBytes(plan.gradients)
      } + AdamW ${formatBytes(plan.adamState)} + ` +
      (plan.options.fp16 ? `f16 weights ${formatBytes(plan.halfWeights)} + ` : "") +
      `activations ${formatBytes(plan.activations)} + ` +
      `workspace ${formatBytes(plan.workspace)}${savers(plan.options)}` +
      (plan.options.fp16 ? ", in mixed precision" : "");
  } else {
    need = inferenceBytes(c, o.batchSize, o.maxLength);
    what = `weights and batch buffers for batch ${o.batchSize} × ${o.maxLength} tokens`;
  }
  if (need > o.budget) {
    throw new UsageError(
      `--max-memory ${formatBytes(o.budget)}: this ${job} job needs about ${formatBytes(need)} ` +
        `(${what}); lower --batch-size or --max-length, ` +
        (job === "train" ? "use --checkpointing or --grad-cache-chunk N, " : "") +
        "or raise the budget",
    );
  }
}
