import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  buildScatterPlan,
  gatherRows,
  releaseScatterPlan,
  scatterAddRows,
} from "../../kernels/embedding.ts";
import { gatherRowsRef, numericalGradient, scatterAddRowsRef } from "../../kernels/reference.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const ROWS = 53, H = 37, SPLIT = 30; // chunk A: rows [0, 30), chunk B: rows [30, 53)

/** Random ids over [0, ROWS) with repeats, always including 0, SPLIT − 1, SPLIT and ROWS − 1. */
function randomIds(t: number, r: () => number): Uint32Array {
  const ids = Uint32Array.from({ length: t }, () => Math.floor(r() * ROWS));
  ids.set([0, SPLIT - 1, SPLIT, ROWS - 1, 5, 5, 5], 0);
  return ids;
}

gpuTest("gatherRows copies the rows named by ids", async (gpu) => {
  const r = rng(freshSeed("gatherRows"));
  const table = randn(ROWS * H, r), ids = randomIds(41, r);
  const tt = gpu.fromArray(table, [ROWS, H]), ti = gpu.fromArray(ids, [41]);
  const out = gpu.alloc([41, H]); // poisoned: every token must be written
  gatherRows(gpu, tt, ti, out);
  assertClose(await gpu.read(out), gatherRowsRef(table, H, ids), 0, "gatherRows");
  gpu.release(tt, ti, out);
});

gpuTest("gatherRows over a table split in two chunks writes, then accumulates", async (gpu) => {
  const r = rng(freshSeed("gatherRows chunks"));
  const table = randn(ROWS * H, r), ids = randomIds(41, r);
  const ta = gpu.fromArray(table.subarray(0, SPLIT * H), [SPLIT, H]);
  const tb = gpu.fromArray(table.subarray(SPLIT * H), [ROWS - SPLIT, H]);
  const ti = gpu.fromArray(ids, [41]);
  const want = gatherRowsRef(table, H, ids);

  const out = gpu.alloc([41, H]); // poisoned
  gatherRows(gpu, ta, ti, out, 0);
  const half = await gpu.read(out);
  for (let t = 0; t < 41; t++) {
    const inA = ids[t] < SPLIT;
    ok(inA ? !Number.isNaN(half[t * H]) : Number.isNaN(half[t * H]), `token ${t} after chunk A`);
  }
  gatherRows(gpu, tb, ti, out, SPLIT);
  assertClose(await gpu.read(out), want, 0, "two chunks");

  // accumulate = true adds onto what is there (e.g. position embeddings).
  const base = randn(41 * H, r);
  const acc = gpu.fromArray(base, [41, H]);
  gatherRows(gpu, tb, ti, acc, SPLIT, true);
  gatherRows(gpu, ta, ti, acc, 0, true);
  const f32Sum = Float32Array.from(base, (v, i) => v + want[i]);
  assertClose(await gpu.read(acc), f32Sum, 0, "accumulated chunks");
  gpu.release(ta, tb, ti, out, acc);
});

gpuTest("scatterAddRows sums repeated ids into a chunked table", async (gpu) => {
  const r = rng(freshSeed("scatterAddRows"));
  const t = 41, ids = randomIds(t, r);
  const dOut = randn(t * H, r);
  const init = randn(ROWS * H, r); // dTable accumulates onto this
  const plan = buildScatterPlan(gpu, ids);
  const td = gpu.fromArray(dOut, [t, H]);
  const da = gpu.fromArray(init.subarray(0, SPLIT * H), [SPLIT, H]);
  const db = gpu.fromArray(init.subarray(SPLIT * H), [ROWS - SPLIT, H]);
  scatterAddRows(gpu, td, plan, da, 0);
  scatterAddRows(gpu, td, plan, db, SPLIT);
  const [ga, gb] = await gpu.readMany([da, db]);
  const got = new Float32Array(ROWS * H);
  got.set(ga);
  got.set(gb, SPLIT * H);
  const grad = scatterAddRowsRef(dOut, H, ids, ROWS);
  const want = Float64Array.from(init, (v, i) => v + grad[i]);
  assertClose(got, want, 1e-6, "scatterAddRows");

  // Against finite differences of the float64 gather, loss = Σ gather(table)·dOut: id 5 is
  // repeated (≥ 3 tokens), ROWS − 1 sits in chunk B, and an unused id must get zero.
  const table = randn(ROWS * H, r);
  const unused = [...Array(ROWS).keys()].find((id) => !ids.includes(id));
  const probe = [5 * H + 3, (ROWS - 1) * H, SPLIT * H + H - 1, ...(unused ? [unused * H + 1] : [])];
  const fd = numericalGradient((v) => gatherRowsRef(v, H, ids), table, dOut, probe);
  assertClose(probe.map((i) => got[i] - init[i]), fd, 1e-5, "scatterAddRows vs finite differences");
  releaseScatterPlan(gpu, plan);
  gpu.release(td, da, db);
});

gpuTest("buildScatterPlan groups token positions by id in ascending order", async (gpu) => {
  const plan = buildScatterPlan(gpu, new Uint32Array([9, 2, 9, 4, 2, 9]));
  equal(plan.count, 3);
  const [u, o, k] = await Promise.all([
    gpu.read(plan.uniqueIds),
    gpu.read(plan.offsets),
    gpu.read(plan.tokenIndex),
  ]);
  deepEqual([...u], [2, 4, 9]);
  deepEqual([...o], [0, 2, 3, 6]);
  deepEqual([...k], [1, 4, 3, 0, 2, 5]);
  releaseScatterPlan(gpu, plan);
});

gpuTest("embedding functions reject bad inputs before dispatching", (gpu) => {
  const table = gpu.alloc([10, 4]), ids = gpu.alloc([3], "u32"), idsF = gpu.alloc([3]);
  const out = gpu.alloc([3, 4]), out5 = gpu.alloc([3, 5]), flat = gpu.alloc([40]);
  const plan = buildScatterPlan(gpu, new Uint32Array([1, 2, 1]));
  const before = gpu.dispatchCount;
  throws(() => gatherRows(gpu, table, idsF, out), /gatherRows: ids must be u32/);
  throws(() => gatherRows(gpu, table, ids, out5), /gatherRows: out .* must be \[3, 4\]/);
  throws(() => gatherRows(gpu, flat, ids, out), /gatherRows: table must be .*\[rows, H\]/);
  throws(() => gatherRows(gpu, table, ids, out, -1), /rowStart/);
  throws(() => scatterAddRows(gpu, out5, plan, table), /scatterAddRows: dOut/);
  throws(() => scatterAddRows(gpu, out, plan, table, 0.5), RangeError);
  throws(() => buildScatterPlan(gpu, new Uint32Array(0)), RangeError);
  throws(() => buildScatterPlan(gpu, [1, 2] as unknown as Uint32Array), TypeError);
  ok(gpu.dispatchCount === before, "nothing was dispatched");
  releaseScatterPlan(gpu, plan);
  gpu.release(table, ids, idsF, out, out5, flat);
  return Promise.resolve();
});
