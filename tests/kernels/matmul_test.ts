import { equal, throws } from "node:assert/strict";
import {
  forceMatmulTiles,
  linear,
  linearBackward,
  matmul,
  MATMUL_TILE_CONFIGS,
} from "../../kernels/matmul.ts";
import { linearBackwardRef, linearRef, matmulRef } from "../../kernels/matmul_reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const TOL = 1e-5;
const COMBOS = [[false, false], [false, true], [true, false], [true, true]] as const;

/** Runs one (batched) product against the float64 reference; A and B are fresh random. */
async function checkProduct(
  gpu: Gpu,
  r: () => number,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  what: string,
): Promise<void> {
  const lead = batch > 1 ? [batch] : [];
  const a = randn(batch * m * k, r), b = randn(batch * k * n, r);
  const ta = gpu.fromArray(a, [...lead, ...(transA ? [k, m] : [m, k])]);
  const tb = gpu.fromArray(b, [...lead, ...(transB ? [n, k] : [k, n])]);
  const c = matmul(gpu, ta, tb, { transA, transB });
  equal(c.shape.join(), [...lead, m, n].join());
  const want = matmulRef(a, b, { batch, m, n, k, transA, transB });
  assertClose(await gpu.read(c), want, TOL, `${what} transA=${transA} transB=${transB}`);
  gpu.release(ta, tb, c);
}

gpuTest(
  "matmul matches float64 on an awkward 37×53×29 product for every transpose",
  async (gpu) => {
    const r = rng(freshSeed("matmul awkward"));
    for (const [ta, tb] of COMBOS) await checkProduct(gpu, r, 1, 37, 53, 29, ta, tb, "37×53×29");
  },
);

gpuTest("matmul reads vec4-aligned operands correctly for every transpose", async (gpu) => {
  const r = rng(freshSeed("matmul aligned"));
  for (const [ta, tb] of COMBOS) await checkProduct(gpu, r, 1, 36, 52, 44, ta, tb, "36×52×44");
  // One operand aligned, the other not (vec4 for A only, then for B only).
  await checkProduct(gpu, r, 1, 33, 41, 20, false, true, "33×41×20");
  await checkProduct(gpu, r, 1, 12, 40, 7, true, false, "12×40×7");
});

gpuTest("matmul is right with every tile configuration across several tiles", async (gpu) => {
  const r = rng(freshSeed("matmul tiles"));
  try {
    // One product per configuration (each is a pipeline to compile), transposes rotating.
    let i = 0;
    for (const [name, tiles] of Object.entries(MATMUL_TILE_CONFIGS)) {
      forceMatmulTiles(tiles);
      const [ta, tb] = COMBOS[i++ % COMBOS.length];
      await checkProduct(gpu, r, 2, 131, 70, 45, ta, tb, `tiles ${name}`);
    }
  } finally {
    forceMatmulTiles(null);
  }
});

gpuTest("batched matmul 3×17×45×31 matches float64 for every transpose", async (gpu) => {
  const r = rng(freshSeed("matmul batched"));
  for (const [ta, tb] of COMBOS) await checkProduct(gpu, r, 3, 17, 31, 45, ta, tb, "3×17×45×31");
});

gpuTest("matmul scales by alpha and accumulates into out", async (gpu) => {
  const r = rng(freshSeed("matmul accumulate"));
  const [batch, m, n, k] = [3, 17, 31, 45];
  for (const [transA, transB] of COMBOS) {
    const a = randn(batch * m * k, r), b = randn(batch * k * n, r), c0 = randn(batch * m * n, r);
    const alpha = -0.5 - r();
    const ta = gpu.fromArray(a, transA ? [batch, k, m] : [batch, m, k]);
    const tb = gpu.fromArray(b, transB ? [batch, n, k] : [batch, k, n]);
    const tc = gpu.fromArray(c0, [batch, m, n]);
    const got = matmul(gpu, ta, tb, { transA, transB, alpha, accumulate: true }, tc);
    equal(got, tc);
    const want = matmulRef(a, b, { batch, m, n, k, transA, transB, alpha }, c0);
    assertClose(await gpu.read(tc), want, TOL, `accumulate transA=${transA} transB=${transB}`);
    // Without accumulate the (poisoned) out is overwritten, not added to.
    const fresh = gpu.alloc([batch, m, n]);
    matmul(gpu, ta, tb, { transA, transB, alpha }, fresh);
    const want2 = matmulRef(a, b, { batch, m, n, k, transA, transB, alpha });
    assertClose(await gpu.read(fresh), want2, TOL, `alpha transA=${transA} transB=${transB}`);
    gpu.release(ta, tb, tc, fresh);
  }
});

