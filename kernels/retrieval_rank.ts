/**
 * Ranks of relevant candidates on the GPU, without sorting the corpus: for every
 * (query, relevant candidate) pair the kernel counts the candidates scoring strictly higher plus
 * the equal-scoring ones with a lower index, so rank = count + 1 and ties go to candidate order.
 *
 * Scores are dot products (cosine similarity when the rows are L2-normalised), each the
 * sequential f32 sum over the embedding, computed by a register-blocked kernel. Candidates are
 * processed in blocks (one score matrix `[queries, block]` at a time) so that corpora larger than
 * one binding fit; queries are processed in chunks for the same reason. The pairs of a query are
 * grouped (up to 16 per group) so that one workgroup makes a single pass over the query's score
 * row for all of them. Every score comes out of the same pipeline and the same arithmetic, so the
 * result is bit-for-bit independent of the block and chunk sizes. All chunks are recorded before
 * one read-back. Measurements: `eval/RANKING_NOTES.md`.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels, type TemplateVars } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const PRM = {
  nq: "u32",
  nb: "u32",
  h: "u32",
  ld: "u32",
  block_start: "u32",
  q0: "u32",
  first: "u32",
  n: "u32",
} as const;
const VEC_Q = { access: "read", type: (t: TemplateVars) => t.vec_q ? "vec4f" : "f32" } as const;
const SCORES = { access: "read", type: (t: TemplateVars) => t.vec_s ? "vec4f" : "f32" } as const;
const U32R = { access: "read", type: "u32" } as const;
const RANK_T = { vec_q: false, vec_s: false, K: 1, WG: 16, TM: 4, TN: 4 };
const RANK = kernels("retrieval_rank.wgsl", {
  score: {
    entries: ["score"],
    uniforms: PRM,
    variants: [{ ...RANK_T, vec_q: true }, RANK_T],
    bindings: { queries: VEC_Q, block: VEC_Q, out: { access: "read_write", wgsl: "out_scores" } },
  },
  gather: {
    entries: ["gather"],
    uniforms: PRM,
    variants: [{ ...RANK_T, vec_s: true }, RANK_T],
    bindings: { scores: SCORES, pairs: U32R, own: "read_write" },
  },
  count: {
    entries: ["count"],
    uniforms: PRM,
    variants: [{ ...RANK_T, vec_s: true, grouped: true }, { ...RANK_T, K: 2, grouped: false }],
    bindings: {
      scores: SCORES,
      pairs: U32R,
      own: "read_write",
      groups: { ...U32R, optional: true },
      counts: { access: "read_write", type: "u32" },
    },
  },
});
/** Smallest side of a score workgroup's tile (8 threads × 4 scores); bounds the grid. */
const TILE = 32;
const MAX_GROUPS = 65535;
/** Default cap on one score matrix (bytes), below any device's binding limit we target. */
const SCORE_BYTES = 128 * 2 ** 20;
/** Most pairs one count workgroup compares against in its single pass over a score row. */
const MAX_SLOTS = 16;

/** The (query, relevant candidate) pairs to rank, as parallel arrays. */
export interface RankPairs {
  /** Query row of each pair. */
  query: Uint32Array;
  /** Candidate row of each pair (global index into the candidates). */
  candidate: Uint32Array;
  /**
   * Optional candidate range [lo, hi) per pair (e.g. the candidate's language): the rank within
   * that range is reported too. Defaults to the whole pool.
   */
  lo?: Uint32Array;
  /** End of each pair's range (exclusive); given together with `lo`. */
  hi?: Uint32Array;
}

/** Options of {@linkcode rankRelevant}. */
export interface RankOptions {
  /** Candidates per block (default: as many as fit one binding, at most 2^20). */
  blockSize?: number;
  /** Queries per chunk (default: as many as keep one score matrix under 128 MiB). */
  queryChunk?: number;
}

/** Ranks of each pair (1-based): in the whole pool and within the pair's range. */
export interface RankResult {
  rank: Uint32Array;
  rankInRange: Uint32Array;
}

