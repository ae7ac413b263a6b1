import { equal, ok, throws } from "node:assert/strict";
import { attention, attentionBackward, type AttentionDims } from "../../kernels/attention.ts";
import {
  attentionBackwardReference,
  attentionReference,
} from "../../kernels/attention_reference.ts";
import type { Gpu } from "../../kernels/runtime.ts";
import { assertClose, freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";

/** A [B, T] mask with each sequence's real length given (padding at the end). */
function lengthMask(T: number, lengths: number[]): Float32Array {
  const m = new Float32Array(lengths.length * T);
  lengths.forEach((len, b) => m.fill(1, b * T, b * T + len));
  return m;
}

interface Case {
  dims: AttentionDims;
  mask: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  r: Float32Array; // upstream gradient: loss = Σ out ∘ r
}

function makeCase(label: string, dims: AttentionDims, mask: Float32Array): Case {
  const random = rng(freshSeed(label));
  const n = dims.batch * dims.seq * dims.heads * dims.headDim;
  return {
    dims,
    mask,
    q: randn(n, random),
    k: randn(n, random),
    v: randn(n, random),
    r: randn(n, random),
  };
}

/** Runs forward and backward on the GPU and checks both against the float64 reference. */
async function checkAgainstReference(gpu: Gpu, c: Case, what: string) {
  const { batch: B, seq: T, heads: H, headDim: D } = c.dims;
  const shape = [B, T, H * D];
  const q = gpu.fromArray(c.q, shape), k = gpu.fromArray(c.k, shape), v = gpu.fromArray(c.v, shape);
  const mask = gpu.fromArray(c.mask, [B, T]);
  const dOut = gpu.fromArray(c.r, shape);
  const { out, lse } = attention(gpu, q, k, v, mask, c.dims);
  const { dq, dk, dv } = attentionBackward(gpu, dOut, q, k, v, out, lse, mask, c.dims);
  const [gOut, gLse, gDq, gDk, gDv] = await gpu.readMany([out, lse, dq, dk, dv]);
  const ref = attentionReference(c.q, c.k, c.v, c.mask, c.dims);
  const grads = attentionBackwardReference(c.r, c.q, c.k, c.v, c.mask, c.dims);
  assertClose(gOut, ref.out, 1e-5, `${what}: out`);
  assertClose(gLse, ref.lse, 1e-5, `${what}: lse`);
  assertClose(gDq, grads.dq, 1e-4, `${what}: dq`);
  assertClose(gDk, grads.dk, 1e-4, `${what}: dk`);
  assertClose(gDv, grads.dv, 1e-4, `${what}: dv`);
  gpu.release(q, k, v, mask, dOut, out, lse, dq, dk, dv);
  return { out: gOut, dq: gDq, dk: gDk, dv: gDv };
}

/** Central finite differences of the float64 loss Σ out ∘ r at a few entries of one input. */
function finiteDifferences(c: Case, which: "q" | "k" | "v", entries: number[]): number[] {
  const eps = 1e-4;
  const base = { q: Float64Array.from(c.q), k: Float64Array.from(c.k), v: Float64Array.from(c.v) };
  const loss = () => {
    const { out } = attentionReference(base.q, base.k, base.v, c.mask, c.dims);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * c.r[i];
    return s;
  };
  return entries.map((e) => {
    const x = base[which], keep = x[e];
    x[e] = keep + eps;
    const up = loss();
    x[e] = keep - eps;
    const down = loss();
    x[e] = keep;
    return (up - down) / (2 * eps);
  });
}

const awkward: AttentionDims[] = [
  { batch: 3, seq: 13, heads: 2, headDim: 16 },
  { batch: 3, seq: 13, heads: 2, headDim: 8 },
];

for (const dims of awkward) {
  gpuTest(
    `attention forward and backward match float64 with padding (headDim ${dims.headDim})`,
    async (gpu) => {
      const c = makeCase(`attention-${dims.headDim}`, dims, lengthMask(13, [13, 9, 5]));
      const got = await checkAgainstReference(gpu, c, `headDim ${dims.headDim}`);
      // Padded query rows still produce finite output; padded keys get no gradient.
      ok(got.out.every(Number.isFinite), "every output is finite");
      const HD = dims.heads * dims.headDim;
      for (let t = 9; t < 13; t++) {
        for (let e = 0; e < HD; e++) {
          equal(got.dk[(13 + t) * HD + e], 0, "dk of a padded key is 0");
          equal(got.dv[(13 + t) * HD + e], 0, "dv of a padded key is 0");
        }
      }
    },
  );
}

gpuTest(
  "attention gradients match central finite differences of the float64 forward",
  async (gpu) => {
    const dims = { batch: 3, seq: 13, heads: 2, headDim: 8 };
    const c = makeCase("attention-fd", dims, lengthMask(13, [13, 9, 5]));
    const got = await checkAgainstReference(gpu, c, "fd case");
    const random = rng(freshSeed("attention-fd-entries"));
    const HD = dims.heads * dims.headDim;
    // Real positions only (b, t < length): a padded key's gradient is exactly 0 on both sides.
    const lengths = [13, 9, 5];
    const pick = () => {
      const b = Math.floor(random() * 3);
      const t = Math.floor(random() * lengths[b]);
      return (b * 13 + t) * HD + Math.floor(random() * HD);
    };
    for (const which of ["q", "k", "v"] as const) {
      const entries = Array.from({ length: 6 }, pick);
      const fd = finiteDifferences(c, which, entries);
      const gpuGrad = { q: got.dq, k: got.dk, v: got.dv }[which];
      const picked = entries.map((e) => gpuGrad[e]);
      const err = relErr(picked, fd);
      ok(err <= 1e-4, `d${which} vs finite differences: relative error ${err.toExponential(3)}`);
    }
  },
);

gpuTest(
  "attention streams several key tiles and query blocks (seq 70, headDim 64)",
  async (gpu) => {
    // seq 70 > 64 queries per workgroup and > 16 keys per tile; the second sequence's padding
    // leaves whole key tiles masked, and a custom scale is used.
    const dims = { batch: 2, seq: 70, heads: 1, headDim: 64, scale: 0.2 };
    const c = makeCase("attention-long", dims, lengthMask(70, [70, 23]));
    await checkAgainstReference(gpu, c, "seq 70");
  },
);

// Each invocation owns 1, 2, 4 or 8 rows depending on seq (rows past the end repeat the last
// one); workgroups can span several (batch, head) pairs. These shapes reach every row count,
// partial last groups, sequences longer than one workgroup's rows and every head size class.
const splits: { dims: AttentionDims; lengths: number[] }[] = [
  { dims: { batch: 2, seq: 1, heads: 3, headDim: 8 }, lengths: [1, 1] },
  { dims: { batch: 2, seq: 2, heads: 2, headDim: 16 }, lengths: [2, 1] },
  { dims: { batch: 2, seq: 3, heads: 2, headDim: 32 }, lengths: [3, 2] },
  { dims: { batch: 3, seq: 5, heads: 2, headDim: 16 }, lengths: [5, 3, 1] },
  { dims: { batch: 8, seq: 24, heads: 4, headDim: 16 }, lengths: [24, 17, 24, 9, 24, 24, 1, 20] },
  { dims: { batch: 1, seq: 130, heads: 1, headDim: 64 }, lengths: [97] },
];

for (const { dims, lengths } of splits) {
  gpuTest(
    `attention matches float64 at seq ${dims.seq}, headDim ${dims.headDim}, ` +
      `${dims.batch}×${dims.heads} (batch×heads)`,
    async (gpu) => {
      const c = makeCase(`attention-split-${dims.seq}`, dims, lengthMask(dims.seq, lengths));
      await checkAgainstReference(gpu, c, `seq ${dims.seq}`);
    },
  );
}

gpuTest("attention gives zeros, not NaN, for a sequence with no real token", async (gpu) => {
  const dims = { batch: 2, seq: 5, heads: 1, headDim: 4 };
  const c = makeCase("attention-empty", dims, lengthMask(5, [5, 0]));
  const got = await checkAgainstReference(gpu, c, "empty sequence");
  ok(got.out.subarray(20).every((x) => x === 0), "the empty sequence's output is 0");
  ok(got.dq.every(Number.isFinite), "dq is finite");
});

gpuTest("attention is deterministic across runs", async (gpu) => {
  const dims = { batch: 2, seq: 13, heads: 2, headDim: 8 };
  const c = makeCase("attention-det", dims, lengthMask(13, [13, 7]));
  const a = await checkAgainstReference(gpu, c, "run 1");
  const b = await checkAgainstReference(gpu, c, "run 2");
  for (const key of ["out", "dq", "dk", "dv"] as const) {
    ok(a[key].every((x, i) => Object.is(x, b[key][i])), `${key} is bit-identical`);
  }
});

gpuTest("attention rejects bad shapes and head sizes before dispatching", (gpu) => {
  const dims = { batch: 2, seq: 3, heads: 2, headDim: 4 };
  const x = gpu.alloc([2, 3, 8]);
  const mask = gpu.alloc([2, 3]);
  const wrong = gpu.alloc([2, 3, 7]);
  const lse = gpu.alloc([2, 2, 2]);
  const ints = gpu.alloc([2, 3, 8], "u32");
  const before = gpu.dispatchCount;
  throws(() => attention(gpu, x, wrong, x, mask, dims), RangeError);
  throws(() => attention(gpu, x, x, x, wrong, dims), RangeError);
  throws(() => attention(gpu, x, x, x, mask, { ...dims, headDim: 0 }), RangeError);
  throws(() => attention(gpu, x, x, x, mask, { ...dims, heads: 4, headDim: 2 }), RangeError);
  throws(
    () => attention(gpu, x, x, x, mask, { batch: 1, seq: 1, heads: 1, headDim: 128 }),
    RangeError,
  );
  throws(() => attentionBackward(gpu, x, x, x, x, x, lse, mask, dims), RangeError);
  throws(() => attention(gpu, ints, x, x, mask, dims), TypeError);
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  gpu.release(x, mask, wrong, lse, ints);
  return Promise.resolve();
});
