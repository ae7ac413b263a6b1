import { ok, throws } from "node:assert/strict";
import { poolFirst, poolFirstBackward, poolMean, poolMeanBackward } from "../../kernels/pooling.ts";
import {
  numericalGradient,
  poolFirstBackwardRef,
  poolFirstRef,
  poolMeanBackwardRef,
  poolMeanRef,
} from "../../kernels/reference.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const B = 5, T = 13, H = 53;

/** 1/0 mask [B, T]: sequence 0 has only token 0, sequence 1 is full, the rest random lengths. */
function paddingMask(r: () => number): Float32Array {
  const m = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const real = b === 0 ? 1 : b === 1 ? T : 1 + Math.floor(r() * T);
    m.fill(1, b * T, b * T + real);
  }
  return m;
}

gpuTest("poolFirst takes token 0 and its backward puts the gradient back there", async (gpu) => {
  const r = rng(freshSeed("poolFirst"));
  const h = randn(B * T * H, r), d = randn(B * H, r);
  const th = gpu.fromArray(h, [B, T, H]), td = gpu.fromArray(d, [B, H]);
  const pooled = poolFirst(gpu, th);
  const dh = poolFirstBackward(gpu, td, T);
  ok(pooled.shape.join() === `${B},${H}` && dh.shape.join() === `${B},${T},${H}`);
  const [gp, gd] = await gpu.readMany([pooled, dh]);
  assertClose(gp, poolFirstRef(h, B, T, H), 0, "poolFirst");
  assertClose(gd, poolFirstBackwardRef(d, B, T, H), 0, "poolFirstBackward");
  const idx = [0, H - 1, 3 * T * H + 7, 2 * T * H + H + 5, 4 * T * H + 5 * H];
  const fd = numericalGradient((v) => poolFirstRef(v, B, T, H), h, d, idx);
  assertClose(idx.map((i) => gd[i]), fd, 1e-6, "poolFirstBackward vs finite differences");
  gpu.release(th, td, pooled, dh);
});

gpuTest("poolMean averages real tokens only, NaN padding included", async (gpu) => {
  const r = rng(freshSeed("poolMean"));
  const h = randn(B * T * H, r, 2), mask = paddingMask(r);
  const poisoned = h.slice();
  for (let i = 0; i < B * T; i++) if (mask[i] === 0) poisoned.fill(NaN, i * H, i * H + H);
  const th = gpu.fromArray(poisoned, [B, T, H]), tm = gpu.fromArray(mask, [B, T]);
  const pooled = poolMean(gpu, th, tm);
  const got = await gpu.read(pooled);
  assertClose(got, poolMeanRef(h, mask, B, T, H), 1e-5, "poolMean");
  // Sequence 0 has one real token: its mean is token 0 itself.
  assertClose(got.subarray(0, H), h.subarray(0, H), 1e-7, "single-token sequence");
  gpu.release(th, tm, pooled);
});

gpuTest("poolMean gives zeros for a sequence without real tokens", async (gpu) => {
  const r = rng(freshSeed("poolMean empty"));
  const h = randn(2 * 3 * 4, r), mask = new Float32Array([1, 1, 0, 0, 0, 0]);
  const th = gpu.fromArray(h, [2, 3, 4]), tm = gpu.fromArray(mask, [2, 3]);
  const pooled = poolMean(gpu, th, tm);
  const got = await gpu.read(pooled);
  assertClose(got, poolMeanRef(h, mask, 2, 3, 4), 1e-6, "poolMean with an empty sequence");
  ok(got.subarray(4).every((v) => v === 0));
  gpu.release(th, tm, pooled);
});

gpuTest("poolMeanBackward matches the reference and finite differences", async (gpu) => {
  const r = rng(freshSeed("poolMeanBackward"));
  const h = randn(B * T * H, r), d = randn(B * H, r), mask = paddingMask(r);
  const td = gpu.fromArray(d, [B, H]), tm = gpu.fromArray(mask, [B, T]);
  const dh = poolMeanBackward(gpu, td, tm);
  ok(dh.shape.join() === `${B},${T},${H}`);
  const got = await gpu.read(dh);
  assertClose(got, poolMeanBackwardRef(d, mask, B, T, H), 1e-5, "poolMeanBackward");
  // Token 0 of the single-token sequence, tokens of the full one, and a padded position.
  const padded = mask.findIndex((m) => m === 0);
  const idx = [0, H + 3, T * H + 5 * H + 2, (T * 2 - 1) * H + 7, padded * H + 4];
  const fd = numericalGradient((v) => poolMeanRef(v, mask, B, T, H), h, d, idx);
  assertClose(idx.map((i) => got[i]), fd, 1e-4, "poolMeanBackward vs finite differences");
  ok(got[padded * H + 4] === 0, "padding gets no gradient");
  gpu.release(td, tm, dh);
});

gpuTest("pooling functions reject bad inputs before dispatching", (gpu) => {
  const h = gpu.alloc([2, 3, 4]), flat = gpu.alloc([6, 4]), mask = gpu.alloc([2, 3]);
  const mask4 = gpu.alloc([2, 4]), u = gpu.alloc([2, 3, 4], "u32"), d = gpu.alloc([2, 4]);
  const d3 = gpu.alloc([3, 4]);
  const before = gpu.dispatchCount;
  throws(() => poolFirst(gpu, flat), /poolFirst: h must be a non-empty \[B, T, H\]/);
  throws(() => poolFirst(gpu, u), TypeError);
  throws(() => poolFirstBackward(gpu, d, 0), /seq/);
  throws(() => poolMean(gpu, h, mask4), /poolMean: mask .* must be \[2, 3\]/);
  throws(() => poolMeanBackward(gpu, d3, mask), /poolMeanBackward: mask/);
  throws(() => poolMeanBackward(gpu, flat.reshape([24]), mask), RangeError);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(h, flat, mask, mask4, u, d, d3);
  return Promise.resolve();
});
