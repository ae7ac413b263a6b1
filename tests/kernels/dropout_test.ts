/**
 * Dropout: the GPU mask is the host mask `dropoutKeep` element for element (so the float64
 * model reference can apply the same mask), kept values are scaled by exactly f32(1/(1 − p)),
 * p = 0 is the identity, a chunk at an offset gets the whole tensor's mask there, and the kept
 * fraction is 1 − p within binomial noise. Attention-probability dropout (the same mask inside the
 * fused attention) against a float64 attention with that mask, forward and finite differences.
 */
import { equal, ok } from "node:assert/strict";
import { dropout, dropoutKeep, dropoutKey } from "../../kernels/dropout.ts";
import { attention, attentionBackward } from "../../kernels/attention.ts";
import { assertFiniteDifferences, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

const verbose = Deno.env.get("TEST_VERBOSE");

gpuTest("dropout: the host mask, the 1/(1 − p) scale, p = 0 is the identity", async (gpu) => {
  for (const p of [0, 0.1, 0.5, 0.9]) {
    const seed = freshSeed(`dropout p=${p}`);
    const n = 1000 + (seed % 777); // an awkward size
    const x = randn(n, rng(seed));
    const key = dropoutKey(seed, 3, 1);
    const offset = seed % 5000;
    const xt = gpu.fromArray(x, [n]);
    const y = await gpu.read(dropout(gpu, xt, { p, key, offset }));
    const scale = Math.fround(1 / (1 - p));
    for (let i = 0; i < n; i++) {
      const want = dropoutKeep(key, offset + i, p) ? Math.fround(x[i] * scale) : 0;
      if (y[i] !== want) {
        throw new Error(`p=${p}, element ${i}: GPU ${y[i]}, host mask and scale give ${want}`);
      }
    }
    if (p === 0) ok(y.every((v, i) => v === x[i]), "p = 0 changed a value");
  }
});

gpuTest("dropout: a chunk at an offset gets the whole tensor's mask", async (gpu) => {
  const seed = freshSeed("dropout offset");
  const n = 3000, a = 1234, b = 2500;
  const x = randn(n, rng(seed));
  const key = dropoutKey(seed);
  const whole = await gpu.read(dropout(gpu, gpu.fromArray(x, [n]), { p: 0.3, key }));
  const part = await gpu.read(
    dropout(gpu, gpu.fromArray(x.slice(a, b), [b - a]), { p: 0.3, key, offset: a }),
  );
  ok(part.every((v, i) => v === whole[a + i]), "the chunk's mask differs");
});

gpuTest("dropout: the kept fraction is 1 − p; keys give independent masks", async (gpu) => {
  const n = 1 << 18;
  const ones = gpu.fromArray(new Float32Array(n).fill(1), [n]);
  for (const p of [0.1, 0.5]) {
    const key = dropoutKey(freshSeed(`fraction p=${p}`));
    const y = await gpu.read(dropout(gpu, ones, { p, key }));
    const kept = y.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0) / n;
    // Binomial noise: σ = sqrt(p(1 − p)/n) ≈ 0.001 at p = 0.5; 6σ never fails by chance.
    const sigma = Math.sqrt(p * (1 - p) / n);
    if (verbose) console.log(`p=${p}: kept ${kept} (${((kept - (1 - p)) / sigma).toFixed(2)}σ)`);
    ok(Math.abs(kept - (1 - p)) <= 6 * sigma, `p=${p}: kept ${kept}, want ${1 - p} ± ${6 * sigma}`);
    // Another key: the two masks agree as independent ones would, (1 − p)² + p² of the time.
    const z = await gpu.read(dropout(gpu, ones, { p, key: dropoutKey(key, 1) }));
    const agree = y.reduce((s, v, i) => s + ((v !== 0) === (z[i] !== 0) ? 1 : 0), 0) / n;
    const want = (1 - p) ** 2 + p ** 2;
    const sAgree = Math.sqrt(want * (1 - want) / n);
    ok(Math.abs(agree - want) <= 6 * sAgree, `p=${p}: masks agree ${agree}, want ${want}`);
  }
  equal(dropoutKey(1, 2), dropoutKey(1, 2));
});

/**
 * Float64 attention with the kernel's dropout mask: out_i = Σ_j P_ij Z_ij/(1 − p) v_j over real
 * keys, P the undropped softmax; loss Σ out ∘ r.
 */
