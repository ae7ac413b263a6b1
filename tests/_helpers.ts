/**
 * Shared test helpers: one poisoned GPU per test process, seeded random inputs, float64 error
 * measures.
 * @module
 */
import { AssertionError } from "node:assert/strict";
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
    fn: seeded(async () => fn(await testGpu())),
  });
}

/** Deno.test whose failure names the seed that replays it (see {@linkcode freshSeed}). */
export function seededTest(name: string, fn: () => Promise<void> | void): void {
  Deno.test(name, seeded(fn));
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export const rng: (seed: number) => () => number = mulberry32;

/**
 * Reproducible randomness. Each test run draws one base seed per test (or takes `TEST_SEED=N` from
 * the environment); every {@linkcode freshSeed} call inside the test derives its seed from that
 * base and a call counter, so one number replays the whole test. A failing test run through
 * {@linkcode gpuTest} or {@linkcode seededTest} gets `replay with TEST_SEED=N` appended to its
 * error. `TEST_VERBOSE=1` prints the seeds (and measured errors) of passing tests as well.
 */
let baseSeed = drawBaseSeed();
let seedCalls = 0;
let seedLabels: string[] = [];

function drawBaseSeed(): number {
  const env = Deno.env.get("TEST_SEED");
  if (env === undefined || env === "") return (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) {
    throw new Error(`TEST_SEED must be an integer in [0, 2^32), got ${JSON.stringify(env)}`);
  }
  return n;
}

/** Wraps a test body: a new base seed, and the seed appended to any failure. */
function seeded(fn: () => Promise<void> | void): () => Promise<void> {
  return async () => {
    baseSeed = drawBaseSeed();
    seedCalls = 0;
    seedLabels = [];
    try {
      await fn();
    } catch (e) {
      if (seedLabels.length > 0 && e instanceof Error) {
        e.message += `\n(randomised: ${seedLabels.join(", ")}; replay with TEST_SEED=${baseSeed})`;
      }
      throw e;
    }
  };
}

/** The seed of this test's next random input, derived from the test's base seed. */
export function freshSeed(label: string): number {
  // A splitmix-style mix of (base, call index): distinct calls get unrelated seeds.
  let z = (baseSeed + Math.imul(++seedCalls, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  const seed = (z ^ (z >>> 16)) >>> 0;
  seedLabels.push(label);
  if (Deno.env.get("TEST_VERBOSE")) console.log(`${label}: seed ${seed} (TEST_SEED=${baseSeed})`);
  return seed;
}

/** The base seed of the running test (for tests that seed a subprocess or a PRNG directly). */
export function testSeed(label: string): number {
  seedLabels.push(label);
  return baseSeed;
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
  if (!(e <= tol)) {
    throw new AssertionError({ message: `${what}: relative error ${e.toExponential(3)} > ${tol}` });
  }
}

/**
 * Checks a float32 GPU gradient against central differences (h = 1e-5) of a float64 loss at the
 * `top` entries of `grad` with the largest magnitude (well above float32 noise): each entry of
 * `w` is perturbed, `loss()` evaluated, and restored. The error is |grad − fd| / max(|fd|, 1e-3);
 * each must be ≤ `tol`, naming `what[i]`. Returns the worst error (for TEST_VERBOSE reports).
 */
export function assertFiniteDifferences(
  what: string,
  grad: ArrayLike<number>,
  w: Float64Array,
  loss: () => number,
  top: number,
  tol: number,
): number {
  const idx = Array.from({ length: grad.length }, (_, i) => i)
    .sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a])).slice(0, top);
  let worst = 0;
  for (const i of idx) {
    const h = 1e-5, old = w[i];
    w[i] = old + h;
    const up = loss();
    w[i] = old - h;
    const down = loss();
    w[i] = old;
    const fd = (up - down) / (2 * h);
    const err = Math.abs(grad[i] - fd) / Math.max(Math.abs(fd), 1e-3);
    worst = Math.max(worst, err);
    if (!(err <= tol)) {
      throw new AssertionError({
        message: `${what}[${i}]: GPU ${grad[i]} vs finite difference ${fd} (${err})`,
      });
    }
  }
  return worst;
}
