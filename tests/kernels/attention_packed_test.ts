// Attention over a packed [B·T, 3·H] q|k|v tensor (what a fused QKV product writes) against
// attention() on the three column blocks: bit for bit, forward and backward, with and without
// attention-probability dropout; and against the float64 reference. Every output the kernels
// allocate is poisoned with NaN first (the test GPU), so an element a kernel fails to write shows.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  attention,
  attentionBackward,
  attentionBackwardPacked,
  type AttentionDims,
  type AttentionDropout,
  attentionPacked,
  attentionPlanFor,
} from "../../kernels/attention.ts";
import {
  attentionBackwardReference,
  attentionReference,
} from "../../kernels/attention_reference.ts";
import { dropoutKey } from "../../kernels/dropout.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { attentionShapeKey, ENGINE_VERSION } from "../../kernels/tune.ts";
import { assertClose, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

/** A [B, T] mask with each sequence's real length given (padding at the end). */
function lengthMask(T: number, lengths: number[]): Float32Array {
  const m = new Float32Array(lengths.length * T);
  lengths.forEach((len, b) => m.fill(1, b * T, b * T + len));
  return m;
}

/** Random q, k, v [B·T, H] each, their packed [B·T, 3H] form, and an upstream gradient. */
function makeCase(label: string, dims: AttentionDims) {
  const random = rng(freshSeed(label));
  const rowsN = dims.batch * dims.seq, H = dims.heads * dims.headDim;
  const [q, k, v, r] = [0, 1, 2, 3].map(() => randn(rowsN * H, random));
  const qkv = new Float32Array(rowsN * 3 * H);
  for (let row = 0; row < rowsN; row++) {
    qkv.set(q.subarray(row * H, (row + 1) * H), row * 3 * H);
    qkv.set(k.subarray(row * H, (row + 1) * H), row * 3 * H + H);
    qkv.set(v.subarray(row * H, (row + 1) * H), row * 3 * H + 2 * H);
  }
  return { q, k, v, r, qkv };
}

/** Column block `blk` (0, 1, 2) of a [rows, 3H] array, as [rows, H]. */
function block(packed: Float32Array, H: number, blk: number): Float32Array {
  const rowsN = packed.length / (3 * H);
  const out = new Float32Array(rowsN * H);
  for (let row = 0; row < rowsN; row++) {
    out.set(packed.subarray(row * 3 * H + blk * H, row * 3 * H + (blk + 1) * H), row * H);
  }
  return out;
}

/** Asserts that two float arrays hold the same bits (NaN poison or −0 vs 0 included). */
function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  equal(got.length, want.length, `${what}: length`);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const bad = a.findIndex((x, i) => x !== b[i]);
  ok(bad < 0, `${what}: element ${bad} is ${got[bad]} packed vs ${want[bad]} unpacked`);
  ok(got.every(Number.isFinite), `${what}: not every element finite (unwritten poison?)`);
}

interface Shape {
  dims: AttentionDims;
  lengths: number[];
}

// Odd sequence lengths, padded keys and query rows, a sequence with no real token at all, head
// sizes 4, 16 and 64, batch > 1, a custom scale, and a single-token sequence (1 row/invocation).
// headDim 64 at seq 2 (2 rows per invocation): each (headDim, rows, drop, packed) is its own
// unrolled pipeline, and 8 rows at headDim 64 take minutes to compile cold on lavapipe.
const shapes: Shape[] = [
  { dims: { batch: 3, seq: 13, heads: 2, headDim: 16 }, lengths: [13, 9, 5] },
  { dims: { batch: 2, seq: 7, heads: 3, headDim: 4 }, lengths: [7, 0] },
  { dims: { batch: 2, seq: 2, heads: 2, headDim: 64, scale: 0.3 }, lengths: [2, 1] },
  { dims: { batch: 2, seq: 1, heads: 2, headDim: 16 }, lengths: [1, 1] },
];

/**
 * Runs attention and its backward packed and unpacked on the same values; asserts bit-identity of
 * out, lse and dq | dk | dv. Returns the packed results (host copies).
 */
