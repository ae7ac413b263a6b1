/**
 * Embedding lookup and its gradient. A large table (XLM-R base's 250002×768 f32 word embeddings
 * are 732 MiB) is split into row chunks that each fit one storage binding; every call handles one
 * chunk `[rowStart, rowStart + chunkRows)` and leaves tokens outside it alone. WGSL has no float
 * atomics, so the gradient is a deterministic scatter-add driven by a host-side plan that groups
 * the tokens by id.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernels } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const IDS = { access: "read", type: "u32" } as const;
const EMBEDDING = kernels("embedding.wgsl", {
  gather: {
    entries: ["gather"],
    uniforms: { count: "u32", h: "u32", row_start: "u32", chunk_rows: "u32", accumulate: "u32" },
    params: "gp",
    bindings: { table: "read", ids: IDS, out: "read_write" },
  },
  scatter: {
    entries: ["scatter_add"],
    uniforms: { count: "u32", h: "u32", row_start: "u32", chunk_rows: "u32" },
    params: "sp",
    bindings: {
      d_out: "read",
      unique_ids: IDS,
      offsets: IDS,
      token_index: IDS,
      d_table: "read_write",
    },
  },
});

/** Host-built grouping of token ids for {@linkcode scatterAddRows}. */
export interface ScatterPlan {
  /** The distinct ids, ascending, `u32 [U]`. */
  uniqueIds: Tensor;
  /** Group `u` is `tokenIndex[offsets[u] .. offsets[u+1])`, `u32 [U+1]`. */
  offsets: Tensor;
  /** Token positions grouped by id (ascending within a group), `u32 [T]`. */
  tokenIndex: Tensor;
  /** `U`, the number of distinct ids. */
  count: number;
}

function checkRowStart(op: string, rowStart: number): void {
  if (!Number.isInteger(rowStart) || rowStart < 0 || rowStart > 0xffffffff) {
    throw new RangeError(`${op}: rowStart must be an integer ≥ 0, got ${rowStart}`);
  }
}

/** Validates a `[rows, H]` f32 table and returns [rows, H]. */
function checkTable(op: string, name: string, t: Tensor): [number, number] {
  if (t.dtype !== "f32") throw new TypeError(`${op}: ${name} must be f32, got ${t}`);
  if (t.shape.length !== 2 || t.size === 0) {
    throw new RangeError(`${op}: ${name} must be a non-empty [rows, H] table, got ${t}`);
  }
  return [t.shape[0], t.shape[1]];
}

/**
 * Gathers rows of a table chunk: for every token `t` with `ids[t]` in
 * `[rowStart, rowStart + table.shape[0])`, `out[t] = table[ids[t] − rowStart]` (or `+=` when
 * `accumulate`). Other tokens are left untouched, so `out` must be initialised and a split table
 * needs one call per chunk.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { gatherRows } from "./embedding.ts";
 * const gpu = await Gpu.create();
 * const table = gpu.fromArray(new Float32Array([0, 0, 1, 1, 2, 2]), [3, 2]);
 * const ids = gpu.fromArray(new Uint32Array([2, 0]), [2]);
 * const out = gpu.zeros([2, 2]);
 * gatherRows(gpu, table, ids, out);
 * console.log(await gpu.read(out)); // [2, 2, 0, 0]
 * ```
 */
export function gatherRows(
  gpu: Gpu,
  table: Tensor,
  ids: Tensor,
  out: Tensor,
  rowStart = 0,
  accumulate = false,
): void {
  const op = "gatherRows";
  const [rows, h] = checkTable(op, "table", table);
  if (ids.dtype !== "u32") throw new TypeError(`${op}: ids must be u32, got ${ids}`);
  if (out.dtype !== "f32") throw new TypeError(`${op}: out must be f32, got ${out}`);
  const tokens = ids.size;
  if (out.size !== tokens * h || out.shape[out.shape.length - 1] !== h) {
    throw new RangeError(`${op}: out ${out} must be [${tokens}, ${h}] for ids ${ids}, ${table}`);
  }
  checkRowStart(op, rowStart);
  gpu.run(
    EMBEDDING.gather,
    {},
    { table, ids, out },
    { count: tokens * h, h, row_start: rowStart, chunk_rows: rows, accumulate: accumulate ? 1 : 0 },
    Gpu.grid(Math.ceil((tokens * h) / 256)),
  );
}

