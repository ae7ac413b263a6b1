// Dynamic loss scaling on the GPU (kernels/loss_scale.ts and gradNorm's `scaler`): applyLossScale
// against float64; a power-of-two scale leaves the norm, the clip factor and the AdamW update
// bit-identical to the unscaled f32 path; inf/NaN gradients skip AdamW and back the scale off;
// clean steps grow it after growthInterval of them (PyTorch GradScaler semantics).
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { type AdamWHyper, adamwStep } from "../../kernels/adamw.ts";
import { gradNorm } from "../../kernels/grad_norm.ts";
import {
  applyLossScale,
  createLossScaleState,
  LOSS_SCALE_DEFAULTS,
  lossScaleOptions,
} from "../../kernels/loss_scale.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const S = 2 ** 16;
const hyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** Asserts `got` and `want` hold the same f32 values bit for bit. */
function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  equal(got.length, want.length, `${what}: length`);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = a.findIndex((x, k) => x !== b[k]);
  ok(i < 0, `${what}: element ${i} is ${got[i]}, want ${want[i]} (bit for bit)`);
}

/** A fresh copy of host data on the GPU, multiplied there by the loss scale in `state`. */
function scaledOnGpu(gpu: Gpu, data: Float32Array, state: Tensor): Tensor {
  const t = gpu.fromArray(data, [data.length]);
  applyLossScale(gpu, t, state);
  return t;
}

gpuTest("applyLossScale multiplies in place by state[0] (float64 reference)", async (gpu) => {
  const r = rng(freshSeed("apply"));
  for (const shape of [[1], [257], [3, 23_339 + Math.floor(r() * 100)]]) {
    const n = shape.reduce((a, b) => a * b);
    const x = randn(n, r, 0.1 + r());
    const scale = Math.fround(0.5 + 1000 * r()); // not a power of two: rounding shows
    const state = createLossScaleState(gpu, scale);
    const t = gpu.fromArray(x, shape);
    applyLossScale(gpu, t, state);
    const [got, st] = await gpu.readMany([t, state]);
    assertClose(got, Array.from(x, (v) => v * scale), 1e-7, `n=${n} scale=${scale}`);
    ok(got.every((v, i) => v === Math.fround(x[i] * scale)), `n=${n}: f32-rounded products`);
    deepEqual([...st], [scale, 0], "the state is only read");
    gpu.release(state, t);
  }
});

gpuTest("scaled gradNorm reports the unscaled norm and clip/s bit for bit, and s", async (gpu) => {
  const r = rng(freshSeed("grad_norm scaled"));
  // 300 001 elements take the grid-stride path of `partial`.
  const sizes = [1, 255, 257, 5000, 300_001];
  const grads = sizes.map((n) => randn(n, r, 0.01 + r()));
  const plainT = grads.map((g) => gpu.fromArray(g, [g.length]));
  for (const s of [S, 2 ** -3, 2 ** 24]) {
    const state = createLossScaleState(gpu, s);
    const scaledT = grads.map((g) => scaledOnGpu(gpu, g, state));
    // maxNorm 1 clips (the norm is in the hundreds), 1e6 does not, 0 turns clipping off.
    for (const maxNorm of [1, 1e6, 0]) {
      const plain = gradNorm(gpu, plainT, maxNorm);
      const scaled = gradNorm(gpu, scaledT, maxNorm, { state });
      const [p, q] = await gpu.readMany([plain, scaled]);
      equal(q.length, 3, "out is [norm, clip/s, s]");
      sameBits(q.subarray(0, 1), p.subarray(0, 1), `s=${s} maxNorm=${maxNorm}: norm`);
      sameBits(q.subarray(1, 2), Float32Array.of(p[1] / s), `s=${s} maxNorm=${maxNorm}: clip/s`);
      equal(q[2], s, "out[2] is the scale used");
      gpu.release(plain, scaled);
    }
    deepEqual([...await gpu.read(state)], [s, 3], "three clean steps counted, no growth yet");
    gpu.release(state, ...scaledT);
  }
  gpu.release(...plainT);
});

