import { equal, throws } from "node:assert/strict";
import { add } from "../../kernels/elementwise.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

gpuTest("add matches the CPU sum on an awkward size", async (gpu) => {
  const r = rng(freshSeed("add"));
  const n = 1000 + Math.floor(r() * 77);
  const a = randn(n, r), b = randn(n, r);
  const ta = gpu.fromArray(a, [n]), tb = gpu.fromArray(b, [n]);
  const out = add(gpu, ta, tb);
  const want = Array.from(a, (v, i) => v + b[i]);
  assertClose(await gpu.read(out), want, 1e-7, "add");
  gpu.release(ta, tb, out);
});

gpuTest("add rejects mismatched shapes before dispatching", (gpu) => {
  const a = gpu.alloc([3]), b = gpu.alloc([4]);
  const before = gpu.dispatchCount;
  throws(() => add(gpu, a, b), RangeError);
  equal(gpu.dispatchCount, before);
  gpu.release(a, b);
  return Promise.resolve();
});