/**
 * Groups token positions by id on the host and uploads the plan (three small u32 tensors).
 * Build it once per batch and reuse it for every chunk; release it with
 * {@linkcode releaseScatterPlan}.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { buildScatterPlan, releaseScatterPlan } from "./embedding.ts";
 * const gpu = await Gpu.create();
 * const plan = buildScatterPlan(gpu, new Uint32Array([7, 3, 7]));
 * console.log(plan.count, await gpu.read(plan.tokenIndex)); // 2 [1, 0, 2]
 * releaseScatterPlan(gpu, plan);
 * ```
 */
export function buildScatterPlan(gpu: Gpu, ids: Uint32Array): ScatterPlan {
  if (!(ids instanceof Uint32Array)) {
    throw new TypeError(`buildScatterPlan: ids must be a Uint32Array`);
  }
  if (ids.length === 0) throw new RangeError(`buildScatterPlan: ids is empty`);
  // Stable order: by id, then by token position (the summation order of each group).
  const order = Uint32Array.from(ids.keys()).sort((a, b) => ids[a] - ids[b] || a - b);
  const unique: number[] = [], offsets: number[] = [];
  for (let k = 0; k < order.length; k++) {
    if (k === 0 || ids[order[k]] !== ids[order[k - 1]]) {
      unique.push(ids[order[k]]);
      offsets.push(k);
    }
  }
  offsets.push(order.length);
  return {
    uniqueIds: gpu.fromArray(Uint32Array.from(unique), [unique.length], "u32", "plan.uniqueIds"),
    offsets: gpu.fromArray(Uint32Array.from(offsets), [offsets.length], "u32", "plan.offsets"),
    tokenIndex: gpu.fromArray(order, [order.length], "u32", "plan.tokenIndex"),
    count: unique.length,
  };
}

/**
 * Returns a plan's tensors to the pool.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { buildScatterPlan, releaseScatterPlan } from "./embedding.ts";
 * const gpu = await Gpu.create();
 * releaseScatterPlan(gpu, buildScatterPlan(gpu, new Uint32Array([1, 2])));
 * ```
 */
export function releaseScatterPlan(gpu: Gpu, plan: ScatterPlan): void {
  gpu.release(plan.uniqueIds, plan.offsets, plan.tokenIndex);
}

/**
 * Embedding gradient for one table chunk: `dTable[id − rowStart] += Σ_{t: ids[t] = id} dOut[t]`
 * for the ids in `[rowStart, rowStart + dTable.shape[0])`. Each group is summed in token order,
 * so the result is deterministic.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { buildScatterPlan, scatterAddRows } from "./embedding.ts";
 * const gpu = await Gpu.create();
 * const plan = buildScatterPlan(gpu, new Uint32Array([1, 1, 0]));
 * const dOut = gpu.fromArray(new Float32Array([1, 2, 4]), [3, 1]);
 * const dTable = gpu.zeros([2, 1]);
 * scatterAddRows(gpu, dOut, plan, dTable);
 * console.log(await gpu.read(dTable)); // [4, 3]
 * ```
 */
export function scatterAddRows(
  gpu: Gpu,
  dOut: Tensor,
  plan: ScatterPlan,
  dTable: Tensor,
  rowStart = 0,
): void {
  const op = "scatterAddRows";
  const [rows, h] = checkTable(op, "dTable", dTable);
  if (dOut.dtype !== "f32") throw new TypeError(`${op}: dOut must be f32, got ${dOut}`);
  const tokens = plan.tokenIndex.size;
  if (dOut.size !== tokens * h || dOut.shape[dOut.shape.length - 1] !== h) {
    throw new RangeError(
      `${op}: dOut ${dOut} must be [${tokens}, ${h}] for a plan of ${tokens} tokens and ${dTable}`,
    );
  }
  if (plan.uniqueIds.size !== plan.count || plan.offsets.size !== plan.count + 1) {
    throw new RangeError(`${op}: inconsistent plan (${plan.count} ids, ${plan.offsets})`);
  }
  checkRowStart(op, rowStart);
  const { uniqueIds, offsets, tokenIndex } = plan;
  gpu.run(
    EMBEDDING.scatter,
    {},
    { d_out: dOut, unique_ids: uniqueIds, offsets, token_index: tokenIndex, d_table: dTable },
    { count: plan.count * h, h, row_start: rowStart, chunk_rows: rows },
    Gpu.grid(Math.ceil((plan.count * h) / 256)),
  );
}