/** Records the score kernel into `out` with row stride `ld` (shapes already checked). */
function recordScores(gpu: Gpu, queries: Tensor, block: Tensor, out: Tensor, ld: number): void {
  const [nq, h] = queries.shape;
  const nb = block.shape[0];
  const vec = h % 4 === 0 && queries.offset % 16 === 0 && block.offset % 16 === 0;
  // Scores per thread: a 16×16 register block makes 32 multiply-adds per vec4 load (lavapipe pays
  // per load; 16×16 ran 1.8× faster than 8×8 on 3570×3652×64, see eval/RANKING_NOTES.md); tiny
  // blocks take 4×4, which compiles in a fraction of the time. Every shape gives the same bits.
  const b = nq * nb < 128 * 128 ? 4 : 16;
  gpu.run(
    RANK.score,
    { template: { vec_q: vec, vec_s: false, K: 1, WG: 64, TM: b, TN: b } },
    { queries, block, out },
    { nq, nb, h, ld, block_start: 0, q0: 0, first: 0, n: 0 },
    [Math.ceil(nb / (8 * b)), Math.ceil(nq / (8 * b))],
  );
}

/**
 * Records `scores[q, j] = dot(queries[q], block[j])` for `queries` `[nq, h]` and `block`
 * `[nb, h]` into `out` `[nq, nb]` (allocated when not given). Each score is the sequential sum
 * over k, so it does not depend on where its query or candidate sits.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { scoreBlock } from "./retrieval_rank.ts";
 * const gpu = await Gpu.create();
 * const q = gpu.fromArray(new Float32Array([1, 0]), [1, 2]);
 * const c = gpu.fromArray(new Float32Array([1, 0, 0, 1, 0.5, 0.5]), [3, 2]);
 * console.log(await gpu.read(scoreBlock(gpu, q, c))); // Float32Array [1, 0, 0.5]
 * ```
 */
export function scoreBlock(gpu: Gpu, queries: Tensor, block: Tensor, out?: Tensor): Tensor {
  const op = "scoreBlock";
  if (
    queries.dtype !== "f32" || block.dtype !== "f32" || queries.shape.length !== 2 ||
    block.shape.length !== 2
  ) {
    throw new TypeError(`${op}: queries and block must be rank-2 f32, got ${queries}, ${block}`);
  }
  const [nq, h] = queries.shape;
  const [nb, hb] = block.shape;
  if (h !== hb) throw new RangeError(`${op}: embedding width mismatch (${h} vs ${hb})`);
  const y = out ?? gpu.alloc([nq, nb], "f32", "retrieval.scores");
  if (y.dtype !== "f32" || y.size !== nq * nb) {
    throw new RangeError(`${op}: out ${y} does not hold [${nq}, ${nb}]`);
  }
  const gx = Math.ceil(nb / TILE), gy = Math.ceil(nq / TILE);
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new RangeError(`${op}: [${nq}, ${nb}] needs more than ${MAX_GROUPS} tiles per side`);
  }
  if (nq > 0 && nb > 0) recordScores(gpu, queries, block, y, nb);
  return y;
}

/** Where the count kernel finds its inputs (shapes already checked). */
interface CountArgs {
  /** Score rows `[chunk queries, ld]`, of which the first `nb` columns are the block. */
  scores: Tensor;
  nb: number;
  ld: number;
  blockStart: number;
  /** Global index of the chunk's first query (pairs hold global query rows). */
  q0: number;
  pairs: Tensor;
  own: Tensor;
  counts: Tensor;
  /** u32 `[G, 2]` (first pair, pair count ≤ slots), or null: every pair its own group. */
  groups: Tensor | null;
  /** Pair slots of the count kernel (template size). */
  slots: number;
  /** Range of pairs (gather) or groups (count) to process. */
  first: number;
  n: number;
}

/** Count workgroup size: few threads per query on a CPU adapter, where the reduction costs. */
const countWg = (gpu: Gpu) => gpu.cpuAdapter ? 16 : 64;

