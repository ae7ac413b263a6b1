import { equal, ok, throws } from "node:assert/strict";
import { type AdamWHyper, adamwStep } from "../../kernels/adamw.ts";
import { adamwReference, gradNormReference } from "../../kernels/adamw_reference.ts";
import { gradNorm } from "../../kernels/grad_norm.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const base = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/**
 * Five AdamW steps on two tensors (a "weight" with decay, a "bias" without), fresh gradients and a
 * changing lr every step, optionally clipped by gradNorm; compared with the float64 reference.
 * Returns the clip scales the GPU used.
 */
async function fiveSteps(
  gpu: Parameters<Parameters<typeof gpuTest>[1]>[0],
  label: string,
  maxNorm: number | null,
): Promise<number[]> {
  const random = rng(freshSeed(label));
  const sizes = [777, 13];
  const decay = [0.1, 0];
  const host = sizes.map((n) => ({
    p: Float64Array.from(randn(n, random)),
    m: new Float64Array(n),
    v: new Float64Array(n),
  }));
  const dev = host.map((h) => ({
    p: gpu.fromArray(Float32Array.from(h.p), [h.p.length]),
    m: gpu.zeros([h.p.length]),
    v: gpu.zeros([h.p.length]),
  }));
  const scales: number[] = [];
  for (let step = 1; step <= 5; step++) {
    const grads = sizes.map((n) => randn(n, random, 0.1 + random()));
    const tg = grads.map((g) => gpu.fromArray(g, [g.length]));
    const ns = maxNorm === null ? null : gradNorm(gpu, tg, maxNorm);
    const ref = maxNorm === null ? { norm: 0, scale: 1 } : gradNormReference(grads, maxNorm);
    for (let k = 0; k < sizes.length; k++) {
      const h: AdamWHyper = { ...base, lr: 1e-3 * (6 - step), weightDecay: decay[k], step };
      adamwStep(gpu, dev[k].p, tg[k], dev[k].m, dev[k].v, h, ns);
      adamwReference(host[k].p, grads[k], host[k].m, host[k].v, h, ref.scale);
    }
    if (ns) {
      const [norm, scale] = await gpu.read(ns);
      assertClose([norm], [ref.norm], 1e-5, `step ${step}: norm`);
      assertClose([scale], [ref.scale], 1e-5, `step ${step}: scale`);
      scales.push(scale);
    }
    gpu.release(ns, ...tg);
  }
  for (let k = 0; k < sizes.length; k++) {
    const [p, m, v] = await gpu.readMany([dev[k].p, dev[k].m, dev[k].v]);
    assertClose(p, host[k].p, 1e-5, `tensor ${k}: param`);
    assertClose(m, host[k].m, 1e-5, `tensor ${k}: m`);
    assertClose(v, host[k].v, 1e-5, `tensor ${k}: v`);
    gpu.release(dev[k].p, dev[k].m, dev[k].v);
  }
  return scales;
}

gpuTest("adamwStep matches float64 AdamW over 5 steps with weight decay", async (gpu) => {
  await fiveSteps(gpu, "adamw plain", null);
});

gpuTest("adamwStep with active clipping matches float64 over 5 steps", async (gpu) => {
  // The gradients' norm is about 3-30, so maxNorm 1 always clips.
  const scales = await fiveSteps(gpu, "adamw clipped", 1);
  ok(scales.every((s) => s < 0.5), `clipping was active: ${scales}`);
});

gpuTest("adamwStep with inactive clipping (large or zero maxNorm) uses scale 1", async (gpu) => {
  for (const maxNorm of [1e6, 0]) {
    const scales = await fiveSteps(gpu, `adamw unclipped ${maxNorm}`, maxNorm);
    ok(scales.every((s) => s === 1), `scale is 1 for maxNorm ${maxNorm}: ${scales}`);
  }
});

