/**
 * `plan` as a user runs it (subprocesses): the mixed-precision plan's acceptance check and the
 * f32 output pinned to its values from before `--fp16` existed; and the training memory budget
 * planned with fp16.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { formatPlan, type PlanReport, planReport } from "../../cli/plan.ts";
import { checkMemoryBudget } from "../../cli/memory_budget.ts";
import { UsageError } from "../../cli/flags.ts";
import { loadConfig } from "../../model/config.ts";
import { memoryPlan } from "../../training/memory_plan.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

async function plan(...args: string[]): Promise<PlanReport> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "plan", ...args, "--json"],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const SHAPE = ["--config", "base", "--batch-size", "100", "--max-length", "128"];

Deno.test("plan --fp16: every strategy's activations are at most 55% of the f32 plan's", async () => {
  const [f32, f16] = await Promise.all([plan(...SHAPE), plan(...SHAPE, "--fp16")]);
  equal(f32.fp16, false);
  equal(f16.fp16, true);
  deepEqual(f16.rows.map((r) => r.strategy), f32.rows.map((r) => r.strategy));
  equal(f16.rows.length, 4);
  const H = 768, I = 3072;
  f16.rows.forEach((row, i) => {
    const base = f32.rows[i];
    ok(
      row.activations <= 0.55 * base.activations,
      `${row.strategy}: ${row.activations} > 55% of ${base.activations}`,
    );
    // The f16 copies of the twelve layers' six linear weights, alive in every strategy.
    equal(row.half_weights, 2 * 12 * (4 * H * H + 2 * H * I), row.strategy);
    equal(base.half_weights, 0, row.strategy);
    equal(
      row.total,
      row.parameters + row.gradients + row.adam_state + row.half_weights + row.activations +
        row.workspace,
      row.strategy,
    );
  });
});

Deno.test("plan without --fp16 prints the values it printed before --fp16 existed", async () => {
  const r = await plan(...SHAPE);
  const common = { parameters: 1112174592, gradients: 1112174592, adam_state: 2224349184 };
  const before = {
    config: "base",
    parameter_count: 278043648,
    batch_size: 100,
    max_length: 128,
    passage_length: 128,
    hard_negatives: 0,
    grad_cache_chunk: 16,
    budget_bytes: 17179869184,
    rows: [
      ["plain", 15276953600, 238427200, 19964079168, false, 82],
      ["checkpointing", 1731481600, 238427200, 6418607168, true, 646],
      ["gradcache(16)", 1222156288, 40246336, 5711100992, true, 50568],
      ["checkpointing+gradcache(16)", 188915712, 40246336, 4677860416, true, 52924],
    ].map(([strategy, activations, workspace, total, fits, largest_batch]) => ({
      strategy,
      ...common,
      activations,
      workspace,
      total,
      fits,
      largest_batch,
    })),
  };
  // The only additions are the fp16 switch and each row's (zero) f16 weight bytes.
  const { fp16, rows, ...rest } = r;
  equal(fp16, false);
  const { rows: beforeRows, ...beforeRest } = before;
  deepEqual(rest, beforeRest);
  deepEqual(rows.map(({ half_weights: _h, ...row }) => row), beforeRows);
  ok(rows.every((row) => row.half_weights === 0));
  // The table too: no f16 column without --fp16.
  const table = formatPlan(
    planReport("base", { batchSize: 100, maxLength: 128 }, 16 * 2 ** 30, 16),
  );
  equal(
    table.split("\n").slice(2, 7).join("\n"),
    [
      "| strategy | params | grads | adam m+v | activations | workspace | total GiB | fits | max batch |",
      "| --- | --: | --: | --: | --: | --: | --: | --- | --: |",
      "| plain | 1.04 | 1.04 | 2.07 | 14.23 | 0.22 | 18.59 | no | 82 |",
      "| checkpointing | 1.04 | 1.04 | 2.07 | 1.61 | 0.22 | 5.98 | yes | 646 |",
      "| gradcache(16) | 1.04 | 1.04 | 2.07 | 1.14 | 0.04 | 5.32 | yes | 50568 |",
    ].join("\n"),
  );
});

Deno.test("train --max-memory plans with fp16 when asked", async () => {
  const dir = fileURLToPath(new URL("../fixtures/xlmr-tiny/model", import.meta.url));
  const c = await loadConfig(dir);
  const o = { batchSize: 64, maxLength: 128 };
  const f32 = memoryPlan(c, o).total, f16 = memoryPlan(c, { ...o, fp16: true }).total;
  // Two layers: in the plan, the pooled f32 forward values of one layer outweigh the f16 savings.
  ok(f16 > f32, `${f16} vs ${f32}`);
  const budget = Math.floor((f16 + f32) / 2);
  await checkMemoryBudget("train", dir, { ...o, budget });
  await rejects(() => checkMemoryBudget("train", dir, { ...o, budget, fp16: true }), UsageError);
  await rejects(
    () => checkMemoryBudget("train", dir, { ...o, budget: f16 - 1, fp16: true }),
    (e: Error) => e instanceof UsageError && /f16 weights .* mixed precision/.test(e.message),
  );
});
