import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  isCpuAdapter,
  linear,
  linearBackward,
  linearGelu,
  matmul,
  MATMUL_TILE_CONFIGS,
  matmulPlan,
} from "../../kernels/matmul.ts";
import { linearBackwardRef, linearRef, matmulRef } from "../../kernels/matmul_reference.ts";
import { gelu, geluBackward } from "../../kernels/gelu.ts";
import { add } from "../../kernels/elementwise.ts";
import { geluBackwardRef, geluRef } from "../../kernels/reference.ts";
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
      gpu.options.matmul.tiles = tiles;
      const [ta, tb] = COMBOS[i++ % COMBOS.length];
      await checkProduct(gpu, r, 2, 131, 70, 45, ta, tb, `tiles ${name}`);
    }
  } finally {
    gpu.options.matmul.tiles = null;
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

gpuTest(
  "linearBackward's dxInto adds dX into a tensor with the bits of a separate add",
  async (gpu) => {
    const r = rng(freshSeed("linear dxInto"));
    for (const [m, n, k] of [[19, 37, 29], [256, 64, 64]] as const) {
      const { x, w, dy } = linearProblem(r, m, n, k);
      const base = randn(m * k, r);
      const tx = gpu.fromArray(x, [m, k]), tw = gpu.fromArray(w, [n, k]);
      const tdy = gpu.fromArray(dy, [m, n]), into = gpu.fromArray(base, [m, k]);
      const dw = gpu.zeros([n, k]), dw2 = gpu.zeros([n, k]);
      const dx = linearBackward(gpu, tx, tw, tdy, dw, null)!;
      const sum = add(gpu, into, dx);
      equal(linearBackward(gpu, tx, tw, tdy, dw2, null, true, into), into);
      const [got, want] = await gpu.readMany([into, sum]);
      ok(got.every((v, i) => Object.is(v, want[i])), `[${m}, ${n}, ${k}]: dxInto differs from add`);
      throws(() => linearBackward(gpu, tx, tw, tdy, dw2, null, true, tx), /share a buffer/);
      gpu.release(tx, tw, tdy, into, dw, dw2, dx, sum);
    }
  },
);

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

gpuTest(
  "matmul narrows its tiles to few rows (M = 1, 5, 32, 300) and matches float64",
  async (gpu) => {
    const r = rng(freshSeed("matmul row-aware tiles"));
    const cpu = isCpuAdapter(gpu);
    // Each product is large enough (≥ 2¹⁹ multiply-adds) for the big-block path on CPU adapters.
    const cases = [[1, 130, 4100], [5, 72, 1500], [32, 200, 100], [300, 40, 50]] as const;
    let i = 0;
    for (const [m, n, k] of cases) {
      for (const c of [true, false]) {
        const t = matmulPlan(m, n, k, 1, c).tiles;
        const bm = 4 * t.TM4 * t.WY;
        ok(bm < 2 * m || bm === 4, `M=${m} (cpu=${c}) got a ${bm}-row tile`);
      }
      const [ta, tb] = COMBOS[i++ % COMBOS.length];
      await checkProduct(gpu, r, 1, m, n, k, ta, tb, `M=${m} ${m}×${n}×${k} (cpu=${cpu})`);
    }
    // The 32-row product on a CPU adapter keeps the 16×16 register block in a 32-row tile.
    deepEqual(matmulPlan(32, 3072, 768, 1, true).tiles, { WX: 8, WY: 2, BK: 32, TM4: 4, TN4: 4 });
  },
);

gpuTest("split-K matmul matches float64 with and without accumulate at awkward K", async (gpu) => {
  const r = rng(freshSeed("matmul split-K"));
  try {
    for (
      const [splits, batch, m, n, k, transA, transB] of [
        // Light tiles (under 2¹⁹ multiply-adds per product): quick to compile.
        [3, 1, 13, 29, 1037, true, false],
        [5, 2, 9, 20, 1000, false, true],
        [2, 1, 8, 12, 40, true, true],
      ] as const
    ) {
      gpu.options.matmul.splits = splits;
      equal(matmulPlan(m, n, k, batch, true, gpu.options.matmul).splits, splits);
      const lead = batch > 1 ? [batch] : [];
      const a = randn(batch * m * k, r), b = randn(batch * k * n, r), c0 = randn(batch * m * n, r);
      const alpha = 0.75;
      const ta = gpu.fromArray(a, [...lead, ...(transA ? [k, m] : [m, k])]);
      const tb = gpu.fromArray(b, [...lead, ...(transB ? [n, k] : [k, n])]);
      const tc = gpu.fromArray(c0, [...lead, m, n]);
      matmul(gpu, ta, tb, { transA, transB, alpha, accumulate: true }, tc);
      const shape = { batch, m, n, k, transA, transB, alpha };
      assertClose(await gpu.read(tc), matmulRef(a, b, shape, c0), TOL, `split ${splits} +=`);
      const fresh = matmul(gpu, ta, tb, { transA, transB, alpha }); // poisoned, overwritten
      const first = await gpu.read(fresh);
      assertClose(first, matmulRef(a, b, shape), TOL, `split ${splits} =`);
      // Deterministic: the same product again is bit-identical.
      matmul(gpu, ta, tb, { transA, transB, alpha }, fresh);
      deepEqual(await gpu.read(fresh), first, `split ${splits} repeat`);
      gpu.release(ta, tb, tc, fresh);
    }
  } finally {
    gpu.options.matmul.splits = null;
  }
});

gpuTest(
  "linearBackward splits K over 1037 token rows by itself and accumulates dW",
  async (gpu) => {
    const r = rng(freshSeed("linear backward split-K"));
    const [m, n, k] = [1000 + 37, 40, 36];
    // dW[N,K] = dYᵀ·X has K = m rows: the plan splits it on both adapter kinds.
    ok(matmulPlan(n, k, m, 1, true).splits > 1, "cpu plan splits K");
    ok(matmulPlan(n, k, m, 1, false).splits > 1, "gpu plan splits K");
    const { x, w, dy } = linearProblem(r, m, n, k);
    const dw0 = randn(n * k, r);
    const tx = gpu.fromArray(x, [m, k]),
      tw = gpu.fromArray(w, [n, k]),
      tdy = gpu.fromArray(dy, [m, n]);
    const tdw = gpu.fromArray(dw0, [n, k]), tdb = gpu.zeros([n]);
    const dx = linearBackward(gpu, tx, tw, tdy, tdw, tdb)!;
    const ref = linearBackwardRef(x, w, dy, m, n, k);
    const [gdx, gdw, gdb] = await gpu.readMany([dx, tdw, tdb]);
    assertClose(gdw, ref.dw.map((v, i) => v + dw0[i]), TOL, "dW += (split-K)");
    assertClose(gdx, ref.dx, TOL, "dX");
    assertClose(gdb, ref.db, TOL, "db");
    gpu.release(tx, tw, tdy, tdw, tdb, dx);
  },
);

gpuTest(
  "linearGelu matches float64 GELU(X·Wᵀ + b), direct and split-K, and the gelu kernel",
  async (gpu) => {
    const r = rng(freshSeed("linearGelu"));
    try {
      for (
        const [splits, lead, n, k] of [[null, [3, 7], 45, 33], [1, [2, 5], 64, 48], [
          3,
          [9],
          20,
          300,
        ]] as const
      ) {
        gpu.options.matmul.splits = splits;
        const m = lead.reduce((a, b) => a * b, 1);
        const x = randn(m * k, r, 0.3), w = randn(n * k, r, 0.3), bias = randn(n, r);
        const tx = gpu.fromArray(x, [...lead, k]), tw = gpu.fromArray(w, [n, k]);
        const tb = gpu.fromArray(bias, [n]);
        const { pre, y } = linearGelu(gpu, tx, tw, tb);
        equal(pre.shape.join(), [...lead, n].join());
        equal(y.shape.join(), [...lead, n].join());
        const pre64 = linearRef(x, w, bias, m, n, k);
        const [gpre, gy] = await gpu.readMany([pre, y]);
        assertClose(gpre, pre64, TOL, `pre (splits ${splits})`);
        assertClose(gy, geluRef(pre64), TOL, `y (splits ${splits})`);
        // Same WGSL as the gelu kernel: applied to the same pre it gives the same y.
        const y2 = gelu(gpu, pre);
        assertClose(gy, await gpu.read(y2), 1e-7, `y vs gelu(pre) (splits ${splits})`);
        gpu.release(tx, tw, tb, pre, y, y2);
      }
    } finally {
      gpu.options.matmul.splits = null;
    }
  },
);

gpuTest("linearGelu's saved pre drives the FFN backward like float64", async (gpu) => {
  const r = rng(freshSeed("linearGelu backward"));
  const [m, n, k] = [26, 36, 20];
  const x = randn(m * k, r), w = randn(n * k, r, 0.5), bias = randn(n, r), dy = randn(m * n, r);
  const tx = gpu.fromArray(x, [m, k]), tw = gpu.fromArray(w, [n, k]), tb = gpu.fromArray(bias, [n]);
  const tdy = gpu.fromArray(dy, [m, n]);
  const tdw = gpu.zeros([n, k]), tdb = gpu.zeros([n]);
  const { pre, y } = linearGelu(gpu, tx, tw, tb);
  const dPre = geluBackward(gpu, tdy, pre);
  const dx = linearBackward(gpu, tx, tw, dPre, tdw, tdb)!;
  const pre64 = linearRef(x, w, bias, m, n, k);
  const ref = linearBackwardRef(x, w, geluBackwardRef(dy, pre64), m, n, k);
  const [gdx, gdw, gdb] = await gpu.readMany([dx, tdw, tdb]);
  assertClose(gdx, ref.dx, TOL, "dX through GELU");
  assertClose(gdw, ref.dw, TOL, "dW through GELU");
  assertClose(gdb, ref.db, TOL, "db through GELU");
  gpu.release(tx, tw, tb, tdy, tdw, tdb, pre, y, dPre, dx);
});

gpuTest("linearGelu and bad matmul switches reject bad input before dispatching", async (gpu) => {
  const x = gpu.alloc([6, 8]), w = gpu.alloc([5, 8]), w9 = gpu.alloc([5, 9]);
  const b4 = gpu.alloc([4]), u = gpu.alloc([6, 8], "u32"), w3 = gpu.alloc([1, 5, 8]);
  await gpu.sync();
  const before = gpu.dispatchCount;
  throws(
    () => linearGelu(gpu, x, w9, null),
    (e) => e instanceof RangeError && /linearGelu.*\[6, 8\].*\[5, 9\]/.test(e.message),
  );
  throws(
    () => linearGelu(gpu, x, w, b4),
    (e) => e instanceof RangeError && /linearGelu.*\[4\]/.test(e.message),
  );
  throws(
    () => linearGelu(gpu, u, w, null),
    (e) => e instanceof TypeError && /linearGelu/.test(e.message),
  );
  throws(() => linearGelu(gpu, x, w3, null), TypeError);
  throws(() => matmulPlan(8, 8, 64, 1, true, { splits: 0 }), RangeError);
  throws(() => matmulPlan(8, 8, 64, 1, true, { splits: 2.5 }), RangeError);
  equal(gpu.dispatchCount - before, 0, "no dispatch was recorded");
  // A bad switch on the Gpu is caught when a product is planned.
  gpu.options.matmul.splits = 0;
  try {
    throws(() => matmul(gpu, x, w, { transB: true }), /matmul\.splits/);
  } finally {
    gpu.options.matmul.splits = null;
  }
  gpu.release(x, w, w9, b4, u, w3);
});
