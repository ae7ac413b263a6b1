/**
 * `plan` command: the device-memory plan of one training step (training/memory_plan.ts) for a
 * configuration and batch shape, plain and with activation checkpointing and GradCache chunking,
 * against a memory budget (16 GiB by default), with the largest batch that fits each strategy.
 * With `--fp16` every strategy is planned for mixed-precision training (f16 saved activations and
 * f16 copies of the encoder's linear-layer weights, `half_weights`).
 *
 * `deno run -A cli.ts plan --config base --batch-size 100 --max-length 128 [--fp16] [--json]`
 * @module
 */
import { defineFlags } from "./flags.ts";
import {
  largestBatch,
  type MemoryPlan,
  memoryPlan,
  type MemoryPlanOptions,
  planConfig,
  type PlanConfigName,
} from "../training/memory_plan.ts";

const GIB = 2 ** 30;

/** One strategy's row of the `plan --json` output (bytes). */
export interface PlanRow {
  strategy: string;
  parameters: number;
  gradients: number;
  adam_state: number;
  /** The f16 weight copies of mixed precision (0 without `--fp16`). */
  half_weights: number;
  activations: number;
  workspace: number;
  total: number;
  fits: boolean;
  largest_batch: number;
}

/** What `plan --json` prints. */
export interface PlanReport {
  config: PlanConfigName;
  parameter_count: number;
  batch_size: number;
  max_length: number;
  passage_length: number;
  hard_negatives: number;
  grad_cache_chunk: number;
  /** Mixed precision (`--fp16`): every row is the fp16 plan. */
  fp16: boolean;
  budget_bytes: number;
  rows: PlanRow[];
}

/**
 * Builds the plan report (all four strategies) without printing it.
 *
 * @example
 * ```ts
 * import { planReport } from "./plan.ts";
 * const r = planReport("base", { batchSize: 100, maxLength: 128 }, 16 * 2 ** 30, 16);
 * console.log(r.rows.map((row) => `${row.strategy}: ${row.fits}`));
 * ```
 */
export function planReport(
  name: PlanConfigName,
  opts: MemoryPlanOptions,
  budgetBytes: number,
  chunk: number,
): PlanReport {
  const config = planConfig(name);
  const strategies: [string, Partial<MemoryPlanOptions>][] = [
    ["plain", { checkpointing: false, gradCacheChunk: 0 }],
    ["checkpointing", { checkpointing: true, gradCacheChunk: 0 }],
    [`gradcache(${chunk})`, { checkpointing: false, gradCacheChunk: chunk }],
    [`checkpointing+gradcache(${chunk})`, { checkpointing: true, gradCacheChunk: chunk }],
  ];
  let first: MemoryPlan | null = null;
  const rows = strategies.map(([strategy, s]) => {
    const p = memoryPlan(config, { ...opts, ...s });
    first ??= p;
    const { batchSize: _b, ...rest } = { ...opts, ...s };
    return {
      strategy,
      parameters: p.parameters,
      gradients: p.gradients,
      adam_state: p.adamState,
      half_weights: p.halfWeights,
      activations: p.activations,
      workspace: p.workspace,
      total: p.total,
      fits: p.total <= budgetBytes,
      largest_batch: largestBatch(config, rest, budgetBytes),
    };
  });
  const p = first!;
  return {
    config: name,
    parameter_count: p.parameterCount,
    batch_size: p.options.batchSize,
    max_length: p.options.maxLength,
    passage_length: p.options.passageLength,
    hard_negatives: p.options.hardNegatives,
    grad_cache_chunk: chunk,
    fp16: p.options.fp16,
    budget_bytes: budgetBytes,
    rows,
  };
}

