import { ok, throws } from "node:assert/strict";
import { softmax, softmaxBackward } from "../../kernels/softmax.ts";
import { numericalGradient, softmaxBackwardRef, softmaxRef } from "../../kernels/reference.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

/** `count` distinct random indices below `n`. */
function pick(n: number, count: number, r: () => number): number[] {
  const s = new Set<number>();
  while (s.size < Math.min(count, n)) s.add(Math.floor(r() * n));
  return [...s];
}

/** An attention-style mask [b, t]: 0 for real tokens, −1e9 for padding; row 0 keeps only token 0. */
function paddingMask(b: number, t: number, r: () => number): Float32Array {
  const m = new Float32Array(b * t);
  for (let i = 0; i < b; i++) {
    const real = i === 0 ? 1 : i === 1 ? t : 1 + Math.floor(r() * t);
    for (let k = real; k < t; k++) m[i * t + k] = -1e9;
  }
  return m;
}

gpuTest("softmax matches the float64 reference on awkward shapes", async (gpu) => {
  const r = rng(freshSeed("softmax"));
  for (const [rows, cols] of [[37, 77], [5, 1024], [300, 3], [2, 1]]) {
    const x = randn(rows * cols, r, 4);
    const tx = gpu.fromArray(x, [rows, cols]);
    const y = softmax(gpu, tx);
    assertClose(await gpu.read(y), softmaxRef(x, cols), 1e-5, `softmax ${rows}x${cols}`);
    gpu.release(tx, y);
  }
});

gpuTest("softmax shares one mask row across rowsPerMask rows, padding included", async (gpu) => {
  const r = rng(freshSeed("softmax mask"));
  const b = 3, heads = 2, t = 29; // scores [b·heads·t, t], mask [b, t]
  const rows = b * heads * t;
  const x = randn(rows * t, r, 3), mask = paddingMask(b, t, r);
  const tx = gpu.fromArray(x, [b, heads, t, t]), tm = gpu.fromArray(mask, [b, t]);
  const y = softmax(gpu, tx, tm, heads * t);
  const got = await gpu.read(y);
  assertClose(got, softmaxRef(x, t, mask, heads * t), 1e-5, "masked softmax");
  // Batch 0 sees only token 0: every one of its rows is exactly one-hot.
  for (let row = 0; row < heads * t; row++) {
    ok(got[row * t] === 1 && got.subarray(row * t + 1, row * t + t).every((v) => v === 0));
  }
  // rowsPerMask defaults to rows / maskRows.
  const y2 = softmax(gpu, tx, tm);
  assertClose(await gpu.read(y2), got, 0, "default rowsPerMask");
  gpu.release(tx, tm, y, y2);
});

gpuTest("softmax covers more than 65535 rows", async (gpu) => {
  const r = rng(freshSeed("softmax many rows"));
  const rows = 66000, cols = 4;
  const x = randn(rows * cols, r, 2), mask = randn(2 * cols, r);
  const tx = gpu.fromArray(x, [rows, cols]), tm = gpu.fromArray(mask, [2, cols]);
  const y = softmax(gpu, tx, tm, rows / 2);
  assertClose(await gpu.read(y), softmaxRef(x, cols, mask, rows / 2), 1e-5, "softmax 66000");
  gpu.release(tx, tm, y);
});

gpuTest("softmaxBackward matches the reference and finite differences", async (gpu) => {
  const r = rng(freshSeed("softmaxBackward"));
  for (const [rows, cols] of [[37, 77], [3, 700]]) {
    const x = randn(rows * cols, r, 2), dy = randn(rows * cols, r);
    const y = Float32Array.from(softmaxRef(x, cols));
    const ty = gpu.fromArray(y, [rows, cols]), tdy = gpu.fromArray(dy, [rows, cols]);
    const dx = softmaxBackward(gpu, tdy, ty);
    const got = await gpu.read(dx);
    assertClose(got, softmaxBackwardRef(dy, y, cols), 1e-4, `softmaxBackward ${rows}x${cols}`);
    const idx = pick(rows * cols, 8, r);
    const fd = numericalGradient((v) => softmaxRef(v, cols), x, dy, idx);
    assertClose(idx.map((i) => got[i]), fd, 1e-4, "softmaxBackward vs finite differences");
    gpu.release(ty, tdy, dx);
  }
});

gpuTest("softmax functions reject bad inputs before dispatching", (gpu) => {
  const x = gpu.alloc([6, 5]), m = gpu.alloc([2, 5]), m4 = gpu.alloc([2, 4]);
  const u = gpu.alloc([6, 5], "u32"), other = gpu.alloc([5, 6]);
  const before = gpu.dispatchCount;
  throws(() => softmax(gpu, u), /softmax: x must be f32/);
  throws(() => softmax(gpu, x, m4), /softmax: mask .* must have 5 columns/);
  throws(() => softmax(gpu, x, m, 2), /mask rows × rowsPerMask 2 must equal the 6 rows/);
  throws(() => softmax(gpu, x, m, 1.5), RangeError);
  throws(() => softmax(gpu, x, undefined, 3), TypeError);
  throws(() => softmaxBackward(gpu, x, other), /softmaxBackward: dy/);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(x, m, m4, u, other);
  return Promise.resolve();
});
