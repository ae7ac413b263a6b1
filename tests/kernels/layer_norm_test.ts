import { ok, throws } from "node:assert/strict";
import { addLayerNorm, layerNorm, layerNormBackward } from "../../kernels/layer_norm.ts";
import {
  layerNormBackwardRef,
  layerNormRef,
  type Numbers,
  numericalGradient,
} from "../../kernels/reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import { assertClose, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

const EPS = 1e-5;

/** `count` distinct random indices below `n`. */
function pick(n: number, count: number, r: () => number): number[] {
  const s = new Set<number>();
  while (s.size < Math.min(count, n)) s.add(Math.floor(r() * n));
  return [...s];
}

function shifted(n: number, r: () => number, offset: number, scale: number): Float32Array {
  return randn(n, r, scale).map((v) => v + offset);
}

async function checkForward(gpu: Gpu, shape: number[], seedLabel: string): Promise<void> {
  const r = rng(freshSeed(seedLabel));
  const n = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  const x = shifted(size, r, 3, 2);
  const gamma = shifted(n, r, 1, 0.5), beta = randn(n, r, 0.5);
  const tx = gpu.fromArray(x, shape), tg = gpu.fromArray(gamma, [n]);
  const tb = gpu.fromArray(beta, [n]);
  const { y, mean, rstd } = layerNorm(gpu, tx, tg, tb, EPS);
  ok(y.shape.join() === shape.join(), `y shape ${y.shape}`);
  const ref = layerNormRef(x, n, gamma, beta, EPS);
  const [gy, gm, gr] = await gpu.readMany([y, mean, rstd]);
  assertClose(gy, ref.y, 1e-5, `layerNorm y ${shape}`);
  assertClose(gm, ref.mean, 1e-6, `layerNorm mean ${shape}`);
  assertClose(gr, ref.rstd, 1e-5, `layerNorm rstd ${shape}`);
  gpu.release(tx, tg, tb, y, mean, rstd);
}

gpuTest("layerNorm matches the float64 reference on awkward shapes", async (gpu) => {
  await checkForward(gpu, [37, 77], "layerNorm 37x77");
  await checkForward(gpu, [3, 5, 53], "layerNorm 3x5x53");
  await checkForward(gpu, [1, 1], "layerNorm 1x1");
});

gpuTest("layerNorm handles rows of 1024 and more than 65535 rows", async (gpu) => {
  await checkForward(gpu, [5, 1024], "layerNorm 5x1024");
  await checkForward(gpu, [3000, 300], "layerNorm 3000x300");
  await checkForward(gpu, [66000, 3], "layerNorm 66000x3");
});

gpuTest("layerNorm stays accurate for rows with a large common offset", async (gpu) => {
  // E[x²] − E[x]² in f32 would lose most digits of the variance here.
  const r = rng(freshSeed("layerNorm offset"));
  const rows = 7, n = 200;
  const x = shifted(rows * n, r, 1000, 1);
  const gamma = new Float32Array(n).fill(1), beta = new Float32Array(n);
  const tx = gpu.fromArray(x, [rows, n]), tg = gpu.fromArray(gamma, [n]);
  const tb = gpu.fromArray(beta, [n]);
  const { y, mean, rstd } = layerNorm(gpu, tx, tg, tb, EPS);
  const e = relErr(await gpu.read(y), layerNormRef(x, n, gamma, beta, EPS).y);
  ok(e < 2e-3, `relative error ${e}`);
  gpu.release(tx, tg, tb, y, mean, rstd);
});