async function packedVsUnpacked(
  gpu: Gpu,
  c: ReturnType<typeof makeCase>,
  maskData: Float32Array,
  dims: AttentionDims,
  drop: AttentionDropout | undefined,
  what: string,
) {
  const { batch: B, seq: T } = dims, H = dims.heads * dims.headDim;
  const up = (a: Float32Array, cols: number) => gpu.fromArray(a, [B * T, cols]);
  const q = up(c.q, H), k = up(c.k, H), v = up(c.v, H), dOut = up(c.r, H);
  const qkv = up(c.qkv, 3 * H);
  const mask = gpu.fromArray(maskData, [B, T]);
  const ref = attention(gpu, q, k, v, mask, dims, drop);
  const g = attentionBackward(gpu, dOut, q, k, v, ref.out, ref.lse, mask, dims, drop);
  const got = attentionPacked(gpu, qkv, mask, dims, drop);
  deepEqual(got.out.shape, [B * T, H], `${what}: out shape`);
  const dqkv = attentionBackwardPacked(gpu, dOut, qkv, got.out, got.lse, mask, dims, drop);
  deepEqual(dqkv.shape, [B * T, 3 * H], `${what}: dqkv shape`);
  const [out, lse, pOut, pLse, dq, dk, dv, pd] = await gpu.readMany([
    ref.out,
    ref.lse,
    got.out,
    got.lse,
    g.dq,
    g.dk,
    g.dv,
    dqkv,
  ]);
  sameBits(pOut, out, `${what}: out`);
  sameBits(pLse, lse, `${what}: lse`);
  sameBits(block(pd, H, 0), dq, `${what}: dq block`);
  sameBits(block(pd, H, 1), dk, `${what}: dk block`);
  sameBits(block(pd, H, 2), dv, `${what}: dv block`);
  gpu.release(q, k, v, dOut, qkv, mask, ref.out, ref.lse, g.dq, g.dk, g.dv, got.out, got.lse);
  gpu.release(dqkv);
  return { out: pOut, lse: pLse, dqkv: pd };
}

for (const { dims, lengths } of shapes) {
  const name = `${dims.batch}×${dims.seq}×${dims.heads}×${dims.headDim}`;
  gpuTest(
    `attentionPacked and its backward are bit-identical to attention on the blocks (${name})`,
    async (gpu) => {
      ok(gpu.options.poison, "the test GPU poisons every allocation");
      const c = makeCase(`packed-${name}`, dims);
      const maskData = lengthMask(dims.seq, lengths);
      const H = dims.heads * dims.headDim;
      const plain = await packedVsUnpacked(gpu, c, maskData, dims, undefined, name);
      // And the float64 reference, at attention_test.ts's tolerances.
      const ref = attentionReference(c.q, c.k, c.v, maskData, dims);
      const grads = attentionBackwardReference(c.r, c.q, c.k, c.v, maskData, dims);
      assertClose(plain.out, ref.out, 1e-5, `${name}: out vs float64`);
      assertClose(plain.lse, ref.lse, 1e-5, `${name}: lse vs float64`);
      assertClose(block(plain.dqkv, H, 0), grads.dq, 1e-4, `${name}: dq vs float64`);
      assertClose(block(plain.dqkv, H, 1), grads.dk, 1e-4, `${name}: dk vs float64`);
      assertClose(block(plain.dqkv, H, 2), grads.dv, 1e-4, `${name}: dv vs float64`);
      // Padded keys get exactly zero dk and dv; a sequence with no real token gives out = 0.
      lengths.forEach((len, b) => {
        for (let t = len; t < dims.seq; t++) {
          const row = plain.dqkv.subarray(
            (b * dims.seq + t) * 3 * H,
            (b * dims.seq + t + 1) * 3 * H,
          );
          ok(row.subarray(H).every((x) => x === 0), `${name}: dk|dv of padded key (${b}, ${t})`);
        }
        if (len === 0) {
          const o = plain.out.subarray(b * dims.seq * H, (b + 1) * dims.seq * H);
          ok(o.every((x) => x === 0), `${name}: out of the empty sequence ${b} is 0`);
        }
      });
      // Attention-probability dropout: the same mask indices, so still the same bits.
      const seed = freshSeed(`packed-drop-${name}`);
      const drop = { p: 0.25, key: dropoutKey(seed, 3), firstSequence: 2 };
      const dropped = await packedVsUnpacked(gpu, c, maskData, dims, drop, `${name} dropout`);
      if (lengths.some((l) => l > 1)) {
        ok(relErr(dropped.out, plain.out) > 1e-3, `${name}: dropout changed nothing`);
      }
    },
  );
}

gpuTest("attentionPacked takes a 3-D [B, T, 3H] qkv and returns [B, T, H]", async (gpu) => {
  const dims = { batch: 2, seq: 3, heads: 1, headDim: 8 };
  const c = makeCase("packed-3d", dims);
  const mask = gpu.fromArray(lengthMask(3, [3, 2]), [2, 3]);
  const flat = gpu.fromArray(c.qkv, [6, 24]), cube = gpu.fromArray(c.qkv, [2, 3, 24]);
  const dOut = gpu.fromArray(c.r, [2, 3, 8]);
  const a = attentionPacked(gpu, flat, mask, dims), b = attentionPacked(gpu, cube, mask, dims);
  deepEqual(b.out.shape, [2, 3, 8]);
  const db = attentionBackwardPacked(gpu, dOut, cube, b.out, b.lse, mask, dims);
  deepEqual(db.shape, [2, 3, 24]);
  const da = attentionBackwardPacked(gpu, dOut, flat, a.out, a.lse, mask, dims);
  const [ao, bo, dA, dB] = await gpu.readMany([a.out, b.out, da, db]);
  sameBits(bo, ao, "3-D out");
  sameBits(dB, dA, "3-D dqkv");
  gpu.release(mask, flat, cube, dOut, a.out, a.lse, b.out, b.lse, da, db);
});

