import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { countAhead, rankRelevant, scoreBlock } from "../../kernels/retrieval_rank.ts";
import { freshSeed, gpuTest, rng } from "../_helpers.ts";

/** CPU rank in float64: candidates scoring higher, plus equal ones with a lower index, plus one. */
function cpuRank(
  q: Float32Array,
  c: Float32Array,
  dim: number,
  qi: number,
  ci: number,
  lo: number,
  hi: number,
): [number, number] {
  const nc = c.length / dim;
  const dot = (j: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += q[qi * dim + k] * c[j * dim + k];
    return s;
  };
  const own = dot(ci);
  let all = 0, rng = 0;
  for (let j = 0; j < nc; j++) {
    const v = dot(j);
    if (v > own || (v === own && j < ci)) {
      all++;
      if (j >= lo && j < hi) rng++;
    }
  }
  return [all + 1, rng + 1];
}

// Small integers make every dot product exact in f32, so ties are real ties on both sides.
function intEmbeddings(n: number, dim: number, r: () => number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 4) - 1;
  return out;
}

gpuTest(
  "rank kernel matches a CPU rank with many ties, for every block and chunk size",
  async (gpu) => {
    const r = rng(freshSeed("retrieval_rank"));
    const dim = 5 + Math.floor(r() * 20),
      nq = 9 + Math.floor(r() * 30),
      nc = 40 + Math.floor(r() * 50);
    const q = intEmbeddings(nq, dim, r);
    const c = intEmbeddings(nc, dim, r);
    for (let j = 0; j < 6; j++) c.copyWithin((nc - 1 - j) * dim, j * dim, (j + 1) * dim); // duplicates
    const query: number[] = [], candidate: number[] = [], lo: number[] = [], hi: number[] = [];
    const third = Math.floor(nc / 3);
    for (let i = 0; i < nq; i++) {
      for (let t = 0; t < 3; t++) {
        const ci = Math.floor(r() * nc);
        if (candidate.some((x, k) => x === ci && query[k] === i)) continue;
        query.push(i);
        candidate.push(ci);
        const band = Math.min(2, Math.floor(ci / third));
        lo.push(band * third);
        hi.push(band === 2 ? nc : (band + 1) * third);
      }
    }
    const pairs = {
      query: new Uint32Array(query),
      candidate: new Uint32Array(candidate),
      lo: new Uint32Array(lo),
      hi: new Uint32Array(hi),
    };
    const want = query.map((qi, k) => cpuRank(q, c, dim, qi, candidate[k], lo[k], hi[k]));
    for (const [blockSize, queryChunk] of [[nc, nq], [1, nq], [7, 4], [16, 1], [nc - 1, 5]]) {
      const got = await rankRelevant(gpu, q, c, dim, pairs, { blockSize, queryChunk });
      deepEqual(Array.from(got.rank), want.map((w) => w[0]), `rank, block ${blockSize}`);
      deepEqual(
        Array.from(got.rankInRange),
        want.map((w) => w[1]),
        `range rank, block ${blockSize}`,
      );
    }
  },
);

gpuTest("scoreBlock computes dot products on an awkward shape", async (gpu) => {
  const r = rng(freshSeed("scoreBlock"));
  const nq = 17, nb = 35, h = 19;
  const q = intEmbeddings(nq, h, r), c = intEmbeddings(nb, h, r);
  const tq = gpu.fromArray(q, [nq, h]), tc = gpu.fromArray(c, [nb, h]);
  const s = await gpu.read(scoreBlock(gpu, tq, tc));
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < nb; j++) {
      let want = 0;
      for (let k = 0; k < h; k++) want += q[i * h + k] * c[j * h + k];
      equal(s[i * nb + j], want, `score [${i}, ${j}]`);
    }
  }
  gpu.release(tq, tc);
});

gpuTest("identical candidates rank in candidate order", async (gpu) => {
  const q = new Float32Array([0.6, 0.8]);
  const c = new Float32Array([0.6, 0.8, 0, 1, 0.6, 0.8, 0.6, 0.8]);
  const pairs = { query: new Uint32Array([0, 0, 0]), candidate: new Uint32Array([0, 2, 3]) };
  const got = await rankRelevant(gpu, q, c, 2, pairs, { blockSize: 3 });
  deepEqual(Array.from(got.rank), [1, 2, 3]);
});

gpuTest("rank kernels reject bad shapes and out-of-range pairs before dispatching", async (gpu) => {
  const q = new Float32Array(4), c = new Float32Array(6);
  await rejects(
    rankRelevant(gpu, q, c, 2, { query: new Uint32Array([0]), candidate: new Uint32Array([3]) }),
    RangeError,
  );
  await rejects(
    rankRelevant(gpu, q, new Float32Array(5), 2, {
      query: new Uint32Array([0]),
      candidate: new Uint32Array([0]),
    }),
    RangeError,
  );
  const a = gpu.alloc([2, 3]), b = gpu.alloc([2, 4]);
  throws(() => scoreBlock(gpu, a, b), RangeError);
  const p = gpu.alloc([2, 3], "u32"), own = gpu.alloc([2]), cnt = gpu.alloc([2, 2], "u32");
  throws(() => countAhead(gpu, "count", a, 0, p, own, cnt), TypeError);
  gpu.release(a, b, p, own, cnt);
});