gpuTest("addLayerNorm normalises x + residual and returns the sum", async (gpu) => {
  const r = rng(freshSeed("addLayerNorm"));
  const rows = 37, n = 77;
  const x = randn(rows * n, r), res = randn(rows * n, r, 3);
  const gamma = shifted(n, r, 1, 0.5), beta = randn(n, r, 0.5);
  const tx = gpu.fromArray(x, [rows, n]), tr = gpu.fromArray(res, [rows, n]);
  const tg = gpu.fromArray(gamma, [n]), tb = gpu.fromArray(beta, [n]);
  const out = addLayerNorm(gpu, tx, tr, tg, tb, EPS);
  const sum = Float32Array.from(x, (v, i) => v + res[i]); // f32 add, as on the GPU
  const ref = layerNormRef(sum, n, gamma, beta, EPS);
  const [gy, gs, gm, gr] = await gpu.readMany([out.y, out.sum, out.mean, out.rstd]);
  assertClose(gs, sum, 0, "addLayerNorm sum");
  assertClose(gy, ref.y, 1e-5, "addLayerNorm y");
  assertClose(gm, ref.mean, 1e-6, "addLayerNorm mean");
  assertClose(gr, ref.rstd, 1e-5, "addLayerNorm rstd");
  gpu.release(tx, tr, tg, tb, out.y, out.sum, out.mean, out.rstd);
});

async function checkBackward(gpu: Gpu, rows: number, n: number, label: string): Promise<void> {
  const r = rng(freshSeed(label));
  const x = shifted(rows * n, r, 0.5, 1.5);
  const gamma = shifted(n, r, 1, 0.5), beta = randn(n, r, 0.5);
  const dy = randn(rows * n, r); // loss = Σ y·dy
  const g0 = randn(n, r), b0 = randn(n, r); // accumulate onto these
  const tx = gpu.fromArray(x, [rows, n]), tg = gpu.fromArray(gamma, [n]);
  const tb = gpu.fromArray(beta, [n]), tdy = gpu.fromArray(dy, [rows, n]);
  const tdg = gpu.fromArray(g0, [n]), tdb = gpu.fromArray(b0, [n]);
  const { y, mean, rstd } = layerNorm(gpu, tx, tg, tb, EPS);
  const dx = layerNormBackward(gpu, tdy, tx, mean, rstd, tg, tdg, tdb);
  const [gdx, gdg, gdb] = await gpu.readMany([dx, tdg, tdb]);
  const ref = layerNormBackwardRef(dy, x, n, gamma, EPS);
  assertClose(gdx, ref.dx, 1e-4, `${label} dx`);
  const dgamma = Float64Array.from(gdg, (v, i) => v - g0[i]);
  const dbeta = Float64Array.from(gdb, (v, i) => v - b0[i]);
  assertClose(dgamma, ref.dgamma, 1e-4, `${label} dgamma`);
  assertClose(dbeta, ref.dbeta, 1e-4, `${label} dbeta`);

  // Central differences of the float64 forward.
  const fwd = (xx: Numbers, gg: Numbers, bb: Numbers) => layerNormRef(xx, n, gg, bb, EPS).y;
  const ix = pick(rows * n, 6, r), ip = pick(n, 4, r);
  const fdx = numericalGradient((v) => fwd(v, gamma, beta), x, dy, ix);
  const fdg = numericalGradient((v) => fwd(x, v, beta), gamma, dy, ip);
  const fdb = numericalGradient((v) => fwd(x, gamma, v), beta, dy, ip);
  assertClose(ix.map((i) => gdx[i]), fdx, 1e-4, `${label} dx vs finite differences`);
  assertClose(ip.map((i) => dgamma[i]), fdg, 1e-4, `${label} dgamma vs finite differences`);
  assertClose(ip.map((i) => dbeta[i]), fdb, 1e-4, `${label} dbeta vs finite differences`);
  gpu.release(tx, tg, tb, tdy, tdg, tdb, y, mean, rstd, dx);
}

gpuTest("layerNormBackward matches the reference and finite differences", async (gpu) => {
  await checkBackward(gpu, 37, 77, "layerNormBackward 37x77");
  await checkBackward(gpu, 70, 1024, "layerNormBackward 70x1024");
  await checkBackward(gpu, 1, 53, "layerNormBackward 1x53");
});

gpuTest(
  "layerNorm and its backward match on model-sized rows (one row per invocation)",
  async (gpu) => {
    // Rows of a multiple of 4 go one per invocation as vec4 (on lavapipe at any length); 77 and 53
    // above take the workgroup-per-row kernel, so both paths are checked.
    await checkForward(gpu, [8, 24, 64], "layerNorm 8x24x64");
    await checkForward(gpu, [3, 8], "layerNorm 3x8");
    await checkBackward(gpu, 192, 64, "layerNormBackward 192x64");
    await checkBackward(gpu, 33, 8, "layerNormBackward 33x8");
    await checkBackward(gpu, 5, 4, "layerNormBackward 5x4");
  },
);

