/**
 * Wall-clock timing of recorded GPU work for the benchmarks: enough back-to-back repetitions per
 * submit that the wait for the queue is a small part of each sample.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";

/** Options of {@linkcode timeRepeated}. */
export interface RepeatOptions {
  /** Samples taken. */
  samples: number;
  /** Repetitions per sample double until one submit lasts this long (ms)… */
  minMs: number;
  /** …or they reach this many. */
  maxReps: number;
}

/**
 * ms per call of `record` in each of `samples` samples, after one untimed call (which compiles
 * the pipelines).
 */
export async function timeRepeated(
  gpu: Gpu,
  record: () => void,
  o: RepeatOptions,
): Promise<number[]> {
  record();
  await gpu.sync();
  let reps = 1;
  for (;;) {
    const t = performance.now();
    for (let r = 0; r < reps; r++) record();
    await gpu.sync();
    if (performance.now() - t >= o.minMs || reps >= o.maxReps) break;
    reps *= 2;
  }
  const ms: number[] = [];
  for (let i = 0; i < o.samples; i++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) record();
    await gpu.sync();
    ms.push((performance.now() - t0) / reps);
  }
  return ms;
}
