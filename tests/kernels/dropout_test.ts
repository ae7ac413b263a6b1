/**
 * Dropout: the GPU mask is the host mask `dropoutKeep` element for element (so the float64
 * model reference can apply the same mask), kept values are scaled by exactly f32(1/(1 − p)),
 * p = 0 is the identity, a chunk at an offset gets the whole tensor's mask there, and the kept
 * fraction is 1 − p within binomial noise.
 */
import { equal, ok } from "node:assert/strict";
import { dropout, dropoutKeep, dropoutKey } from "../../kernels/dropout.ts";
import { freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

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