gpuTest(
  "queries with more relevant candidates than one count pass holds rank like the CPU",
  async (gpu) => {
    const r = rng(freshSeed("retrieval_rank_many"));
    // dim 8 reads embeddings as vec4; 61 candidates leave padded score rows.
    const dim = 8, nq = 5, nc = 61;
    const q = intEmbeddings(nq, dim, r), c = intEmbeddings(nc, dim, r);
    const query: number[] = [], candidate: number[] = [], lo: number[] = [], hi: number[] = [];
    // Query 3 has 40 relevant candidates (three groups), query 1 has 17, query 0 has 1, in a
    // scrambled pair order; the ranges are bands of 20 candidates.
    for (const [qi, n] of [[3, 40], [0, 1], [1, 17]]) {
      for (let k = 0; k < n; k++) {
        const ci = (k * 37 + qi * 11) % nc;
        query.push(qi);
        candidate.push(ci);
        lo.push(Math.floor(ci / 20) * 20);
        hi.push(Math.min(nc, Math.floor(ci / 20) * 20 + 20));
      }
    }
    const perm = query.map((_, i) => i).sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101));
    const pick = (a: number[]) => new Uint32Array(perm.map((i) => a[i]));
    const pairs = { query: pick(query), candidate: pick(candidate), lo: pick(lo), hi: pick(hi) };
    const want = perm.map((i) => cpuRank(q, c, dim, query[i], candidate[i], lo[i], hi[i]));
    for (const [blockSize, queryChunk] of [[nc, nq], [13, 2], [4, 1], [60, 3]]) {
      const got = await rankRelevant(gpu, q, c, dim, pairs, { blockSize, queryChunk });
      deepEqual(Array.from(got.rank), want.map((w) => w[0]), `rank, block ${blockSize}`);
      deepEqual(Array.from(got.rankInRange), want.map((w) => w[1]), `range, block ${blockSize}`);
    }
  },
);

gpuTest("countAhead ranks each pair of an unpadded score block on its own", async (gpu) => {
  // 5 candidates: rows are not vec4-aligned, so the scalar path reads them.
  const scores = gpu.fromArray(
    new Float32Array([0.5, 0.1, 0.5, 0.9, 0.5, 0.3, 0.3, 0.2, 0.3, 0.3]),
    [2, 5],
  );
  // (query, candidate, lo, hi): candidates 2 and 4 of query 0; 0 and 3 of query 1.
  const pairs = gpu.fromArray(
    new Uint32Array([0, 2, 0, 5, 0, 4, 3, 5, 1, 0, 0, 2, 1, 3, 2, 5]),
    [4, 4],
    "u32",
  );
  const own = gpu.alloc([4]), counts = gpu.zeros([4, 2], "u32");
  countAhead(gpu, "gather", scores, 0, pairs, own, counts);
  countAhead(gpu, "count", scores, 0, pairs, own, counts);
  deepEqual(Array.from(await gpu.read(counts, "u32")), [2, 2, 3, 1, 0, 0, 2, 0]);
  gpu.release(scores, pairs, own, counts);
});

gpuTest("the large score block gives the same ranks and bits as the small one", async (gpu) => {
  const r = rng(freshSeed("retrieval_rank_large"));
  const dim = 12, nq = 130, nc = 150; // 130 × 150 scores take the 16×16 register block
  const q = intEmbeddings(nq, dim, r), c = intEmbeddings(nc, dim, r);
  const tq = gpu.fromArray(q, [nq, dim]), tc = gpu.fromArray(c, [nc, dim]);
  const big = await gpu.read(scoreBlock(gpu, tq, tc));
  // One query at a time: 1 × 150 scores take the 4×4 block.
  for (const i of [0, 77, 129]) {
    const one = gpu.fromArray(q.slice(i * dim, (i + 1) * dim), [1, dim]);
    deepEqual(await gpu.read(scoreBlock(gpu, one, tc)), big.slice(i * nc, (i + 1) * nc));
    gpu.release(one);
  }
  const query = new Uint32Array(nq * 2).map((_, k) => k >> 1);
  const candidate = new Uint32Array(nq * 2).map((_, k) => (k * 29) % nc);
  const got = await rankRelevant(gpu, q, c, dim, { query, candidate });
  const want = Array.from(query, (qi, k) => cpuRank(q, c, dim, qi, candidate[k], 0, nc)[0]);
  deepEqual(Array.from(got.rank), want);
  gpu.release(tq, tc);
});
