/**
 * Bit-identity check for the kernels: runs a fixed set of kernel calls (matmul variants incl.
 * split-K, forced tiles and f16 operands, attention forward/backward, layer norm forward/backward
 * in both variants, softmax, GELU/tanh, embedding gather/scatter, pooling, L2 norm, reductions,
 * InfoNCE, AdamW, gradient norm, casts, retrieval ranking) on fixed seeded inputs and prints the
 * SHA-256 of each output's bytes, then one hash over all of them.
 *
 * Run it before and after a change that must not move any number (a refactor of the kernel
 * plumbing) and compare: `deno run -A scripts/kernel_hashes.ts [--out FILE]`. Hashes depend on the
 * adapter. On lavapipe (Mesa llvmpipe) all 105 outputs hashed the same before and after the kernel
 * declarations of issue 12 (`ALL` 03f259c2fdf32cc7455958f2eb8713c44d05d0df68d0d65b1aaa7243cc1f4e2f);
 * the "before" run forced the switches through the then module-global `forceMatmulTiles`,
 * `forceMatmulSplitK` and `forceMatmulF16Math` instead of `gpu.options.matmul`.
 * @module
 */
import { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { linear, linearBackward, linearGelu, matmul, type MatmulTiles } from "../kernels/matmul.ts";
import { attention, attentionBackward } from "../kernels/attention.ts";
import { addLayerNorm, layerNorm, layerNormBackward } from "../kernels/layer_norm.ts";
import { softmax, softmaxBackward } from "../kernels/softmax.ts";
import { gelu, geluBackward, tanh, tanhBackward } from "../kernels/gelu.ts";
import {
  buildScatterPlan,
  gatherRows,
  releaseScatterPlan,
  scatterAddRows,
} from "../kernels/embedding.ts";
import { poolFirst, poolFirstBackward, poolMean, poolMeanBackward } from "../kernels/pooling.ts";
import { l2Normalize, l2NormalizeBackward } from "../kernels/l2_norm.ts";
import { mean, sum, sumOfSquares } from "../kernels/reduce.ts";
import { infoNce } from "../kernels/info_nce.ts";
import { adamwStep } from "../kernels/adamw.ts";
import { gradNorm } from "../kernels/grad_norm.ts";
import { castF16ToF32, castF32ToF16 } from "../kernels/cast.ts";
import { add } from "../kernels/elementwise.ts";
import { countAhead, rankRelevant, scoreBlock } from "../kernels/retrieval_rank.ts";

/** mulberry32, as in the tests. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(20261202);
function randn(n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/** Matmul switches for the calls in `fn` (tiles, split-K, f16 math), restored afterwards. */
async function withMatmul(
  gpu: Gpu,
  o: { tiles?: MatmulTiles; splits?: number; f16Math?: boolean },
  fn: () => Promise<void>,
): Promise<void> {
  const saved = { ...gpu.options.matmul };
  Object.assign(gpu.options.matmul, o);
  try {
    await fn();
  } finally {
    gpu.options.matmul = saved;
  }
}

const gpu = await Gpu.create();
const results: [string, string][] = [];
async function hash(name: string, ...ts: Tensor[]): Promise<void> {
  for (const [i, t] of ts.entries()) {
    const bytes = new Uint8Array(await rawBytes(t));
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
    results.push([ts.length > 1 ? `${name}[${i}]` : name, hex]);
  }
}
/** A tensor's bytes as stored (f16 stays f16). */
const rawBytes = (t: Tensor) =>
  (gpu as unknown as { readBytes(t: Tensor): Promise<ArrayBuffer> }).readBytes(t);
const T = (data: Float32Array | Uint32Array, shape: number[]) => gpu.fromArray(data, shape);

// ---------------------------------------------------------------- matmul
{
  const a = T(randn(37 * 53), [37, 53]), b = T(randn(53 * 29), [53, 29]);
  await hash("matmul.tiny", matmul(gpu, a, b));
  const at = T(randn(53 * 37), [53, 37]), bt = T(randn(29 * 53), [29, 53]);
  await hash("matmul.transAB", matmul(gpu, at, bt, { transA: true, transB: true, alpha: 0.5 }));
  const acc = T(randn(37 * 29), [37, 29]);
  await hash("matmul.accumulate", matmul(gpu, a, b, { accumulate: true, alpha: -1.5 }, acc));
  const ba = T(randn(3 * 16 * 24), [3, 16, 24]), bb = T(randn(3 * 24 * 20), [3, 24, 20]);
  await hash("matmul.batched", matmul(gpu, ba, bb));
  const big = T(randn(96 * 128), [96, 128]), bigW = T(randn(160 * 128), [160, 128]);
  const bias = T(randn(160), [160]);
  await hash("linear.large", linear(gpu, big, bigW, bias));
  const lg = linearGelu(gpu, big, bigW, bias);
  await hash("linearGelu", lg.pre, lg.y);
  const x = T(randn(40 * 1037), [40, 1037]), w = T(randn(40 * 1037), [40, 1037]);
  const b40 = T(randn(40), [40]);
  await withMatmul(gpu, { splits: 3 }, async () => {
    await hash("linear.splitK3", linear(gpu, x, w, b40));
    const g = linearGelu(gpu, x, w, b40);
    await hash("linearGelu.splitK3", g.pre, g.y);
    const acc2 = T(randn(40 * 40), [40, 40]);
    await hash("matmul.splitK3.acc", matmul(gpu, x, w, { transB: true, accumulate: true }, acc2));
  });
  await hash(
    "linear.splitKauto",
    linear(gpu, T(randn(2048 * 64), [2048, 64]), T(randn(64 * 64), [64, 64]), null),
  );
  {
    const xx = T(randn(300 * 64), [300, 64]), ww = T(randn(48 * 64), [48, 64]);
    const dy = T(randn(300 * 48), [300, 48]);
    const dw = gpu.zeros([48, 64]), db = gpu.zeros([48]);
    const dx = linearBackward(gpu, xx, ww, dy, dw, db)!;
    await hash("linearBackward", dx, dw, db);
  }
  await withMatmul(gpu, { tiles: { WX: 4, WY: 8, BK: 8, TM4: 2, TN4: 1 } }, async () => {
    await hash("matmul.forcedTiles", matmul(gpu, a, b));
  });
  if (gpu.hasF16) {
    const xh = castF32ToF16(gpu, big), wh = castF32ToF16(gpu, bigW);
    await hash("cast.f32ToF16", xh);
    await hash("cast.f16ToF32", castF16ToF32(gpu, xh));
    await hash("linear.f16", linear(gpu, xh, wh, bias));
    await hash("linear.f16w", linear(gpu, big, wh, bias));
    await withMatmul(gpu, { f16Math: true }, async () => {
      await hash("linear.f16Math", linear(gpu, xh, wh, bias));
    });
    await withMatmul(gpu, { splits: 2 }, async () => {
      await hash("linear.f16.splitK2", linear(gpu, xh, wh, bias));
    });
  }
  await hash("add", add(gpu, a, T(randn(37 * 53), [37, 53])));
}

// ---------------------------------------------------------------- attention
for (const headDim of [4, 16, 64]) {
  const dims = { batch: 2, seq: 11, heads: 2, headDim };
  const n = 2 * 11 * 2 * headDim;
  const q = T(randn(n), [2, 11, 2 * headDim]), k = T(randn(n), [2, 11, 2 * headDim]);
  const v = T(randn(n), [2, 11, 2 * headDim]);
  const m = new Float32Array(22);
  m.fill(1, 0, 11);
  m.fill(1, 11, 18);
  const mask = T(m, [2, 11]);
  const { out, lse } = attention(gpu, q, k, v, mask, dims);
  await hash(`attention.d${headDim}`, out, lse);
  const dOut = T(randn(n), [2, 11, 2 * headDim]);
  const g = attentionBackward(gpu, dOut, q, k, v, out, lse, mask, dims);
  await hash(`attentionBackward.d${headDim}`, g.dq, g.dk, g.dv);
}

// ---------------------------------------------------------------- layer norm
for (const n of [64, 30, 768]) {
  const rows = 13;
  const x = T(randn(rows * n), [rows, n]), r = T(randn(rows * n), [rows, n]);
  const gamma = T(randn(n), [n]), beta = T(randn(n), [n]);
  const ln = layerNorm(gpu, x, gamma, beta, 1e-5);
  await hash(`layerNorm.${n}`, ln.y, ln.mean, ln.rstd);
  const aln = addLayerNorm(gpu, x, r, gamma, beta, 1e-12);
  await hash(`addLayerNorm.${n}`, aln.y, aln.mean, aln.rstd, aln.sum);
  const dy = T(randn(rows * n), [rows, n]);
  const dg = gpu.zeros([n]), dbeta = gpu.zeros([n]);
  const dx = layerNormBackward(gpu, dy, x, ln.mean, ln.rstd, gamma, dg, dbeta);
  await hash(`layerNormBackward.${n}`, dx, dg, dbeta);
}

// ---------------------------------------------------------------- softmax, gelu, tanh
{
  const x = T(randn(6 * 7 * 19), [6, 7, 19]);
  const m = new Float32Array(6 * 19).map((_, i) => (i % 5 === 3 ? 0 : 1));
  const y = softmax(gpu, x, T(m, [6, 19]), 7);
  await hash("softmax.mask", y);
  await hash("softmax", softmax(gpu, x));
  await hash("softmaxBackward", softmaxBackward(gpu, T(randn(6 * 7 * 19), [6, 7, 19]), y));
  const g = T(randn(1000, 3), [1000]);
  await hash("gelu", gelu(gpu, g));
  await hash("geluBackward", geluBackward(gpu, T(randn(1000), [1000]), g));
  const th = tanh(gpu, g);
  await hash("tanh", th);
  await hash("tanhBackward", tanhBackward(gpu, T(randn(1000), [1000]), th));
}

// ---------------------------------------------------------------- embedding
{
  const table = T(randn(50 * 24), [50, 24]);
  const idsHost = new Uint32Array(37).map(() => Math.floor(random() * 50));
  const ids = gpu.fromArray(idsHost, [37], "u32");
  const out = gpu.zeros([37, 24]);
  gatherRows(gpu, table, ids, out);
  gatherRows(gpu, T(randn(20 * 24), [20, 24]), ids, out, 20, true);
  await hash("gatherRows", out);
  const plan = buildScatterPlan(gpu, idsHost);
  const dTable = T(randn(30 * 24), [30, 24]);
  scatterAddRows(gpu, T(randn(37 * 24), [37, 24]), plan, dTable, 10);
  await hash("scatterAddRows", dTable);
  releaseScatterPlan(gpu, plan);
}

// ---------------------------------------------------------------- pooling, l2, reductions
{
  const h = T(randn(3 * 9 * 20), [3, 9, 20]);
  const m = new Float32Array(27).map((_, i) => (i % 9 < 3 + (i % 4) ? 1 : 0));
  const mask = T(m, [3, 9]);
  await hash("poolFirst", poolFirst(gpu, h));
  await hash("poolFirstBackward", poolFirstBackward(gpu, T(randn(60), [3, 20]), 9));
  await hash("poolMean", poolMean(gpu, h, mask));
  await hash("poolMeanBackward", poolMeanBackward(gpu, T(randn(60), [3, 20]), mask));
  const e = T(randn(7 * 33), [7, 33]);
  const l2 = l2Normalize(gpu, e);
  await hash("l2Normalize", l2.y, l2.norm);
  await hash(
    "l2NormalizeBackward",
    l2NormalizeBackward(gpu, T(randn(7 * 33), [7, 33]), l2.y, l2.norm),
  );
  const big = T(randn(5000), [5000]);
  await hash("sum", sum(gpu, big));
  await hash("mean", mean(gpu, big));
  await hash("sumOfSquares", sumOfSquares(gpu, big));
  await hash("sum.wg32", sum(gpu, big, { workgroupSize: 32 }));
}

// ---------------------------------------------------------------- InfoNCE, AdamW, grad norm
{
  const q = T(randn(6 * 32), [6, 32]), p = T(randn(12 * 32), [12, 32]);
  const r = infoNce(gpu, q, p, { temperature: 0.05 });
  await hash("infoNce", r.stats, r.dq, r.dp);
  const rs = infoNce(gpu, q, p, { temperature: 0.1, symmetric: true });
  await hash("infoNce.symmetric", rs.stats, rs.dq, rs.dp);
  const grads = [T(randn(300), [300]), T(randn(77, 0.1), [77]), T(randn(1025), [1025])];
  const gn = gradNorm(gpu, grads, 1.0);
  await hash("gradNorm", gn);
  const param = T(randn(300), [300]), m = T(randn(300, 0.01), [300]), v = gpu.zeros([300]);
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
  adamwStep(gpu, param, grads[0], m, v, h);
  await hash("adamw", param, m, v);
  adamwStep(gpu, param, grads[0], m, v, { ...h, step: 4 }, gn);
  await hash("adamw.clipped", param, m, v);
}

// ---------------------------------------------------------------- retrieval ranking
{
  const nq = 9, nc = 70, dim = 16;
  const qs = randn(nq * dim), cs = randn(nc * dim);
  await hash("scoreBlock", scoreBlock(gpu, T(qs, [nq, dim]), T(cs, [nc, dim])));
  const scoreHost = randn(3 * 20);
  const scores = T(scoreHost, [3, 20]);
  const pairs = gpu.fromArray(
    new Uint32Array([0, 4, 0, 20, 1, 7, 5, 10, 2, 19, 0, 20]),
    [3, 4],
    "u32",
  );
  const own = gpu.alloc([3]);
  const counts = gpu.zeros([3, 2], "u32");
  countAhead(gpu, "gather", scores, 0, pairs, own, counts);
  countAhead(gpu, "count", scores, 0, pairs, own, counts);
  await hash("countAhead", own, counts);
  const query = new Uint32Array(30).map((_, i) => i % nq);
  const lo = new Uint32Array(30).map((_, i) => (i % 3) * 20);
  const hi = lo.map((l) => Math.min(nc, l + 25));
  const candidate = lo.map((l, i) => l + Math.floor(random() * (hi[i] - l)));
  const rr = await rankRelevant(gpu, qs, cs, dim, { query, candidate, lo, hi }, {
    blockSize: 32,
    queryChunk: 4,
  });
  const rrT = gpu.fromArray(new Uint32Array([...rr.rank, ...rr.rankInRange]), [60], "u32");
  await hash("rankRelevant", rrT);
}

const lines = results.map(([n, h]) => `${h}  ${n}`);
const all = new Uint8Array(
  await crypto.subtle.digest("SHA-256", new TextEncoder().encode(lines.join("\n"))),
);
lines.push(`${[...all].map((b) => b.toString(16).padStart(2, "0")).join("")}  ALL`);
const text = lines.join("\n") + "\n";
const outIdx = Deno.args.indexOf("--out");
if (outIdx >= 0) await Deno.writeTextFile(Deno.args[outIdx + 1], text);
console.log(text);
gpu.destroy();