function droppedAttention(
  x: { q: Float64Array; k: Float64Array; v: Float64Array; r: Float64Array },
  lengths: number[],
  dims: { batch: number; seq: number; heads: number; headDim: number },
  drop: { p: number; key: number; firstSequence: number },
): { out: Float64Array; loss: number } {
  const { batch: B, seq: T, heads: H, headDim: D } = dims;
  const out = new Float64Array(B * T * H * D);
  const scale = 1 / Math.sqrt(D);
  const at = (b: number, t: number, h: number) => ((b * T + t) * H + h) * D;
  let loss = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(lengths[b]);
        let mx = -Infinity;
        for (let j = 0; j < lengths[b]; j++) {
          let d = 0;
          for (let f = 0; f < D; f++) d += x.q[at(b, i, h) + f] * x.k[at(b, j, h) + f];
          s[j] = d * scale;
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < s.length; j++) z += s[j] = Math.exp(s[j] - mx);
        for (let j = 0; j < s.length; j++) {
          const idx = (((drop.firstSequence + b) * H + h) * T + i) * T + j;
          const keep = dropoutKeep(drop.key, idx, drop.p) ? 1 / (1 - drop.p) : 0;
          for (let f = 0; f < D; f++) {
            out[at(b, i, h) + f] += s[j] / z * keep * x.v[at(b, j, h) + f];
          }
        }
        for (let f = 0; f < D; f++) loss += out[at(b, i, h) + f] * x.r[at(b, i, h) + f];
      }
    }
  }
  return { out, loss };
}

// Measured over 6 seeds (TEST_VERBOSE=1): out ≤ 1.2e-7 relative (limit 17×), gradients against
// central differences of the float64 loss ≤ 4.5e-7 (limit 11×).
const ATT_OUT_TOL = 2e-6;
const ATT_FD_TOL = 5e-6;

gpuTest(
  "attention-probability dropout: out and gradients match float64 with the same mask",
  async (gpu) => {
    const seed = freshSeed("attention dropout");
    const random = rng(seed);
    const dims = { batch: 2, seq: 7, heads: 2, headDim: 8 };
    const lengths = [7, 4];
    const n = dims.batch * dims.seq * dims.heads * dims.headDim;
    const x = {
      q: Float64Array.from(randn(n, random)),
      k: Float64Array.from(randn(n, random)),
      v: Float64Array.from(randn(n, random)),
      r: Float64Array.from(randn(n, random)),
    };
    const drop = { p: 0.3, key: dropoutKey(seed, 5), firstSequence: 3 };
    const mask = new Float32Array(dims.batch * dims.seq);
    lengths.forEach((len, b) => mask.fill(1, b * dims.seq, b * dims.seq + len));
    const shape = [dims.batch, dims.seq, dims.heads * dims.headDim];
    const t = (a: Float64Array) => gpu.fromArray(Float32Array.from(a), shape);
    const [q, k, v, r] = [t(x.q), t(x.k), t(x.v), t(x.r)];
    const m = gpu.fromArray(mask, [dims.batch, dims.seq]);
    const { out, lse } = attention(gpu, q, k, v, m, dims, drop);
    const g = attentionBackward(gpu, r, q, k, v, out, lse, m, dims, drop);
    const [gOut, dq, dk, dv] = await gpu.readMany([out, g.dq, g.dk, g.dv]);
    // Float32 inputs, float64 arithmetic.
    const x32 = {
      q: Float64Array.from(Float32Array.from(x.q)),
      k: Float64Array.from(Float32Array.from(x.k)),
      v: Float64Array.from(Float32Array.from(x.v)),
      r: Float64Array.from(Float32Array.from(x.r)),
    };
    const ref = droppedAttention(x32, lengths, dims, drop);
    const outErr = relErr(gOut, ref.out);
    ok(outErr <= ATT_OUT_TOL, `out: relative error ${outErr}`);
    const undropped = droppedAttention(x32, lengths, dims, { ...drop, p: 0 });
    ok(relErr(undropped.out, ref.out) > 0.1, "the mask changed nothing");
    let worst = 0;
    for (const [name, grad] of [["q", dq], ["k", dk], ["v", dv]] as const) {
      const w = x32[name];
      worst = Math.max(
        worst,
        assertFiniteDifferences(
          `d${name}`,
          grad,
          w,
          () => droppedAttention(x32, lengths, dims, drop).loss,
          3,
          ATT_FD_TOL,
        ),
      );
    }
    if (verbose) console.log(`attention dropout: out ${outErr}, finite differences ${worst}`);
    gpu.release(q, k, v, r, m, out, lse, g.dq, g.dk, g.dv);
  },
);