function recordCount(gpu: Gpu, mode: "gather" | "count", a: CountArgs): void {
  if (a.n === 0) return;
  const vec = a.ld % 4 === 0 && a.scores.offset % 16 === 0;
  const template = { vec_q: false, vec_s: vec, K: a.slots, WG: countWg(gpu), TM: 1, TN: 1 };
  const params = {
    nq: 0,
    nb: a.nb,
    h: 0,
    ld: a.ld,
    block_start: a.blockStart,
    q0: a.q0,
    first: a.first,
    n: a.n,
  };
  const { scores, pairs, own } = a;
  if (mode === "gather") {
    gpu.run(
      RANK.gather,
      { template },
      { scores, pairs, own },
      params,
      Gpu.grid(Math.ceil(a.n / 64)),
    );
  } else {
    // Without groups every pair is its own group (the `grouped` variant reads the groups).
    gpu.run(
      RANK.count,
      { template: { ...template, grouped: a.groups !== null } },
      { scores, pairs, own, groups: a.groups, counts: a.counts },
      params,
      Gpu.grid(a.n),
    );
  }
}

/**
 * Records one pass of the count kernel over a score block `[nq, nb]` whose first candidate has
 * global index `blockStart`. `pairs` is u32 `[P, 4]` (query in the chunk, global candidate, range
 * lo, range hi). Mode `"gather"` stores each pair's own score into `own` `[P]` when its candidate
 * lies in the block; mode `"count"` adds the candidates ahead of each pair to `counts` `[P, 2]`
 * (whole pool, range). ({@linkcode rankRelevant} groups the pairs of a query so that one pass over
 * a score row serves all of them; this entry point ranks each pair on its own.)
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { countAhead } from "./retrieval_rank.ts";
 * const gpu = await Gpu.create();
 * const scores = gpu.fromArray(new Float32Array([0.2, 0.9, 0.2]), [1, 3]);
 * const pairs = gpu.fromArray(new Uint32Array([0, 2, 0, 3]), [1, 4]);
 * const own = gpu.alloc([1]);
 * const counts = gpu.zeros([1, 2], "u32");
 * countAhead(gpu, "gather", scores, 0, pairs, own, counts);
 * countAhead(gpu, "count", scores, 0, pairs, own, counts);
 * console.log(await gpu.read(counts)); // Uint32Array [2, 2]: 0.9 is higher, index 0 ties first
 * ```
 */
export function countAhead(
  gpu: Gpu,
  mode: "gather" | "count",
  scores: Tensor,
  blockStart: number,
  pairs: Tensor,
  own: Tensor,
  counts: Tensor,
): void {
  const op = "countAhead";
  if (scores.dtype !== "f32" || scores.shape.length !== 2) {
    throw new TypeError(`${op}: scores must be rank-2 f32, got ${scores}`);
  }
  if (pairs.dtype !== "u32" || pairs.shape.length !== 2 || pairs.shape[1] !== 4) {
    throw new TypeError(`${op}: pairs must be u32 [P, 4], got ${pairs}`);
  }
  const n = pairs.shape[0];
  if (own.dtype !== "f32" || own.size !== n) {
    throw new RangeError(`${op}: own must be f32 [${n}], got ${own}`);
  }
  if (counts.dtype !== "u32" || counts.size !== 2 * n) {
    throw new RangeError(`${op}: counts must be u32 [${n}, 2], got ${counts}`);
  }
  if (n > MAX_GROUPS * MAX_GROUPS) throw new RangeError(`${op}: too many pairs (${n})`);
  const nb = scores.shape[1];
  recordCount(gpu, mode, {
    scores,
    nb,
    ld: nb,
    blockStart,
    q0: 0,
    pairs,
    own,
    counts,
    groups: null,
    slots: 1,
    first: 0,
    n,
  });
}