gpuTest("linear matches float64 with and without bias on a rank-3 input", async (gpu) => {
  const r = rng(freshSeed("linear"));
  const [bsz, t, k, n] = [2, 9, 29, 23];
  const m = bsz * t;
  const x = randn(m * k, r), w = randn(n * k, r), bias = randn(n, r);
  const tx = gpu.fromArray(x, [bsz, t, k]), tw = gpu.fromArray(w, [n, k]);
  const tb = gpu.fromArray(bias, [n]);
  const y = linear(gpu, tx, tw, tb);
  equal(y.shape.join(), [bsz, t, n].join());
  assertClose(await gpu.read(y), linearRef(x, w, bias, m, n, k), TOL, "linear with bias");
  const y0 = linear(gpu, tx, tw, null);
  assertClose(await gpu.read(y0), linearRef(x, w, null, m, n, k), TOL, "linear without bias");
  gpu.release(tx, tw, tb, y, y0);
});

gpuTest("linear matches float64 on vec4-aligned sizes", async (gpu) => {
  const r = rng(freshSeed("linear aligned"));
  const [m, k, n] = [70, 64, 132];
  const x = randn(m * k, r), w = randn(n * k, r), bias = randn(n, r);
  const tx = gpu.fromArray(x, [m, k]), tw = gpu.fromArray(w, [n, k]), tb = gpu.fromArray(bias, [n]);
  const y = linear(gpu, tx, tw, tb);
  assertClose(await gpu.read(y), linearRef(x, w, bias, m, n, k), TOL, "linear aligned");
  gpu.release(tx, tw, tb, y);
});

/** Random linear problem plus upstream gradient R of the loss Σ Y·R. */
function linearProblem(r: () => number, m: number, n: number, k: number) {
  return { x: randn(m * k, r), w: randn(n * k, r), b: randn(n, r), dy: randn(m * n, r) };
}

gpuTest("linearBackward accumulates dW and db and returns dX like float64", async (gpu) => {
  const r = rng(freshSeed("linear backward"));
  for (const [lead, n, k] of [[[2, 19], 37, 29], [[3, 12], 40, 48]] as const) {
    const m = lead[0] * lead[1];
    const { x, w, dy } = linearProblem(r, m, n, k);
    const dw0 = randn(n * k, r), db0 = randn(n, r);
    const tx = gpu.fromArray(x, [...lead, k]), tw = gpu.fromArray(w, [n, k]);
    const tdy = gpu.fromArray(dy, [...lead, n]);
    const tdw = gpu.fromArray(dw0, [n, k]), tdb = gpu.fromArray(db0, [n]);
    const dx = linearBackward(gpu, tx, tw, tdy, tdw, tdb)!;
    equal(dx.shape.join(), [...lead, k].join());
    const ref = linearBackwardRef(x, w, dy, m, n, k);
    const [gdx, gdw, gdb] = await gpu.readMany([dx, tdw, tdb]);
    assertClose(gdx, ref.dx, TOL, "dX");
    assertClose(gdw, ref.dw.map((v, i) => v + dw0[i]), TOL, "dW (accumulated)");
    assertClose(gdb, ref.db.map((v, i) => v + db0[i]), TOL, "db (accumulated)");
    // needInput = false: no dX, and no db when none is given; dW accumulates a second time.
    equal(linearBackward(gpu, tx, tw, tdy, tdw, null, false), null);
    const [gdw2, gdb2] = await gpu.readMany([tdw, tdb]);
    assertClose(gdw2, ref.dw.map((v, i) => 2 * v + dw0[i]), TOL, "dW (twice)");
    assertClose(gdb2, gdb, 0, "db untouched without db");
    gpu.release(tx, tw, tdy, tdw, tdb, dx);
  }
});