gpuTest("AdamW after the scaled gradNorm equals the unscaled f32 step bit for bit", async (gpu) => {
  const r = rng(freshSeed("adamw scaled"));
  const sizes = [777, 13];
  const decay = [0.1, 0];
  for (const maxNorm of [1, 0]) {
    const p0 = sizes.map((n) => randn(n, r));
    const plain = p0.map((p) => ({
      p: gpu.fromArray(p, [p.length]),
      m: gpu.zeros([p.length]),
      v: gpu.zeros([p.length]),
    }));
    const amp = p0.map((p) => ({
      p: gpu.fromArray(p, [p.length]),
      m: gpu.zeros([p.length]),
      v: gpu.zeros([p.length]),
    }));
    const state = createLossScaleState(gpu);
    for (let step = 1; step <= 4; step++) {
      const grads = sizes.map((n) => randn(n, r, 0.1 + 3 * r()));
      const gp = grads.map((g) => gpu.fromArray(g, [g.length]));
      const gs = grads.map((g) => scaledOnGpu(gpu, g, state));
      const np = gradNorm(gpu, gp, maxNorm);
      const ns = gradNorm(gpu, gs, maxNorm, { state });
      for (let k = 0; k < sizes.length; k++) {
        const h: AdamWHyper = { ...hyper, lr: 1e-2 * (5 - step), weightDecay: decay[k], step };
        adamwStep(gpu, plain[k].p, gp[k], plain[k].m, plain[k].v, h, np);
        adamwStep(gpu, amp[k].p, gs[k], amp[k].m, amp[k].v, h, ns);
      }
      const [a, b] = await gpu.readMany([np, ns]);
      if (maxNorm > 0) ok(a[1] < 0.5, `step ${step}: clipping is active (${a[1]})`);
      equal(b[2], S, `step ${step}: the scale stays 2^16`);
      sameBits(b.subarray(0, 1), a.subarray(0, 1), `step ${step}: norm`);
      gpu.release(np, ns, ...gp, ...gs);
    }
    for (let k = 0; k < sizes.length; k++) {
      const [pa, ma, va, pb, mb, vb] = await gpu.readMany([
        plain[k].p,
        plain[k].m,
        plain[k].v,
        amp[k].p,
        amp[k].m,
        amp[k].v,
      ]);
      ok(pa.some((x, i) => x !== p0[k][i]), "the parameters moved");
      sameBits(pb, pa, `maxNorm ${maxNorm}, tensor ${k}: param`);
      sameBits(mb, ma, `maxNorm ${maxNorm}, tensor ${k}: m`);
      sameBits(vb, va, `maxNorm ${maxNorm}, tensor ${k}: v`);
      gpu.release(plain[k].p, plain[k].m, plain[k].v, amp[k].p, amp[k].m, amp[k].v);
    }
    gpu.release(state);
  }
});

gpuTest(
  "an Inf, NaN or overflowing scaled gradient skips AdamW, halves the scale and resets the counter",
  async (gpu) => {
    const r = rng(freshSeed("found_inf"));
    const n = 300;
    const p0 = randn(n, r), m0 = randn(n, r, 0.01);
    const v0 = Float32Array.from(randn(n, r, 0.01), (x) => x * x);
    const h: AdamWHyper = { ...hyper, lr: 1e-2, weightDecay: 0.1, step: 3 };
    const bad = 1 + Math.floor(r() * (n - 1));
    const cases: [string, Float32Array][] = [
      ["Inf gradient", Float32Array.from(randn(n, r), (x, i) => (i === bad ? Infinity : x))],
      ["NaN gradient", Float32Array.from(randn(n, r), (x, i) => (i === bad ? NaN : x))],
      // Finite in f32, but ·2^16 overflows: the case loss scaling backs off from.
      ["overflow after scaling", Float32Array.from(randn(n, r), (x, i) => (i === bad ? 1e36 : x))],
    ];
    for (const [label, grad] of cases) {
      const state = createLossScaleState(gpu);
      // Two clean steps first, so that the counter has something to reset.
      for (let i = 0; i < 2; i++) {
        const g = scaledOnGpu(gpu, randn(n, r), state);
        gpu.release(g, gradNorm(gpu, [g], 1, { state }));
      }
      deepEqual([...await gpu.read(state)], [S, 2], `${label}: two clean steps counted`);
      const p = gpu.fromArray(p0, [n]), m = gpu.fromArray(m0, [n]), v = gpu.fromArray(v0, [n]);
      const g = scaledOnGpu(gpu, grad, state);
      const out = gradNorm(gpu, [g], 1, { state });
      adamwStep(gpu, p, g, m, v, h, out);
      const [o, st, pa, ma, va] = await gpu.readMany([out, state, p, m, v]);
      ok(!Number.isFinite(o[0]), `${label}: norm ${o[0]} is not finite`);
      equal(o[2], S, `${label}: the step used 2^16`);
      deepEqual([...st], [S / 2, 0], `${label}: scale halved, counter reset`);
      sameBits(pa, p0, `${label}: param untouched`);
      sameBits(ma, m0, `${label}: m untouched`);
      sameBits(va, v0, `${label}: v untouched`);
      gpu.release(state, p, m, v, g, out);
    }
  },
);

