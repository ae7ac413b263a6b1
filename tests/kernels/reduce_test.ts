import { equal, ok, throws } from "node:assert/strict";
import { mean, sum, sumOfSquares } from "../../kernels/reduce.ts";
import { meanRef, sumOfSquaresRef, sumRef } from "../../kernels/reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

type Reduction = (gpu: Gpu, x: Tensor, opts?: { workgroupSize?: number }) => Tensor;
const OPS: [string, Reduction, (x: ArrayLike<number>) => number][] = [
  ["sum", sum, sumRef],
  ["mean", mean, meanRef],
  ["sumOfSquares", sumOfSquares, sumOfSquaresRef],
];
// Tree only; one level pass; two level passes (the last with a partial block).
const SIZES = [777, 16385, 300_001];

gpuTest("reductions match the float64 reference on awkward sizes", async (gpu) => {
  const r = rng(freshSeed("reduce"));
  for (const n of SIZES) {
    const x = randn(n, r).map((v) => v + 0.3); // nonzero mean keeps the relative error meaningful
    const tx = gpu.fromArray(x, [n]);
    for (const [name, op, ref] of OPS) {
      const out = op(gpu, tx);
      equal(out.shape.join(), "1");
      assertClose(await gpu.read(out), [ref(x)], 1e-5, `${name} of ${n}`);
      gpu.release(out);
    }
    gpu.release(tx);
  }
});

gpuTest("reductions are bit-identical across workgroup sizes", async (gpu) => {
  const r = rng(freshSeed("reduce determinism"));
  for (const n of SIZES) {
    const x = randn(n, r, 10);
    const tx = gpu.fromArray(x, [n]);
    const widest = Math.min(1024, gpu.limits.maxComputeInvocationsPerWorkgroup);
    for (const [name, op] of OPS) {
      const results = [64, 256, 37, widest].map((wg) => op(gpu, tx, { workgroupSize: wg }));
      const values = await gpu.readMany(results);
      const bits = values.map((v) => new Uint32Array(v.buffer)[0]);
      ok(bits.every((b) => b === bits[0]), `${name} of ${n}: ${values.map((v) => v[0])}`);
      gpu.release(...results);
    }
    gpu.release(tx);
  }
});

gpuTest("reductions reject bad inputs before dispatching", (gpu) => {
  const u = gpu.alloc([5], "u32"), x = gpu.alloc([5]), empty = gpu.alloc([0]);
  const before = gpu.dispatchCount;
  throws(() => sum(gpu, u), /sum: x must be f32/);
  throws(() => mean(gpu, empty), /mean: x is empty/);
  throws(() => sumOfSquares(gpu, x, { workgroupSize: 0 }), /workgroupSize/);
  throws(() => sum(gpu, x, { workgroupSize: 100_000 }), RangeError);
  throws(() => sum(gpu, x, { workgroupSize: 2.5 }), RangeError);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(u, x, empty);
  return Promise.resolve();
});