gpuTest("linearBackward agrees with finite differences of Σ Y·R", async (gpu) => {
  const r = rng(freshSeed("linear finite differences"));
  const [m, n, k] = [13, 11, 17];
  const { x, w, b, dy } = linearProblem(r, m, n, k);
  const tx = gpu.fromArray(x, [m, k]), tw = gpu.fromArray(w, [n, k]);
  const tdy = gpu.fromArray(dy, [m, n]);
  const tdw = gpu.zeros([n, k]), tdb = gpu.zeros([n]);
  const dx = linearBackward(gpu, tx, tw, tdy, tdw, tdb)!;
  const [gdx, gdw, gdb] = await gpu.readMany([dx, tdw, tdb]);
  // The loss in float64 via the reference forward.
  const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) => {
    const y = linearRef(xx, ww, bb, m, n, k);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
    return s;
  };
  const base = { x: Float64Array.from(x), w: Float64Array.from(w), b: Float64Array.from(b) };
  const eps = 1e-3;
  for (const [name, grad] of [["x", gdx], ["w", gdw], ["b", gdb]] as const) {
    const got: number[] = [], fd: number[] = [];
    for (let s = 0; s < 6; s++) {
      const i = Math.floor(r() * grad.length);
      const plus = { ...base, [name]: base[name].slice() },
        minus = { ...base, [name]: base[name].slice() };
      plus[name][i] += eps;
      minus[name][i] -= eps;
      fd.push((loss(plus.x, plus.w, plus.b) - loss(minus.x, minus.w, minus.b)) / (2 * eps));
      got.push(grad[i]);
    }
    assertClose(got, fd, TOL, `d${name} vs finite differences`);
  }
  gpu.release(tx, tw, tdy, tdw, tdb, dx);
});

gpuTest("matmul and linear reject bad shapes and dtypes before dispatching", async (gpu) => {
  const a = gpu.alloc([37, 29]), b = gpu.alloc([30, 53]), bt = gpu.alloc([29, 53]);
  const u = gpu.alloc([29, 53], "u32"), r3 = gpu.alloc([2, 29, 53]);
  const w = gpu.alloc([23, 29]), bias = gpu.alloc([22]);
  const out52 = gpu.alloc([37, 52]), dy22 = gpu.alloc([37, 22]), dw = gpu.alloc([23, 29]);
  await gpu.sync(); // the poison fills above are recorded dispatches; count from here
  const before = gpu.dispatchCount;
  throws(
    () => matmul(gpu, a, b),
    (e) => e instanceof RangeError && /matmul.*\[37, 29\].*\[30, 53\]/.test(e.message),
  );
  throws(() => matmul(gpu, a, u), (e) => e instanceof TypeError && /matmul/.test(e.message));
  throws(
    () => matmul(gpu, a, r3),
    (e) => e instanceof TypeError && /matmul.*\[2, 29, 53\]/.test(e.message),
  );
  throws(() => matmul(gpu, a, bt, { transA: true }), RangeError);
  throws(() => matmul(gpu, a, bt, { accumulate: true }), TypeError);
  throws(() => matmul(gpu, a, bt, {}, out52), /matmul: out \[37, 52\]/);
  throws(() => matmul(gpu, a, bt, {}, a), RangeError);
  throws(
    () => linear(gpu, a, b, null),
    (e) => e instanceof RangeError && /linear.*\[37, 29\].*\[30, 53\]/.test(e.message),
  );
  throws(
    () => linear(gpu, a, w, bias),
    (e) => e instanceof RangeError && /linear.*\[22\]/.test(e.message),
  );
  throws(() => linear(gpu, a, r3, null), TypeError);
  throws(() => linearBackward(gpu, a, w, dy22, dw, null), /linearBackward/);
  equal(gpu.dispatchCount - before, 0, "no dispatch was recorded");
  gpu.release(a, b, bt, u, r3, w, bias, out52, dy22, dw);
});
