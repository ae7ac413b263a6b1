/**
 * Ranks of relevant candidates on the GPU, without sorting the corpus: for every
 * (query, relevant candidate) pair the kernel counts the candidates scoring strictly higher plus
 * the equal-scoring ones with a lower index, so rank = count + 1 and ties go to candidate order.
 *
 * Scores are dot products (cosine similarity when the rows are L2-normalised). Candidates are
 * processed in blocks (one score matrix `[queries, block]` at a time) so that corpora larger than
 * one binding fit; queries are processed in chunks for the same reason. Every score comes out of
 * the same pipeline, so the result is bit-for-bit independent of the block and chunk sizes.
 * @module
 */
import { Gpu, u32 } from "./runtime.ts";
import { Tensor } from "./tensor.ts";

const SHADER = "retrieval_rank.wgsl";
const TILE = 16;
const MAX_GROUPS = 65535;
/** Default cap on one score matrix (bytes), below any device's binding limit we target. */
const SCORE_BYTES = 128 * 2 ** 20;

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

/**
 * Records `scores[q, j] = dot(queries[q], block[j])` for `queries` `[nq, h]` and `block`
 * `[nb, h]` into `out` `[nq, nb]` (allocated when not given).
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
  gpu.dispatch(
    { shader: SHADER, entry: "score" },
    [queries, block, y],
    [u32(nq), u32(nb), u32(h), u32(0), u32(0), u32(0)],
    [gx, gy],
  );
  return y;
}

/**
 * Records one pass of the count kernel over a score block `[nq, nb]` whose first candidate has
 * global index `blockStart`. `pairs` is u32 `[P, 4]` (query in the chunk, global candidate, range
 * lo, range hi). Mode `"gather"` stores each pair's own score into `own` `[P]` when its candidate
 * lies in the block; mode `"count"` adds the candidates ahead of each pair to `counts` `[P, 2]`
 * (whole pool, range).
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
  const [nq, nb] = scores.shape;
  gpu.dispatch(
    { shader: SHADER, entry: "count" },
    [scores, pairs, own, counts],
    [u32(nq), u32(nb), u32(0), u32(blockStart), u32(n), u32(mode === "gather" ? 0 : 1)],
    Gpu.grid(n),
  );
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
  const scoreCap = Math.min(maxBinding, SCORE_BYTES);
  const chunkMax = Math.max(
    1,
    Math.min(Math.floor(scoreCap / (nb * 4)), Math.floor(maxBinding / rowBytes), MAX_GROUPS * TILE),
  );
  const qc = Math.min(nq, opts.queryChunk ?? chunkMax);
  if (!Number.isInteger(qc) || qc < 1) {
    throw new RangeError(`${op}: queryChunk must be a positive integer, got ${qc}`);
  }
  const nBlocks = Math.ceil(nc / nb);

  // Pairs grouped by query chunk, with the query index made local to the chunk.
  const byChunk = new Map<number, number[]>();
  for (let i = 0; i < np; i++) {
    const k = Math.floor(pairs.query[i] / qc);
    let list = byChunk.get(k);
    if (!list) byChunk.set(k, list = []);
    list.push(i);
  }

  const blockBuf = gpu.alloc([nb, dim], "f32", "retrieval.block");
  const qBuf = gpu.alloc([qc, dim], "f32", "retrieval.queries");
  const sBuf = gpu.alloc([qc, nb], "f32", "retrieval.scores");
  const view = (t: Tensor, shape: number[]) => new Tensor(t.buffer, shape, t.dtype, 0);
  const blockView = (b: number) => {
    const start = b * nb, n = Math.min(nb, nc - start);
    const t = view(blockBuf, [n, dim]);
    gpu.write(t, candidates.subarray(start * dim, (start + n) * dim));
    return { start, t };
  };
  try {
    let resident: { start: number; t: Tensor } | null = null;
    for (const [k, list] of [...byChunk].sort((a, b) => a[0] - b[0])) {
      const q0 = k * qc, nqk = Math.min(qc, nq - q0);
      const qt = view(qBuf, [nqk, dim]);
      gpu.write(qt, queries.subarray(q0 * dim, (q0 + nqk) * dim));
      const packed = new Uint32Array(list.length * 4);
      list.forEach((i, j) => {
        packed[4 * j] = pairs.query[i] - q0;
        packed[4 * j + 1] = pairs.candidate[i];
        packed[4 * j + 2] = pairs.lo ? pairs.lo[i] : 0;
        packed[4 * j + 3] = pairs.hi ? pairs.hi[i] : nc;
      });
      const pt = gpu.fromArray(packed, [list.length, 4], "u32", "retrieval.pairs");
      const own = gpu.alloc([list.length], "f32", "retrieval.own");
      const counts = gpu.zeros([list.length, 2], "u32", "retrieval.counts");
      // Pass 1 finds each pair's own score; pass 2 counts against it. With one block the score
      // matrix from pass 1 serves both.
      for (const mode of ["gather", "count"] as const) {
        for (let b = 0; b < nBlocks; b++) {
          if (nBlocks > 1 || !resident) resident = blockView(b);
          const st = view(sBuf, [nqk, resident.t.shape[0]]);
          if (nBlocks > 1 || mode === "gather") scoreBlock(gpu, qt, resident.t, st);
          countAhead(gpu, mode, st, resident.start, pt, own, counts);
        }
      }
      const got = await gpu.read(counts, "u32");
      list.forEach((i, j) => {
        rank[i] = got[2 * j] + 1;
        rankInRange[i] = got[2 * j + 1] + 1;
      });
      gpu.release(pt, own, counts);
    }
  } finally {
    gpu.release(blockBuf, qBuf, sBuf);
  }
  return { rank, rankInRange };
}
