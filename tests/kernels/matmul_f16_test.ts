import { equal, ok, throws } from "node:assert/strict";
import { castF32ToF16 } from "../../kernels/cast.ts";
import { linear, linearBackward, linearGelu, matmul } from "../../kernels/matmul.ts";
import { linearBackwardRef, linearRef, matmulRef } from "../../kernels/matmul_reference.ts";
import { geluRef } from "../../kernels/reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { assertClose, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

// Against float64 of the values actually stored (the f16-rounded ones) only the f32 accumulation
// errs: the same tolerance as the f32 products.
const TOL = 1e-5;

/** Uploads `v` as f16 (rounded on the GPU) and returns the tensor with the values it holds. */
async function f16Of(gpu: Gpu, v: Float32Array, shape: number[]): Promise<[Tensor, Float32Array]> {
  const t32 = gpu.fromArray(v, shape);
  const t16 = castF32ToF16(gpu, t32);
  gpu.release(t32);
  return [t16, await gpu.read(t16)];
}

gpuTest("linear with f16 weights matches float64 of the stored f16 weights", async (gpu) => {
  const r = rng(freshSeed("linear f16 weights"));
  // Awkward K (scalar loads), aligned K (vec4<f16> loads), a rank-3 input, and a split-K product.
  const cases: [number[], number, number, number][] = [
    [[37], 23, 29, 1],
    [[2, 9], 52, 64, 1],
    [[20], 40, 200, 3],
  ];
  for (const [lead, n, k, splits] of cases) {
    const m = lead.reduce((a, b) => a * b, 1);
    const x = randn(m * k, r), w = randn(n * k, r, 0.05), bias = randn(n, r);
    const tx = gpu.fromArray(x, [...lead, k]), tb = gpu.fromArray(bias, [n]);
    const [tw16, w16] = await f16Of(gpu, w, [n, k]);
    gpu.options.matmul.splits = splits;
    try {
      const y = linear(gpu, tx, tw16, tb);
      equal(y.dtype, "f32");
      equal(y.shape.join(), [...lead, n].join());
      const what = `f16 W ${m}×${n}×${k} splits ${splits}`;
      const got = await gpu.read(y);
      assertClose(got, linearRef(x, w16, bias, m, n, k), TOL, what);
      // Against the f32 weights the error is f16's rounding (2⁻¹¹ relative per weight): nonzero,
      // and averaged over K terms well under 1e-3.
      const e = relErr(got, linearRef(x, w, bias, m, n, k));
      ok(e > 1e-5 && e < 2e-3, `${what}: error vs f32 weights ${e}`);
      if (Deno.env.get("TEST_VERBOSE")) console.log(`${what}: rel. error vs f32 W ${e}`);
      gpu.release(y);
    } finally {
      gpu.options.matmul.splits = null;
    }
    gpu.release(tx, tb, tw16);
  }
});

gpuTest("linear and linearGelu take f16 inputs and weights together", async (gpu) => {
  const r = rng(freshSeed("linear f16 both"));
  const [m, n, k] = [33, 44, 48];
  const bias = randn(n, r);
  const [tx16, x16] = await f16Of(gpu, randn(m * k, r), [m, k]);
  const [tw16, w16] = await f16Of(gpu, randn(n * k, r, 0.1), [n, k]);
  const tb = gpu.fromArray(bias, [n]);
  const want = linearRef(x16, w16, bias, m, n, k);
  const y = linear(gpu, tx16, tw16, null);
  assertClose(await gpu.read(y), linearRef(x16, w16, null, m, n, k), TOL, "f16 X and W");
  const { pre, y: g } = linearGelu(gpu, tx16, tw16, tb);
  const [gotPre, gotY] = await gpu.readMany([pre, g]);
  assertClose(gotPre, want, TOL, "linearGelu pre");
  assertClose(gotY, geluRef(want), TOL, "linearGelu GELU");
  gpu.release(tx16, tw16, tb, y, pre, g);
});

gpuTest("matmul with f16 operands matches float64 for every transpose", async (gpu) => {
  const r = rng(freshSeed("matmul f16"));
  const [batch, m, n, k] = [2, 17, 36, 44];
  for (
    const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const
  ) {
    const a = randn(batch * m * k, r), b = randn(batch * k * n, r);
    const ta = gpu.fromArray(a, transA ? [batch, k, m] : [batch, m, k]);
    const [tb16, b16] = await f16Of(gpu, b, transB ? [batch, n, k] : [batch, k, n]);
    const c = matmul(gpu, ta, tb16, { transA, transB, alpha: 0.5 });
    const want = matmulRef(a, b16, { batch, m, n, k, transA, transB, alpha: 0.5 });
    assertClose(await gpu.read(c), want, TOL, `f16 B transA=${transA} transB=${transB}`);
    gpu.release(ta, tb16, c);
  }
});

