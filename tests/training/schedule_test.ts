import { equal, ok, throws } from "node:assert/strict";
import { learningRate, type ScheduleOptions, warmupFromRatio } from "../../training/schedule.ts";

const close = (got: number, want: number, what: string) =>
  ok(Math.abs(got - want) <= 1e-15 + 1e-12 * Math.abs(want), `${what}: ${got} vs ${want}`);

/** transformers' lr_lambda for get_linear_schedule_with_warmup, evaluated at current_step. */
function hfLinear(current: number, warmup: number, total: number): number {
  if (current < warmup) return current / Math.max(1, warmup);
  return Math.max(0, (total - current) / Math.max(1, total - warmup));
}

Deno.test("the linear schedule matches Hugging Face with our step 1 as its current_step 0", () => {
  const opts: ScheduleOptions = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, schedule: "linear" };
  close(learningRate(1, opts), 0, "step 1");
  close(learningRate(2, opts), 1e-4, "step 2");
  close(learningRate(10, opts), 9e-4, "step 10");
  close(learningRate(11, opts), 1e-3, "step 11 (peak)");
  close(learningRate(12, opts), 1e-3 * 99 / 100, "step 12");
  close(learningRate(110, opts), 1e-5, "last step");
  close(learningRate(111, opts), 0, "past the end");
  close(learningRate(500, opts), 0, "far past the end");
  for (const [warmup, total] of [[0, 7], [3, 20], [5, 5], [1, 2]]) {
    for (let step = 1; step <= total + 2; step++) {
      const o = { lr: 3e-5, warmupSteps: warmup, totalSteps: total, schedule: "linear" as const };
      close(
        learningRate(step, o),
        3e-5 * hfLinear(step - 1, warmup, total),
        `${warmup}/${total} step ${step}`,
      );
    }
  }
  // Without warmup the first step already runs at the full rate.
  equal(learningRate(1, { lr: 2e-5, warmupSteps: 0, totalSteps: 100, schedule: "linear" }), 2e-5);
});

Deno.test("the constant schedule warms up then stays at lr", () => {
  const opts: ScheduleOptions = { lr: 1e-3, warmupSteps: 4, totalSteps: 0, schedule: "constant" };
  const got = [1, 2, 3, 4, 5, 6, 1000].map((s) => learningRate(s, opts));
  [0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3].forEach((w, i) => close(got[i], w, `step ${i}`));
  equal(learningRate(1, { ...opts, warmupSteps: 0 }), 1e-3);
});

Deno.test("bad schedule arguments throw naming the field", () => {
  const opts: ScheduleOptions = { lr: 1e-3, warmupSteps: 2, totalSteps: 10, schedule: "linear" };
  throws(() => learningRate(0, opts), /step must be an integer >= 1/);
  throws(() => learningRate(1.5, opts), /step must be/);
  throws(() => learningRate(1, { ...opts, lr: -1 }), /lr must be/);
  throws(() => learningRate(1, { ...opts, warmupSteps: -1 }), /warmupSteps must be/);
  throws(() => learningRate(1, { ...opts, totalSteps: 0 }), /totalSteps must be/);
  throws(
    () => learningRate(1, { ...opts, warmupSteps: 11 }),
    /warmupSteps \(11\) must be <= totalSteps \(10\)/,
  );
  throws(() => learningRate(1, { ...opts, schedule: "cosine" as "linear" }), /schedule must be/);
});

Deno.test("warmup steps from a ratio round up as transformers does", () => {
  equal(warmupFromRatio(0.1, 25), 3);
  equal(warmupFromRatio(0.1, 100), 10);
  equal(warmupFromRatio(0, 100), 0);
  throws(() => warmupFromRatio(1.5, 10), /ratio/);
});