gpuTest(
  "growthInterval 3: three clean steps double the scale and reset the counter, two do not",
  async (gpu) => {
    const r = rng(freshSeed("growth"));
    const state = createLossScaleState(gpu, 1024);
    const seen: number[][] = [];
    for (let step = 1; step <= 7; step++) {
      const g = scaledOnGpu(gpu, randn(100, r), state);
      const out = gradNorm(gpu, [g], 0, { state, growthInterval: 3 });
      const [o, st] = await gpu.readMany([out, state]);
      seen.push([o[2], ...st]);
      gpu.release(g, out);
    }
    // [scale used, state[0], state[1]] after each step.
    deepEqual(seen, [
      [1024, 1024, 1],
      [1024, 1024, 2],
      [1024, 2048, 0],
      [2048, 2048, 1],
      [2048, 2048, 2],
      [2048, 4096, 0],
      [4096, 4096, 1],
    ]);
    // Other factors; and a scale never grows to infinity (PyTorch keeps it and resets the counter).
    const big = createLossScaleState(gpu, 2 ** 127);
    const g = gpu.fromArray(randn(10, r), [10]);
    const o1 = gradNorm(gpu, [g], 0, { state: big, growthInterval: 1, growthFactor: 4 });
    deepEqual([...await gpu.read(big)], [2 ** 127, 0], "growth past f32 max is skipped");
    const four = createLossScaleState(gpu, 64);
    const o3 = gradNorm(gpu, [g], 0, { state: four, growthInterval: 1, growthFactor: 4 });
    deepEqual([...await gpu.read(four)], [256, 0], "growthFactor 4");
    gpu.release(big, g, o1, four, o3);
    const st = createLossScaleState(gpu, 64);
    const h = gpu.fromArray(Float32Array.of(1, Infinity), [2]);
    const o2 = gradNorm(gpu, [h], 0, { state: st, backoffFactor: 0.25 });
    deepEqual([...await gpu.read(st)], [16, 0], "backoffFactor 0.25");
    gpu.release(st, h, o2);
  },
);

gpuTest("the counter survives across calls, and a non-finite step restarts it", async (gpu) => {
  const r = rng(freshSeed("counter"));
  const state = createLossScaleState(gpu, 256);
  const after: number[][] = [];
  for (const clean of [true, true, false, true, true, true]) {
    const data = randn(50, r);
    if (!clean) data[Math.floor(r() * 50)] = NaN;
    const g = scaledOnGpu(gpu, data, state);
    const out = gradNorm(gpu, [g], 1, { state, growthInterval: 3 });
    after.push([...await gpu.read(state)]);
    gpu.release(g, out);
  }
  deepEqual(after, [[256, 1], [256, 2], [128, 0], [128, 1], [128, 2], [256, 0]]);
  gpu.release(state);
});

gpuTest("loss-scale validation names the bad argument and dispatches nothing", (gpu) => {
  const g = gpu.alloc([8]), ints = gpu.alloc([8], "u32"), three = gpu.alloc([3]);
  const state = createLossScaleState(gpu);
  const before = gpu.dispatchCount;
  for (const bad of [0, -1, NaN, Infinity, 1e39]) {
    throws(() => createLossScaleState(gpu, bad), { name: "RangeError", message: /initScale/ });
  }
  throws(() => applyLossScale(gpu, ints, state), { name: "TypeError", message: /\bx must be f32/ });
  throws(() => applyLossScale(gpu, g, three), { name: "TypeError", message: /\bstate must be/ });
  throws(() => applyLossScale(gpu, g, ints), { name: "TypeError", message: /\bstate must be/ });
  throws(() => gradNorm(gpu, [g], 1, { state: three }), {
    name: "TypeError",
    message: /scaler\.state/,
  });
  for (const growthInterval of [0, 1.5, -3, NaN, 2 ** 24 + 1]) {
    throws(() => gradNorm(gpu, [g], 1, { state, growthInterval }), {
      name: "RangeError",
      message: /gradNorm: scaler: growthInterval/,
    });
  }
  for (const growthFactor of [1, 0.5, Infinity, NaN]) {
    throws(() => gradNorm(gpu, [g], 1, { state, growthFactor }), /growthFactor/);
  }
  for (const backoffFactor of [0, 1, -0.5, NaN]) {
    throws(() => gradNorm(gpu, [g], 1, { state, backoffFactor }), /backoffFactor/);
  }
  throws(() => lossScaleOptions({ growthFactor: 1 }), /lossScaleOptions: growthFactor/);
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  deepEqual(lossScaleOptions(), { ...LOSS_SCALE_DEFAULTS });
  deepEqual(LOSS_SCALE_DEFAULTS, { growthInterval: 2000, growthFactor: 2, backoffFactor: 0.5 });
  gpu.release(g, ints, three, state);
  return Promise.resolve();
});