gpuTest("gradNorm matches float64 and is bit-identical over repeated runs", async (gpu) => {
  const random = rng(freshSeed("grad_norm"));
  // 300 001 elements need more than 512 workgroups of 256: the grid-stride path runs too.
  const sizes = [1, 255, 257, 5000, 300_001];
  const grads = sizes.map((n) => randn(n, random, 0.01 + random()));
  const tg = grads.map((g) => gpu.fromArray(g, [g.length]));
  const ref = gradNormReference(grads, 2.5);
  const runs: Float32Array[] = [];
  for (let r = 0; r < 3; r++) {
    const ns = gradNorm(gpu, tg, 2.5);
    runs.push(await gpu.read(ns));
    gpu.release(ns);
  }
  assertClose([runs[0][0]], [ref.norm], 1e-5, "norm");
  assertClose([runs[0][1]], [ref.scale], 1e-5, "scale");
  for (const r of runs.slice(1)) {
    ok(Object.is(r[0], runs[0][0]) && Object.is(r[1], runs[0][1]), "bit-identical runs");
  }
  gpu.release(...tg);
});

gpuTest("adamwStep and gradNorm reject bad input before dispatching", (gpu) => {
  const p = gpu.alloc([8]), g = gpu.alloc([8]), m = gpu.alloc([8]), v = gpu.alloc([8]);
  const short = gpu.alloc([7]), ints = gpu.alloc([8], "u32"), one = gpu.alloc([1]);
  const h: AdamWHyper = { ...base, lr: 1e-3, weightDecay: 0.01, step: 1 };
  const before = gpu.dispatchCount;
  throws(() => adamwStep(gpu, p, short, m, v, h), RangeError);
  throws(() => adamwStep(gpu, p, g, m, ints, h), TypeError);
  throws(() => adamwStep(gpu, p, g, m, v, { ...h, step: 0 }), RangeError);
  throws(() => adamwStep(gpu, p, g, m, v, { ...h, beta2: 1 }), RangeError);
  throws(() => adamwStep(gpu, p, g, m, v, { ...h, lr: NaN }), RangeError);
  throws(() => adamwStep(gpu, p, g, m, v, h, one), RangeError);
  throws(() => gradNorm(gpu, [], 1), RangeError);
  throws(() => gradNorm(gpu, [g], -1), RangeError);
  throws(() => gradNorm(gpu, [g, ints], 1), TypeError);
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  gpu.release(p, g, m, v, short, ints, one);
  return Promise.resolve();
});

gpuTest("adamwStep skips the update when the gradient norm is NaN or infinite", async (gpu) => {
  const random = rng(freshSeed("adamw guard"));
  const n = 300;
  const p0 = randn(n, random), m0 = randn(n, random, 0.01);
  const v0 = Float32Array.from(randn(n, random, 0.01), (x) => x * x);
  const h: AdamWHyper = { ...base, lr: 1e-2, weightDecay: 0.1, step: 3 };
  const cases: [string, Float32Array, boolean][] = [
    ["NaN gradient", Float32Array.from(randn(n, random), (x, i) => (i === 7 ? NaN : x)), false],
    [
      "Inf gradient",
      Float32Array.from(randn(n, random), (x, i) => (i === 9 ? Infinity : x)),
      false,
    ],
    ["overflowing gradient", new Float32Array(n).fill(3e38), false],
    ["finite gradient", randn(n, random), true],
  ];
  for (const [label, grad, moves] of cases) {
    const p = gpu.fromArray(p0, [n]), m = gpu.fromArray(m0, [n]), v = gpu.fromArray(v0, [n]);
    const g = gpu.fromArray(grad, [n]);
    const ns = gradNorm(gpu, [g], 1);
    adamwStep(gpu, p, g, m, v, h, ns);
    const [norm, pa, ma, va] = await gpu.readMany([ns, p, m, v]);
    equal(Number.isFinite(norm[0]), moves, `${label}: norm ${norm[0]}`);
    if (moves) {
      ok(pa.some((x, i) => x !== p0[i]), `${label}: the parameters moved`);
    } else {
      ok(pa.every((x, i) => Object.is(x, p0[i])), `${label}: parameters unchanged`);
      ok(ma.every((x, i) => Object.is(x, m0[i])), `${label}: m unchanged`);
      ok(va.every((x, i) => Object.is(x, v0[i])), `${label}: v unchanged`);
    }
    gpu.release(p, m, v, g, ns);
  }
});