gpuTest("the f16-arithmetic variant stays within f16 rounding of float64", async (gpu) => {
  const r = rng(freshSeed("linear f16 math"));
  const [m, n, k] = [40, 36, 64];
  const x = randn(m * k, r), bias = randn(n, r);
  const tx = gpu.fromArray(x, [m, k]), tb = gpu.fromArray(bias, [n]);
  const [tw16, w16] = await f16Of(gpu, randn(n * k, r, 0.05), [n, k]);
  const want = linearRef(x, w16, bias, m, n, k);
  gpu.options.matmul.f16Math = true;
  let e: number;
  try {
    const y = linear(gpu, tx, tw16, tb);
    e = relErr(await gpu.read(y), want);
    gpu.release(y);
  } finally {
    gpu.options.matmul.f16Math = false;
  }
  // X rounds to f16 and each 4-term dot runs in f16: ~1e-3, far above the f32 path's ~1e-7, which
  // also shows that the variant really ran.
  ok(e > 1e-5 && e < 5e-3, `f16 arithmetic: relative error ${e}`);
  gpu.release(tx, tb, tw16);
});

gpuTest(
  "f16 operands are refused without shader-f16, and f16 gradients always, before dispatching",
  async (gpu) => {
    const x = gpu.alloc([4, 8]), w16 = gpu.alloc([6, 8], "f16"), dy = gpu.alloc([4, 6]);
    const dw = gpu.alloc([6, 8]), u = gpu.alloc([6, 8], "u32"), dy16 = gpu.alloc([4, 6], "f16");
    await gpu.sync();
    const before = gpu.dispatchCount;
    // The same device, seen as one without the feature.
    const noF16 = Object.create(gpu, { hasF16: { get: () => false } }) as Gpu;
    const names = (op: string) => (e: unknown) =>
      e instanceof TypeError && e.message.startsWith(`${op}: W`) &&
      e.message.includes('"shader-f16"') && e.message.includes("gpu.hasF16");
    throws(() => linear(noF16, x, w16, null), names("linear"));
    throws(() => linearGelu(noF16, x, w16, null), names("linearGelu"));
    throws(
      () => matmul(noF16, x, w16, { transB: true }),
      (e) => e instanceof TypeError && /^matmul: B .*"shader-f16"/.test((e as Error).message),
    );
    throws(() => linear(gpu, x, u, null), /linear: W must be f32 or f16/);
    throws(() => linearBackward(noF16, x, w16, dy, dw, null), names("linearBackward"));
    // The gradients stay f32: an f16 dY or dW is refused.
    throws(() => linearBackward(gpu, x, w16, dy16, dw, null), /linearBackward: dY must be f32/);
    equal(gpu.dispatchCount, before);
    gpu.release(x, w16, dy, dw, u, dy16);
  },
);

gpuTest(
  "linearBackward with f16 X and W matches float64 of the stored values (mixed precision)",
  async (gpu) => {
    const r = rng(freshSeed("linear backward f16"));
    // Awkward sizes (scalar loads), aligned ones (vec4<f16> loads) and a long K (split-K dW).
    for (const [m, n, k] of [[19, 37, 29], [64, 48, 32], [1024, 16, 16]] as const) {
      const x = randn(m * k, r), w = randn(n * k, r, 0.1), dy = randn(m * n, r);
      const dw0 = randn(n * k, r), db0 = randn(n, r), base = randn(m * k, r);
      const [tx16, x16] = await f16Of(gpu, x, [m, k]);
      const [tw16, w16] = await f16Of(gpu, w, [n, k]);
      const tdy = gpu.fromArray(dy, [m, n]);
      const tdw = gpu.fromArray(dw0, [n, k]), tdb = gpu.fromArray(db0, [n]);
      const into = gpu.fromArray(base, [m, k]);
      const got = linearBackward(gpu, tx16, tw16, tdy, tdw, tdb, true, into)!;
      equal(got, into);
      const ref = linearBackwardRef(x16, w16, dy, m, n, k);
      const [gdx, gdw, gdb] = await gpu.readMany([into, tdw, tdb]);
      const what = `${m}×${n}×${k}`;
      assertClose(gdx, ref.dx.map((v, i) => v + base[i]), TOL, `dX ${what}`);
      assertClose(gdw, ref.dw.map((v, i) => v + dw0[i]), TOL, `dW ${what}`);
      assertClose(gdb, ref.db.map((v, i) => v + db0[i]), TOL, `db ${what}`);
      gpu.release(tx16, tw16, tdy, tdw, tdb, into);
    }
  },
);