/** The report as a markdown table with a one-line verdict. */
export function formatPlan(r: PlanReport): string {
  const gib = (b: number) => (b / GIB).toFixed(2);
  const head = `memory plan: ${r.config} (${r.parameter_count.toLocaleString("en-US")} params), ` +
    `batch ${r.batch_size} × ${r.max_length} tokens (passages ${r.passage_length}, ` +
    `${r.hard_negatives} hard negatives), budget ${gib(r.budget_bytes)} GiB` +
    (r.fp16 ? ", mixed precision (fp16)" : "");
  // The f16 weight copies get their own column under --fp16; the f32 table stays as it was.
  const half = (x: string) => r.fp16 ? ` ${x} |` : "";
  const lines = [
    head,
    "",
    `| strategy | params |${half("f16 weights")} grads | adam m+v | activations | workspace | ` +
    "total GiB | fits | max batch |",
    `| --- | --: |${half("--:")} --: | --: | --: | --: | --: | --- | --: |`,
    ...r.rows.map((row) =>
      `| ${row.strategy} | ${gib(row.parameters)} |${half(gib(row.half_weights))} ` +
      `${gib(row.gradients)} | ${gib(row.adam_state)} | ${gib(row.activations)} | ` +
      `${gib(row.workspace)} | ${gib(row.total)} | ${row.fits ? "yes" : "no"} | ` +
      `${row.largest_batch} |`
    ),
  ];
  const plain = r.rows[0];
  const fitting = r.rows.filter((x) => x.fits).map((x) => x.strategy);
  lines.push(
    "",
    `batch ${r.batch_size} ${plain.fits ? "fits" : "does not fit"} in ${gib(r.budget_bytes)} GiB ` +
      `as is; ${fitting.length ? `fits with: ${fitting.join(", ")}` : "no strategy makes it fit"}.`,
  );
  return lines.join("\n");
}

/** The flags of `plan`. */
export const PLAN_FLAGS = defineFlags({
  command: "plan",
  summary: "device-memory plan of one training step, plain, with checkpointing and GradCache, " +
    "against a budget",
  flags: {
    config: {
      type: "choice",
      choices: ["tiny", "small", "base", "large"],
      default: "base",
      description: "model size",
    },
    "batch-size": { type: "integer", min: 1, default: 100, description: "queries per batch" },
    "max-length": { type: "integer", min: 1, default: 128, description: "tokens per query" },
    "passage-length": {
      type: "integer",
      min: 1,
      defaultText: "--max-length",
      description: "tokens per passage",
    },
    "hard-negatives": {
      type: "integer",
      min: 0,
      default: 0,
      description: "hard-negative passages per query",
    },
    "grad-cache-chunk": {
      type: "integer",
      min: 1,
      default: 16,
      description: "sequences per GradCache chunk in the gradcache rows",
    },
    "freeze-embeddings": { type: "boolean", description: "plan without embedding gradients" },
    "budget-gib": { type: "number", min: 0, default: 16, description: "memory budget in GiB" },
    fp16: {
      type: "boolean",
      description:
        "plan mixed-precision training (train --fp16): f16 activations and weight copies",
    },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
  },
});

/**
 * Runs `plan ...flags` (`args` are the words after `plan`).
 *
 * @example
 * ```ts
 * import { planCommand } from "./plan.ts";
 * await planCommand(["--config", "tiny", "--batch-size", "8", "--max-length", "32", "--json"]);
 * ```
 */
export function planCommand(args: string[]): Promise<void> {
  const f = PLAN_FLAGS.parse(args);
  const name = f.config;
  const batchSize = f["batch-size"];
  const maxLength = f["max-length"];
  const passageLength = f["passage-length"] ?? maxLength;
  const hardNegatives = f["hard-negatives"];
  const chunk = f["grad-cache-chunk"];
  const budget = f["budget-gib"] * GIB;
  const report = planReport(
    name,
    {
      batchSize,
      maxLength,
      passageLength,
      hardNegatives,
      freezeEmbeddings: f["freeze-embeddings"],
      fp16: f.fp16,
    },
    budget,
    chunk,
  );
  console.log(f.json ? JSON.stringify(report) : formatPlan(report));
  return Promise.resolve();
}
