/**
 * Learning-rate schedules, matching Hugging Face `transformers` step for step.
 *
 * Off-by-one convention: HF's `get_linear_schedule_with_warmup` is a `LambdaLR` evaluated at the
 * number of steps already completed, so the first optimiser step runs with `lr_lambda(0)` (which is
 * 0 when there is warmup). Our steps are 1-based: our step `s` uses HF's `current_step = s − 1`.
 * With warmup 0 the first step therefore runs at the full `lr`, and the last step (`totalSteps`) at
 * `lr / (totalSteps − warmupSteps)`, never 0.
 * @module
 */

/** Options of {@linkcode learningRate}. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup length in steps (0: none). */
  warmupSteps: number;
  /** Training length in steps (the linear schedule reaches 0 after it). */
  totalSteps: number;
  /** `linear`: warmup then linear decay to 0; `constant`: warmup then `lr`. */
  schedule: "linear" | "constant";
}

/**
 * The learning rate of 1-based optimiser step `step`; with `c = step − 1` (HF's current_step):
 * - warmup (`c < warmupSteps`): `lr · c / warmupSteps`;
 * - linear: `lr · max(0, (totalSteps − c) / (totalSteps − warmupSteps))`;
 * - constant: `lr`.
 *
 * @example
 * ```ts
 * import { learningRate } from "./schedule.ts";
 * const opts = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, schedule: "linear" as const };
 * learningRate(1, opts); // 0 (HF current_step 0)
 * learningRate(6, opts); // 5e-4
 * learningRate(11, opts); // 1e-3 (peak)
 * learningRate(110, opts); // 1e-5 (= lr / 100)
 * ```
 */
export function learningRate(step: number, opts: ScheduleOptions): number {
  const { lr, warmupSteps, totalSteps, schedule } = opts;
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(`learningRate: step must be an integer >= 1 (1-based), got ${step}`);
  }
  if (!(lr >= 0) || !Number.isFinite(lr)) {
    throw new RangeError(`learningRate: lr must be finite and >= 0, got ${lr}`);
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new RangeError(`learningRate: warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  }
  if (schedule !== "linear" && schedule !== "constant") {
    throw new RangeError(`learningRate: schedule must be "linear" or "constant", got ${schedule}`);
  }
  if (schedule === "linear") {
    if (!Number.isInteger(totalSteps) || totalSteps < 1) {
      throw new RangeError(`learningRate: totalSteps must be an integer >= 1, got ${totalSteps}`);
    }
    if (warmupSteps > totalSteps) {
      throw new RangeError(
        `learningRate: warmupSteps (${warmupSteps}) must be <= totalSteps (${totalSteps}) ` +
          `for the linear schedule`,
      );
    }
  }
  const c = step - 1;
  if (c < warmupSteps) return lr * c / Math.max(1, warmupSteps);
  if (schedule === "constant") return lr;
  return lr * Math.max(0, (totalSteps - c) / Math.max(1, totalSteps - warmupSteps));
}

/**
 * Warmup steps from a ratio of the total (HF's `warmup_ratio`: `ceil(ratio · totalSteps)`).
 *
 * @example
 * ```ts
 * import { warmupFromRatio } from "./schedule.ts";
 * warmupFromRatio(0.1, 25); // 3
 * ```
 */
export function warmupFromRatio(ratio: number, totalSteps: number): number {
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new RangeError(`warmupFromRatio: ratio must be in [0, 1], got ${ratio}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 0) {
    throw new RangeError(`warmupFromRatio: totalSteps must be an integer >= 0, got ${totalSteps}`);
  }
  return Math.ceil(ratio * totalSteps);
}