gpuTest("addLayerNorm matches on rows of 64 and 256", async (gpu) => {
  for (const [rows, n] of [[192, 64], [9, 256]]) {
    const r = rng(freshSeed(`addLayerNorm ${rows}x${n}`));
    const x = randn(rows * n, r), res = randn(rows * n, r, 3);
    const gamma = shifted(n, r, 1, 0.5), beta = randn(n, r, 0.5);
    const tx = gpu.fromArray(x, [rows, n]), tr = gpu.fromArray(res, [rows, n]);
    const tg = gpu.fromArray(gamma, [n]), tb = gpu.fromArray(beta, [n]);
    const out = addLayerNorm(gpu, tx, tr, tg, tb, EPS);
    const sum = Float32Array.from(x, (v, i) => v + res[i]);
    const ref = layerNormRef(sum, n, gamma, beta, EPS);
    const [gy, gs, gm, gr] = await gpu.readMany([out.y, out.sum, out.mean, out.rstd]);
    assertClose(gs, sum, 0, `addLayerNorm ${rows}x${n} sum`);
    assertClose(gy, ref.y, 1e-5, `addLayerNorm ${rows}x${n} y`);
    assertClose(gm, ref.mean, 1e-6, `addLayerNorm ${rows}x${n} mean`);
    assertClose(gr, ref.rstd, 1e-5, `addLayerNorm ${rows}x${n} rstd`);
    gpu.release(tx, tr, tg, tb, out.y, out.sum, out.mean, out.rstd);
  }
});

gpuTest("layerNormBackward is bit-identical across runs", async (gpu) => {
  const r = rng(freshSeed("layerNorm determinism"));
  const rows = 100, n = 64;
  const tx = gpu.fromArray(randn(rows * n, r), [rows, n]);
  const tdy = gpu.fromArray(randn(rows * n, r), [rows, n]);
  const tg = gpu.fromArray(shifted(n, r, 1, 0.5), [n]), tb = gpu.zeros([n]);
  const runs: Float32Array[][] = [];
  for (let k = 0; k < 2; k++) {
    const { y, mean, rstd } = layerNorm(gpu, tx, tg, tb, EPS);
    const dg = gpu.zeros([n]), db = gpu.zeros([n]);
    const dx = layerNormBackward(gpu, tdy, tx, mean, rstd, tg, dg, db);
    runs.push(await gpu.readMany([y, dx, dg, db]));
    gpu.release(y, mean, rstd, dg, db, dx);
  }
  runs[0].forEach((a, i) => ok(a.every((v, j) => Object.is(v, runs[1][i][j])), `output ${i}`));
  gpu.release(tx, tdy, tg, tb);
});

gpuTest("layerNorm functions reject bad inputs before dispatching", (gpu) => {
  const x = gpu.alloc([4, 6]), g = gpu.alloc([6]), b = gpu.alloc([6]), g5 = gpu.alloc([5]);
  const xu = gpu.alloc([4, 6], "u32"), rows = gpu.alloc([4]), rows3 = gpu.alloc([3]);
  const xt = gpu.alloc([6, 4]);
  const before = gpu.dispatchCount;
  throws(() => layerNorm(gpu, x, g5, b, EPS), /layerNorm: gamma must be \[6\]/);
  throws(() => layerNorm(gpu, x, g, g5, EPS), RangeError);
  throws(() => layerNorm(gpu, xu, g, b, EPS), TypeError);
  throws(() => layerNorm(gpu, x, g, b, -1), RangeError);
  throws(() => addLayerNorm(gpu, x, xt, g, b, EPS), /addLayerNorm: residual/);
  throws(() => layerNormBackward(gpu, x, x, rows3, rows, g, g, b), /layerNormBackward: mean/);
  throws(() => layerNormBackward(gpu, xu, x, rows, rows, g, g, b), TypeError);
  throws(() => layerNormBackward(gpu, x, x, rows, rows, g, g5, b), /dgamma/);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  gpu.release(x, g, b, g5, xu, rows, rows3, xt);
  return Promise.resolve();
});