gpuTest("a tuned attention split applies to the packed form too, with the same bits", async (
  gpu,
) => {
  const dims = { batch: 2, seq: 13, heads: 2, headDim: 8 };
  const c = makeCase("packed-tuned", dims);
  const maskData = lengthMask(13, [13, 6]);
  const want = await packedVsUnpacked(gpu, c, maskData, dims, undefined, "rule");
  const qkv = gpu.fromArray(c.qkv, [26, 48]);
  const mask = gpu.fromArray(maskData, [2, 13]);
  const plan = { rows: 2, wg: 8 };
  gpu.tuned = {
    format: 1,
    adapter: "test",
    engine: ENGINE_VERSION,
    created: "",
    matmul: {},
    attention: { [attentionShapeKey(dims)]: plan },
  };
  // Record the forward dispatch's work split.
  const seen: { rows: unknown; wg: unknown }[] = [];
  const run = gpu.run;
  gpu.run = function (k, opts, tensors, uniforms, wgs) {
    if (k.name === "attention.wgsl:forward") {
      seen.push({ rows: opts.template?.rows, wg: opts.constants?.WG });
    }
    return run.call(this, k, opts, tensors, uniforms, wgs);
  };
  try {
    ok(attentionPlanFor(gpu, dims).tuned);
    const got = attentionPacked(gpu, qkv, mask, dims);
    deepEqual(seen, [plan], "the packed forward ran the tuned split");
    // Also bit-identical to the unpacked forward under the same tuned plan (and the rule's).
    await packedVsUnpacked(gpu, c, maskData, dims, undefined, "tuned");
    sameBits(await gpu.read(got.out), want.out, "tuned vs rule out");
    gpu.release(got.out, got.lse);
  } finally {
    gpu.run = run;
    gpu.tuned = null;
    gpu.release(qkv, mask);
  }
});

gpuTest("attentionPacked rejects a bad qkv, mask or dims before dispatching, naming it", (gpu) => {
  const dims = { batch: 2, seq: 3, heads: 2, headDim: 4 };
  const qkv = gpu.alloc([6, 24]);
  const mask = gpu.alloc([2, 3]);
  const x = gpu.alloc([6, 8]);
  const lse = gpu.alloc([2, 2, 3]);
  const bad: [string, () => Tensor | { out: Tensor }, RegExp, ErrorConstructor][] = [];
  const wrongCols = gpu.alloc([6, 8]), wrongRows = gpu.alloc([5, 24]);
  const ints = gpu.alloc([6, 24], "u32");
  const fwd = (t: Tensor, m = mask, d: AttentionDims = dims) => () => attentionPacked(gpu, t, m, d);
  bad.push(
    [
      "unpacked width",
      fwd(wrongCols),
      /attentionPacked: qkv .* \[batch·seq, 3·heads·headDim\] = \[6, 24\]/,
      RangeError,
    ],
    ["rows", fwd(wrongRows), /attentionPacked: qkv/, RangeError],
    ["dtype", fwd(ints), /attentionPacked: qkv must be f32/, TypeError],
    ["mask", fwd(qkv, x), /attentionPacked: mask/, RangeError],
    ["headDim", fwd(qkv, mask, { ...dims, headDim: 2, heads: 4 }), /dims\.headDim/, RangeError],
    ["batch", fwd(qkv, mask, { ...dims, batch: 0 }), /dims\.batch/, RangeError],
    [
      "backward qkv",
      () => attentionBackwardPacked(gpu, x, wrongCols, x, lse, mask, dims),
      /attentionBackwardPacked: qkv/,
      RangeError,
    ],
    [
      "backward dOut",
      () => attentionBackwardPacked(gpu, qkv, qkv, x, lse, mask, dims),
      /attentionBackwardPacked: dOut/,
      RangeError,
    ],
    [
      "backward lse",
      () => attentionBackwardPacked(gpu, x, qkv, x, x, mask, dims),
      /attentionBackwardPacked: lse/,
      RangeError,
    ],
    [
      "backward drop",
      () => attentionBackwardPacked(gpu, x, qkv, x, lse, mask, dims, { p: 1, key: 1 }),
      /attentionBackwardPacked: drop\.p/,
      RangeError,
    ],
  );
  const before = gpu.dispatchCount;
  for (const [what, f, re, type] of bad) {
    throws(f, (e: Error) => e instanceof type && re.test(e.message), what);
  }
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  gpu.release(qkv, mask, x, lse, wrongCols, wrongRows, ints);
  return Promise.resolve();
});