/**
 * The 1-based rank of every (query, relevant candidate) pair among all candidates, scoring by dot
 * product, ties broken by candidate index. `queries` `[nq, dim]` and `candidates` `[N, dim]` are
 * row-major host arrays (normalise them first for cosine similarity). Only the counts come back
 * to the host; the score matrix never leaves the GPU.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { rankRelevant } from "./retrieval_rank.ts";
 * const gpu = await Gpu.create();
 * const q = new Float32Array([1, 0]);
 * const c = new Float32Array([0, 1, 1, 0, 0.6, 0.8]);
 * const pairs = { query: new Uint32Array([0, 0]), candidate: new Uint32Array([1, 2]) };
 * const r = await rankRelevant(gpu, q, c, 2, pairs, { blockSize: 2 });
 * console.log(r.rank); // Uint32Array [1, 2]
 * ```
 */
export async function rankRelevant(
  gpu: Gpu,
  queries: Float32Array,
  candidates: Float32Array,
  dim: number,
  pairs: RankPairs,
  opts: RankOptions = {},
): Promise<RankResult> {
  const op = "rankRelevant";
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`${op}: dim must be ≥ 1, got ${dim}`);
  if (queries.length % dim !== 0 || candidates.length % dim !== 0) {
    throw new RangeError(
      `${op}: queries (${queries.length}) and candidates (${candidates.length}) must be ` +
        `multiples of dim ${dim}`,
    );
  }
  const nq = queries.length / dim, nc = candidates.length / dim;
  const np = pairs.query.length;
  if (
    pairs.candidate.length !== np || (pairs.lo?.length ?? np) !== np ||
    (pairs.hi?.length ?? np) !== np || (pairs.lo === undefined) !== (pairs.hi === undefined)
  ) {
    throw new RangeError(`${op}: pair arrays differ in length or lo/hi given alone`);
  }
  for (let i = 0; i < np; i++) {
    const q = pairs.query[i], c = pairs.candidate[i];
    const lo = pairs.lo ? pairs.lo[i] : 0, hi = pairs.hi ? pairs.hi[i] : nc;
    if (q >= nq || c >= nc || !(lo <= c && c < hi && hi <= nc)) {
      throw new RangeError(
        `${op}: pair ${i} (query ${q}, candidate ${c}, range [${lo}, ${hi})) is out of bounds ` +
          `for ${nq} queries and ${nc} candidates`,
      );
    }
  }
  const rank = new Uint32Array(np), rankInRange = new Uint32Array(np);
  if (np === 0) return { rank, rankInRange };

  const maxBinding = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const rowBytes = dim * 4;
  const blockMax = Math.min(Math.floor(maxBinding / rowBytes), MAX_GROUPS * TILE);
  const nb = Math.min(nc, opts.blockSize ?? blockMax);
  if (!Number.isInteger(nb) || nb < 1 || nb > blockMax) {
    throw new RangeError(`${op}: blockSize must be an integer in [1, ${blockMax}], got ${nb}`);
  }
  // Score rows padded to a multiple of 4 so that the count kernel reads them as vec4.
  const ld = Math.ceil(nb / 4) * 4;
  const scoreCap = Math.min(maxBinding, SCORE_BYTES);
  const chunkMax = Math.max(
    1,
    Math.min(Math.floor(scoreCap / (ld * 4)), Math.floor(maxBinding / rowBytes), MAX_GROUPS * TILE),
  );
  const qc = Math.min(nq, opts.queryChunk ?? chunkMax);
  if (!Number.isInteger(qc) || qc < 1) {
    throw new RangeError(`${op}: queryChunk must be a positive integer, got ${qc}`);
  }
  const nBlocks = Math.ceil(nc / nb);

  // Pairs sorted by query, cut into groups of at most `slots` pairs of one query: one count
  // workgroup per group compares every score of the row with all of the group's pairs at once.
  const order = Array.from({ length: np }, (_, i) => i).sort((a, b) =>
    pairs.query[a] - pairs.query[b] || a - b
  );
  let maxRun = 0;
  for (let s = 0, e = 0; s < np; s = e) {
    while (e < np && pairs.query[order[e]] === pairs.query[order[s]]) e++;
    maxRun = Math.max(maxRun, e - s);
  }
  let slots = 1;
  while (slots < Math.min(maxRun, MAX_SLOTS)) slots *= 2;
  const packed = new Uint32Array(np * 4);
  const groupList: number[] = [];
  order.forEach((i, j) => {
    packed[4 * j] = pairs.query[i];
    packed[4 * j + 1] = pairs.candidate[i];
    packed[4 * j + 2] = pairs.lo ? pairs.lo[i] : 0;
    packed[4 * j + 3] = pairs.hi ? pairs.hi[i] : nc;
    const g = groupList.length - 2;
    if (g >= 0 && packed[4 * groupList[g]] === pairs.query[i] && groupList[g + 1] < slots) {
      groupList[g + 1]++;
    } else groupList.push(j, 1);
  });
  const nGroups = groupList.length / 2;

  const blockBuf = gpu.alloc([nb, dim], "f32", "retrieval.block");
  const qBuf = gpu.alloc([qc, dim], "f32", "retrieval.queries");
  const sBuf = gpu.alloc([qc, ld], "f32", "retrieval.scores");
  const pt = gpu.fromArray(packed, [np, 4], "u32", "retrieval.pairs");
  const gt = gpu.fromArray(new Uint32Array(groupList), [nGroups, 2], "u32", "retrieval.groups");
  const own = gpu.alloc([np], "f32", "retrieval.own");
  const counts = gpu.zeros([np, 2], "u32", "retrieval.counts");
  const view = (t: Tensor, shape: number[]) => t.view(shape);
  const blockView = (b: number) => {
    const start = b * nb, n = Math.min(nb, nc - start);
    const t = view(blockBuf, [n, dim]);
    gpu.write(t, candidates.subarray(start * dim, (start + n) * dim));
    return { start, t };
  };
  try {
    let resident: { start: number; t: Tensor } | null = null;
    // Every chunk is recorded before the one read-back; pairs and groups of a chunk are
    // contiguous because they are sorted by query.
    for (let q0 = 0, p0 = 0, g0 = 0; q0 < nq && p0 < np; q0 += qc) {
      const nqk = Math.min(qc, nq - q0);
      let p1 = p0, g1 = g0;
      while (p1 < np && packed[4 * p1] < q0 + nqk) p1++;
      while (g1 < nGroups && groupList[2 * g1] < p1) g1++;
      if (p1 === p0) continue;
      const qt = view(qBuf, [nqk, dim]);
      gpu.write(qt, queries.subarray(q0 * dim, (q0 + nqk) * dim));
      const st = view(sBuf, [nqk, ld]);
      const args = { scores: st, ld, q0, pairs: pt, own, counts, groups: gt, slots };
      // Pass 1 finds each pair's own score; pass 2 counts against it. With one block the score
      // matrix from pass 1 serves both.
      for (const mode of ["gather", "count"] as const) {
        for (let b = 0; b < nBlocks; b++) {
          if (nBlocks > 1 || !resident) resident = blockView(b);
          const nbk = resident.t.shape[0];
          if (nBlocks > 1 || mode === "gather") recordScores(gpu, qt, resident.t, st, ld);
          const range = mode === "gather" ? [p0, p1 - p0] : [g0, g1 - g0];
          recordCount(gpu, mode, {
            ...args,
            nb: nbk,
            blockStart: resident.start,
            first: range[0],
            n: range[1],
          });
        }
      }
      p0 = p1;
      g0 = g1;
    }
    const got = await gpu.read(counts, "u32");
    order.forEach((i, j) => {
      rank[i] = got[2 * j] + 1;
      rankInRange[i] = got[2 * j + 1] + 1;
    });
  } finally {
    gpu.release(blockBuf, qBuf, sBuf, pt, gt, own, counts);
  }
  return { rank, rankInRange };
}
