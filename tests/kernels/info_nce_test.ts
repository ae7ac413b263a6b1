import { equal, ok, throws } from "node:assert/strict";
import { infoNce } from "../../kernels/info_nce.ts";
import { infoNceReference } from "../../kernels/info_nce_reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import { assertClose, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

/** `n` random rows of width `h`, each L2-normalised. */
function unitRows(n: number, h: number, random: () => number): Float32Array {
  const x = randn(n * h, random);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < h; c++) s += x[r * h + c] ** 2;
    for (let c = 0; c < h; c++) x[r * h + c] /= Math.sqrt(s);
  }
  return x;
}

async function run(
  gpu: Gpu,
  q: Float32Array,
  p: Float32Array,
  B: number,
  P: number,
  H: number,
  opts: { temperature: number; symmetric?: boolean },
) {
  const tq = gpu.fromArray(q, [B, H]), tp = gpu.fromArray(p, [P, H]);
  const out = infoNce(gpu, tq, tp, opts);
  const [stats, dq, dp] = await gpu.readMany([out.stats, out.dq, out.dp]);
  gpu.release(tq, tp, out.stats, out.dq, out.dp);
  return { loss: stats[0], accuracy: stats[1], dq, dp };
}

const cases = [
  { name: "in-batch negatives only", B: 5, P: 5, H: 24, symmetric: false },
  { name: "hard negatives", B: 5, P: 8, H: 24, symmetric: false },
  { name: "hard negatives, symmetric", B: 5, P: 8, H: 24, symmetric: true },
  { name: "in-batch negatives, symmetric", B: 7, P: 7, H: 13, symmetric: true },
];

for (const c of cases) {
  gpuTest(`infoNce matches float64 and finite differences (${c.name})`, async (gpu) => {
    const random = rng(freshSeed(`info_nce ${c.name}`));
    const q = unitRows(c.B, c.H, random), p = unitRows(c.P, c.H, random);
    const opts = { temperature: 0.07, symmetric: c.symmetric };
    const got = await run(gpu, q, p, c.B, c.P, c.H, opts);
    const ref = infoNceReference(q, p, c.B, c.P, c.H, opts);
    assertClose([got.loss], [ref.loss], 1e-5, "loss");
    ok(Math.abs(got.accuracy - ref.accuracy) < 1e-6, `accuracy ${got.accuracy} vs ${ref.accuracy}`);
    assertClose(got.dq, ref.dq, 1e-4, "dq");
    assertClose(got.dp, ref.dp, 1e-4, "dp");
    // Central differences of the float64 loss at a few entries of q and of p.
    const eps = 1e-5;
    for (const which of ["q", "p"] as const) {
      const x = Float64Array.from(which === "q" ? q : p);
      const lossAt = () =>
        which === "q"
          ? infoNceReference(x, p, c.B, c.P, c.H, opts).loss
          : infoNceReference(q, x, c.B, c.P, c.H, opts).loss;
      const entries = Array.from({ length: 6 }, () => Math.floor(random() * x.length));
      const fd = entries.map((e) => {
        const keep = x[e];
        x[e] = keep + eps;
        const up = lossAt();
        x[e] = keep - eps;
        const down = lossAt();
        x[e] = keep;
        return (up - down) / (2 * eps);
      });
      const g = which === "q" ? got.dq : got.dp;
      const err = relErr(entries.map((e) => g[e]), fd);
      ok(err <= 1e-4, `d${which} vs finite differences: relative error ${err.toExponential(3)}`);
    }
  });
}

gpuTest(
  "infoNce accuracy counts only queries whose own positive wins, ties to the lower index",
  async (gpu) => {
    const H = 4, B = 4, P = 5;
    const e = (k: number) => Array.from({ length: H }, (_, c) => (c === k ? 1 : 0));
    const r = Math.SQRT1_2;
    // p4 duplicates p1: query 1 ties between indices 1 and 4, and its own (lower) index wins.
    const p = new Float32Array([...e(0), ...e(1), ...e(2), ...e(3), ...e(1)]);
    // q2 points at p0 (a miss); q3 ties p0 and p3, and the lower index 0 is not its own (a miss).
    const q = new Float32Array([...e(0), ...e(1), ...e(0), r, 0, 0, r]);
    for (const symmetric of [false, true]) {
      const got = await run(gpu, q, p, B, P, H, { temperature: 1, symmetric });
      equal(got.accuracy, 0.5);
      equal(infoNceReference(q, p, B, P, H, { temperature: 1 }).accuracy, 0.5);
    }
    const all = await run(gpu, p.subarray(0, 16), p, B, P, H, { temperature: 0.1 });
    equal(all.accuracy, 1, "queries equal to their positives all hit");
  },
);

gpuTest("infoNce is bit-identical across runs", async (gpu) => {
  const random = rng(freshSeed("info_nce det"));
  const B = 6, P = 9, H = 33;
  const q = unitRows(B, H, random), p = unitRows(P, H, random);
  const a = await run(gpu, q, p, B, P, H, { temperature: 0.05, symmetric: true });
  const b = await run(gpu, q, p, B, P, H, { temperature: 0.05, symmetric: true });
  equal(a.loss, b.loss);
  ok(a.dq.every((x, i) => Object.is(x, b.dq[i])) && a.dp.every((x, i) => Object.is(x, b.dp[i])));
});

gpuTest("infoNce rejects bad shapes and temperatures before dispatching", (gpu) => {
  const q = gpu.alloc([4, 8]),
    p = gpu.alloc([6, 8]),
    few = gpu.alloc([3, 8]),
    wide = gpu.alloc([6, 9]);
  const ints = gpu.alloc([4, 8], "u32");
  const before = gpu.dispatchCount;
  throws(() => infoNce(gpu, q, few, { temperature: 0.05 }), RangeError);
  throws(() => infoNce(gpu, q, wide, { temperature: 0.05 }), RangeError);
  throws(() => infoNce(gpu, q, p, { temperature: 0 }), RangeError);
  throws(() => infoNce(gpu, q, p.reshape([48]), { temperature: 0.05 }), RangeError);
  throws(() => infoNce(gpu, ints, p, { temperature: 0.05 }), TypeError);
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  gpu.release(q, p, few, wide, ints);
  return Promise.resolve();
});
