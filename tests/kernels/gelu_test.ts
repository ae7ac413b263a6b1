import { ok, throws } from "node:assert/strict";
import { gelu, geluBackward, tanh, tanhBackward } from "../../kernels/gelu.ts";
import {
  geluBackwardRef,
  geluRef,
  numericalGradient,
  tanhBackwardRef,
  tanhRef,
} from "../../kernels/reference.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

/** `count` distinct random indices below `n`. */
function pick(n: number, count: number, r: () => number): number[] {
  const s = new Set<number>();
  while (s.size < Math.min(count, n)) s.add(Math.floor(r() * n));
  return [...s];
}

/** Largest element-wise relative error where the reference is at least `floor` in size. */
function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    if (Math.abs(want[i]) < floor) continue;
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.abs(want[i]));
  }
  return worst;
}

/** `n` points evenly spaced over [lo, hi], as f32. */
function sweep(lo: number, hi: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => lo + (hi - lo) * i / (n - 1));
}

gpuTest("gelu matches the float64 exact-erf reference on an awkward size", async (gpu) => {
  const r = rng(freshSeed("gelu"));
  const x = randn(37 * 77, r, 3);
  const tx = gpu.fromArray(x, [37, 77]);
  const y = gelu(gpu, tx);
  ok(y.shape.join() === "37,77");
  assertClose(await gpu.read(y), geluRef(x), 1e-5, "gelu");
  gpu.release(tx, y);
});

gpuTest("gelu keeps a relative error below 1e-6 element by element", async (gpu) => {
  // Covers both tails: for x ≪ 0 the result is tiny and must keep its relative accuracy.
  const x = sweep(-12, 12, 24001);
  const tx = gpu.fromArray(x, [x.length]);
  const y = gelu(gpu, tx);
  const got = await gpu.read(y), want = geluRef(x);
  const worst = maxRelErr(got, want, 1e-30);
  ok(worst < 1e-6, `worst element relative error ${worst}`);
  // From x = −1 up the series and Φ = 1 − erfc/2 give about 1.4e-7.
  const upper = maxRelErr(got.subarray(11000), want.subarray(11000), 1e-30);
  ok(upper < 3e-7, `worst relative error on [-1, 12]: ${upper}`);
  gpu.release(tx, y);
});

gpuTest("geluBackward matches the reference and finite differences", async (gpu) => {
  const r = rng(freshSeed("geluBackward"));
  const n = 53 * 37;
  const x = randn(n, r, 2.5), dy = randn(n, r);
  const tx = gpu.fromArray(x, [53, 37]), tdy = gpu.fromArray(dy, [53, 37]);
  const dx = geluBackward(gpu, tdy, tx);
  const got = await gpu.read(dx);
  assertClose(got, geluBackwardRef(dy, x), 1e-4, "geluBackward");
  const idx = pick(n, 8, r);
  const fd = numericalGradient((v) => geluRef(v), x, dy, idx);
  assertClose(idx.map((i) => got[i]), fd, 1e-4, "geluBackward vs finite differences");
  gpu.release(tx, tdy, dx);
});

gpuTest("tanh matches the reference, saturates without NaN and keeps tiny inputs", async (gpu) => {
  const r = rng(freshSeed("tanh"));
  const rand = randn(77 * 13, r, 2);
  const extremes = new Float32Array([
    0,
    -0,
    1e-30,
    -1e-8,
    3e-4,
    0.6249,
    0.6251,
    9,
    -9.5,
    40,
    -88,
    1e4,
    -3e38,
  ]);
  const x = new Float32Array(rand.length + extremes.length);
  x.set(rand);
  x.set(extremes, rand.length);
  const tx = gpu.fromArray(x, [x.length]);
  const y = tanh(gpu, tx);
  const got = await gpu.read(y), want = tanhRef(x);
  assertClose(got, want, 1e-5, "tanh");
  const worst = maxRelErr(got, want, 1e-38);
  ok(worst < 5e-7, `worst element relative error ${worst}`);
  gpu.release(tx, y);
});

gpuTest("tanhBackward matches the reference and finite differences", async (gpu) => {
  const r = rng(freshSeed("tanhBackward"));
  const n = 41 * 19;
  const x = randn(n, r, 1.5), dy = randn(n, r);
  const y = Float32Array.from(tanhRef(x));
  const ty = gpu.fromArray(y, [41, 19]), tdy = gpu.fromArray(dy, [41, 19]);
  const dx = tanhBackward(gpu, tdy, ty);
  const got = await gpu.read(dx);
  assertClose(got, tanhBackwardRef(dy, y), 1e-4, "tanhBackward");
  const idx = pick(n, 8, r);
  const fd = numericalGradient((v) => tanhRef(v), x, dy, idx);
  assertClose(idx.map((i) => got[i]), fd, 1e-4, "tanhBackward vs finite differences");
  gpu.release(ty, tdy, dx);
});

gpuTest("gelu covers tensors needing more than 65535 workgroups", async (gpu) => {
  const n = 65535 * 256 + 777;
  const r = rng(freshSeed("gelu big"));
  const x = new Float32Array(n);
  const phase = r() * 1000;
  for (let i = 0; i < n; i++) x[i] = 6 * Math.sin(i * 0.618 + phase); // cheaper than randn
  const tx = gpu.fromArray(x, [n]);
  const y = gelu(gpu, tx);
  const got = await gpu.read(y);
  const idx = [...pick(n, 2000, r), n - 1, n - 777, n - 778, 65535 * 256];
  const want = geluRef(idx.map((i) => x[i]));
  assertClose(idx.map((i) => got[i]), want, 1e-5, "gelu (sampled)");
  gpu.release(tx, y);
});

gpuTest("activation functions reject bad inputs before dispatching", (gpu) => {
  const a = gpu.alloc([4, 5]), b = gpu.alloc([5, 4]), u = gpu.alloc([4, 5], "u32");
  const before = gpu.dispatchCount;
  throws(() => gelu(gpu, u), /gelu: x must be f32/);
  throws(() => tanh(gpu, u), TypeError);
  throws(() => geluBackward(gpu, a, b), /geluBackward: dy .* must match x/);
  throws(() => tanhBackward(gpu, a, u), TypeError);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(a, b, u);
  return Promise.resolve();
});
