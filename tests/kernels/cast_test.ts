import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { castF16ToF32, castF32ToF16, roundToF16 } from "../../kernels/cast.ts";
import { f16BitsToF32 } from "../../kernels/runtime.ts";
import { Tensor } from "../../kernels/tensor.ts";
import { freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

/** The two f16 values around x (equal when x is representable), via round-to-nearest-even. */
function f16Neighbours(x: number): [number, number] {
  const near = Math.f16round(x);
  if (near === x || !Number.isFinite(near)) return [near, near];
  // One f16 step from the nearest value towards x.
  const h = new Float16Array([near]);
  const bits = new Uint16Array(h.buffer);
  const away = (x > near) === (near >= 0) ? 1 : -1;
  if (near === 0) bits[0] = x > 0 ? 1 : 0x8001;
  else bits[0] += away;
  return [near, h[0]];
}

gpuTest("castF32ToF16 rounds every value to a neighbouring f16 and back exactly", async (gpu) => {
  const r = rng(freshSeed("cast round trip"));
  // Normal values of many magnitudes, subnormals, signed zeros and exact f16 values; odd count.
  const n = 1001;
  const x = randn(n, r);
  for (let i = 0; i < n; i += 7) x[i] *= 2 ** Math.floor(-20 + 36 * r());
  x.set([0, -0, 1, -2.5, 65504, -65504, 2 ** -24, 6e-8, 1e-9, 0.1, 1 / 3], 0);
  const t = gpu.fromArray(x, [7, 143]);
  const h = castF32ToF16(gpu, t);
  equal(h.dtype, "f16");
  equal(h.shape.join(), "7,143");
  const back = castF16ToF32(gpu, h);
  // gpu.read, not readMany: readMany cannot read an odd-count f16 tensor (reported to the lead).
  const got = await gpu.read(h), wide = await gpu.read(back);
  let nearest = 0;
  for (let i = 0; i < n; i++) {
    // The cast saturates: beyond ±65504 the wanted value is ±65504, not f16's ±Infinity.
    const [a, b] = f16Neighbours(Math.min(65504, Math.max(-65504, x[i])));
    ok(got[i] === a || got[i] === b, `element ${i}: ${x[i]} → ${got[i]}, want ${a} or ${b}`);
    if (Object.is(got[i], a)) nearest++;
    // f16 → f32 is exact, so the round trip returns the f16 value itself.
    ok(Object.is(wide[i], got[i]), `round trip ${i}: ${got[i]} → ${wide[i]}`);
  }
  ok(Object.is(got[1], -0), "negative zero keeps its sign");
  if (Deno.env.get("TEST_VERBOSE")) console.log(`round-to-nearest-even: ${nearest}/${n}`);
  gpu.release(t, h, back);
});

gpuTest("castF32ToF16 saturates beyond ±65504 instead of overflowing", async (gpu) => {
  const t = gpu.fromArray(new Float32Array([70000, -1e30, Infinity, -Infinity, 65519]), [5]);
  const h = castF32ToF16(gpu, t);
  const got = await gpu.read(h);
  equal([...got].join(), "65504,-65504,65504,-65504,65504");
  gpu.release(t, h);
});

gpuTest("castF32ToF16 of an odd count leaves the next half-word alone", async (gpu) => {
  const store = gpu.alloc([4], "f16");
  const sentinel = new Uint16Array([0x1111, 0x2222, 0x3333, 0x4444]);
  gpu.write(store, sentinel);
  const view = new Tensor(store.buffer, [3], "f16", 0);
  const src = gpu.fromArray(new Float32Array([1, 2, 3]), [3]);
  castF32ToF16(gpu, src, view);
  const got = await gpu.read(store);
  equal([...got.slice(0, 3)].join(), "1,2,3");
  equal(got[3], f16BitsToF32(new Uint16Array([0x4444]))[0]);
  // And castF16ToF32 of an odd count writes exactly `count` floats.
  const out = gpu.fromArray(new Float32Array([9, 9, 9, 9]), [4]);
  castF16ToF32(gpu, view, new Tensor(out.buffer, [3], "f32", 0));
  equal([...await gpu.read(out)].join(), "1,2,3,9");
  gpu.release(store, src, out);
});

gpuTest("casts reject wrong dtypes and outputs before dispatching", async (gpu) => {
  const f = gpu.alloc([6]), h = gpu.alloc([6], "f16"), h5 = gpu.alloc([5], "f16");
  const u = gpu.alloc([6], "u32");
  await gpu.sync();
  const before = gpu.dispatchCount;
  throws(
    () => castF32ToF16(gpu, h),
    (e) => e instanceof TypeError && /castF32ToF16.*f32/.test(e.message),
  );
  throws(
    () => castF16ToF32(gpu, f),
    (e) => e instanceof TypeError && /castF16ToF32.*f16/.test(e.message),
  );
  throws(() => castF32ToF16(gpu, u), TypeError);
  throws(
    () => castF32ToF16(gpu, f, f),
    (e) => e instanceof TypeError && /out must be f16/.test(e.message),
  );
  throws(
    () => castF32ToF16(gpu, f, h5),
    (e) => e instanceof RangeError && /6 elements/.test(e.message),
  );
  throws(() => castF16ToF32(gpu, h, new Tensor(h.buffer, [6], "f32")), RangeError);
  equal(gpu.dispatchCount, before);
  gpu.release(f, h, h5, u);
});

gpuTest("readMany reads an f16 tensor with an odd element count", async (gpu) => {
  const x = gpu.fromArray(new Float32Array([1, -2, 0.5]), [3]);
  const h = castF32ToF16(gpu, x);
  const [back] = await gpu.readMany([h]);
  deepEqual(Array.from(back), [1, -2, 0.5]);
  gpu.release(x, h);
});

gpuTest("roundToF16 rounds in place to the f16 copy it returns, bit for bit", async (gpu) => {
  const r = rng(freshSeed("round to f16"));
  for (const n of [1001, 64]) {
    const x = randn(n, r);
    for (let i = 0; i < n; i += 5) x[i] *= 2 ** Math.floor(-20 + 36 * r());
    x.set([0, -0, 70000, -1e30, 2 ** -24, 0.1], 0);
    const t = gpu.fromArray(x, [n]);
    // A poisoned output: every half-word must be written.
    const out = gpu.alloc([n], "f16");
    gpu.write(out, new Uint16Array(n).fill(0x7e00));
    const h = roundToF16(gpu, t, out);
    equal(h, out);
    const cast = castF32ToF16(gpu, gpu.fromArray(x, [n]));
    const [rounded, half, ref] = [await gpu.read(t), await gpu.read(h), await gpu.read(cast)];
    for (let i = 0; i < n; i++) {
      // The same f16 as castF32ToF16, and the f32 tensor now holds exactly that value.
      ok(Object.is(half[i], ref[i]), `element ${i}: ${x[i]} → ${half[i]}, cast gives ${ref[i]}`);
      ok(Object.is(rounded[i], half[i]), `element ${i}: in place ${rounded[i]} vs ${half[i]}`);
    }
    equal(rounded[2], 65504, "saturates like the cast");
    gpu.release(t, out, cast);
  }
});
