/**
 * Matmul throughput on the shapes that matter: square 512³ and 1024³, and XLM-R base's FFN-in
 * (X[2048,768]·W[3072,768]ᵀ) and attention projection (X[2048,768]·W[768,768]ᵀ). Each iteration
 * records one product and waits for it; GFLOP/s is printed once per shape from the median
 * iteration. Benches measure only: correctness lives in tests/kernels/matmul_test.ts.
 * @module
 */
import { Gpu } from "../kernels/runtime.ts";
import { linear, matmul } from "../kernels/matmul.ts";

const gpu = await Gpu.create();

/** A product to time: `matmul` of [m,k]·[k,n], or `linear` of X[m,k]·W[n,k]ᵀ. */
interface Shape {
  name: string;
  kind: "matmul" | "linear";
  m: number;
  n: number;
  k: number;
}

const SHAPES: Shape[] = [
  { name: "matmul 512³", kind: "matmul", m: 512, n: 512, k: 512 },
  { name: "matmul 1024³", kind: "matmul", m: 1024, n: 1024, k: 1024 },
  { name: "linear XLM-R FFN in 2048×3072×768", kind: "linear", m: 2048, n: 3072, k: 768 },
  { name: "linear XLM-R attn proj 2048×768×768", kind: "linear", m: 2048, n: 768, k: 768 },
];

// Software adapters run a 1024³ product in about a second: keep the iteration counts small.
const ITERATIONS = 3;
const WARMUP = 1;

for (const s of SHAPES) {
  const a = gpu.alloc([s.m, s.k], "f32", "bench.a");
  const b = gpu.alloc(s.kind === "linear" ? [s.n, s.k] : [s.k, s.n], "f32", "bench.b");
  const out = gpu.alloc([s.m, s.n], "f32", "bench.out");
  gpu.fill(a, 0.5);
  gpu.fill(b, 0.25);
  const times: number[] = [];
  Deno.bench({
    name: s.name,
    group: "matmul",
    n: ITERATIONS,
    warmup: WARMUP,
    async fn() {
      const t0 = performance.now();
      if (s.kind === "linear") linear(gpu, a, b, null, out);
      else matmul(gpu, a, b, {}, out);
      await gpu.sync();
      times.push(performance.now() - t0);
      if (times.length === ITERATIONS + WARMUP) {
        const sorted = times.slice(WARMUP).sort((x, y) => x - y);
        const ms = sorted[Math.floor(sorted.length / 2)];
        console.log(
          `${s.name}: ${(2 * s.m * s.n * s.k / ms / 1e6).toFixed(2)} GFLOP/s (${ms.toFixed(1)} ms)`,
        );
      }
    },
  });
}
