/**
 * Shared test helpers: one poisoned GPU per test process, seeded random inputs, float64 error
 * measures.
 * @module
 */
import { Gpu, NO_ADAPTER_HELP } from "../kernels/runtime.ts";
import { mulberry32 } from "../model/init.ts";

let shared: Promise<Gpu> | null = null;

/** The test GPU: every allocation is filled with NaN first. Fails (never skips) without adapter. */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create({ poison: true }).catch((e) => {
    throw new Error(`GPU tests need a WebGPU adapter. ${NO_ADAPTER_HELP}\n(cause: ${e.message})`);
  });
  return shared;
}

/** Deno.test with GPU-friendly sanitizer settings (device resources live across tests). */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => fn(await testGpu()),
  });
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export const rng: (seed: number) => () => number = mulberry32;

/** A fresh seed per test run (printed on failure through the test name is not possible; log it). */
export function freshSeed(label: string): number {
  const seed = (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
  if (Deno.env.get("TEST_VERBOSE")) console.log(`${label}: seed ${seed}`);
  return seed;
}

/** `n` normal(0, scale) values as Float32Array. */
export function randn(n: number, random: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/** ‖got − want‖ / ‖want‖ in float64; NaN anywhere gives Infinity. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new RangeError(`length ${got.length} vs ${want.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Asserts relErr ≤ tol with a message naming what was compared. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const e = relErr(got, want);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(3)} > ${tol}`);
}
