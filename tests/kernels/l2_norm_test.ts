import { ok, throws } from "node:assert/strict";
import { l2Normalize, l2NormalizeBackward } from "../../kernels/l2_norm.ts";
import {
  l2NormalizeBackwardRef,
  l2NormalizeRef,
  numericalGradient,
} from "../../kernels/reference.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

/** `count` distinct random indices below `n`. */
function pick(n: number, count: number, r: () => number): number[] {
  const s = new Set<number>();
  while (s.size < Math.min(count, n)) s.add(Math.floor(r() * n));
  return [...s];
}

gpuTest("l2Normalize matches the float64 reference on awkward shapes", async (gpu) => {
  const r = rng(freshSeed("l2Normalize"));
  for (const [b, h] of [[37, 53], [3, 1024], [66000, 2]]) {
    const x = randn(b * h, r, 3);
    const tx = gpu.fromArray(x, [b, h]);
    const { y, norm } = l2Normalize(gpu, tx);
    const ref = l2NormalizeRef(x, h);
    const [gy, gn] = await gpu.readMany([y, norm]);
    assertClose(gy, ref.y, 1e-5, `l2Normalize y ${b}x${h}`);
    assertClose(gn, ref.norm, 1e-5, `l2Normalize norm ${b}x${h}`);
    gpu.release(tx, y, norm);
  }
});

gpuTest("l2Normalize maps a zero row to zeros", async (gpu) => {
  const tx = gpu.fromArray(new Float32Array([0, 0, 0, 3, 0, 4]), [2, 3]);
  const { y, norm } = l2Normalize(gpu, tx);
  assertClose(await gpu.read(y), [0, 0, 0, 0.6, 0, 0.8], 1e-7, "zero row");
  gpu.release(tx, y, norm);
});

gpuTest("l2NormalizeBackward matches the reference and finite differences", async (gpu) => {
  const r = rng(freshSeed("l2NormalizeBackward"));
  for (const [b, h] of [[37, 53], [2, 1000]]) {
    const x = randn(b * h, r, 2), dy = randn(b * h, r);
    const tx = gpu.fromArray(x, [b, h]), tdy = gpu.fromArray(dy, [b, h]);
    const { y, norm } = l2Normalize(gpu, tx);
    const dx = l2NormalizeBackward(gpu, tdy, y, norm);
    const [gy, gn, got] = await gpu.readMany([y, norm, dx]);
    assertClose(got, l2NormalizeBackwardRef(dy, gy, gn, h), 1e-4, `l2NormalizeBackward ${b}x${h}`);
    const idx = pick(b * h, 8, r);
    const fd = numericalGradient((v) => l2NormalizeRef(v, h).y, x, dy, idx);
    assertClose(idx.map((i) => got[i]), fd, 1e-4, "l2NormalizeBackward vs finite differences");
    gpu.release(tx, tdy, y, norm, dx);
  }
});

gpuTest("l2Normalize functions reject bad inputs before dispatching", (gpu) => {
  const x = gpu.alloc([4, 5]), x3 = gpu.alloc([2, 2, 5]), n = gpu.alloc([4]), n3 = gpu.alloc([3]);
  const u = gpu.alloc([4, 5], "u32"), other = gpu.alloc([5, 4]);
  const before = gpu.dispatchCount;
  throws(() => l2Normalize(gpu, x3), /l2Normalize: x must be a non-empty \[B, H\]/);
  throws(() => l2Normalize(gpu, u), TypeError);
  throws(() => l2NormalizeBackward(gpu, other, x, n), /l2NormalizeBackward: dy/);
  throws(() => l2NormalizeBackward(gpu, x, x, n3), /norm must be \[4\]/);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(x, x3, n, n3, u, other);
  return Promise.resolve();
});
