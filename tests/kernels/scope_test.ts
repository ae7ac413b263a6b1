/**
 * Scoped GPU memory: `gpu.scope` releases what its function allocated and did not return or
 * keep; `release` refuses views, foreign tensors and double releases; in tests (poison) a
 * released tensor is poisoned and any later use throws, naming its label and where it went.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { gpuTest } from "../_helpers.ts";
import { Tensor } from "../../kernels/tensor.ts";
import { add } from "../../kernels/elementwise.ts";
import type { Gpu } from "../../kernels/runtime.ts";

const data = new Float32Array([1, 2, 3, 4]);

gpuTest("scope: a tensor that escapes without being returned is released", async (gpu) => {
  let escaped: Tensor | null = null;
  const kept = gpu.scope(() => {
    escaped = gpu.fromArray(data, [4], "f32", "leaky");
    return gpu.fromArray(data, [4], "f32", "returned");
  });
  // The returned tensor survives and reads back.
  assertEquals([...await gpu.read(kept)], [1, 2, 3, 4]);
  // The escaped one was released: any use throws, naming its label and the scope.
  const e = assertThrows(() => add(gpu, escaped!, kept), Error);
  assert(e.message.includes(`"leaky"`), e.message);
  assert(e.message.includes("after it was released at the end of scope"), e.message);
  await assertRejectsMessage(() => gpu.read(escaped!), `"leaky"`);
  gpu.release(kept);
});

gpuTest("scope: use after an explicit release throws, naming the label and the line", (gpu) => {
  const t = gpu.fromArray(data, [4], "f32", "early");
  const other = gpu.fromArray(data, [4], "f32", "other");
  gpu.release(t);
  const e = assertThrows(() => add(gpu, t, other), Error);
  assert(e.message.includes(`"early"`), e.message);
  assert(e.message.includes("scope_test.ts:"), `no release site: ${e.message}`);
  // Also through a reshape, a view, a copy and a write.
  assertThrows(() => add(gpu, t.reshape([2, 2]).reshape([4]), other), Error, `"early"`);
  assertThrows(() => gpu.copy(t.view([2], 8), other), Error, `"early"`);
  assertThrows(() => gpu.write(t, data), Error, `"early"`);
  gpu.release(other);
  return Promise.resolve();
});

gpuTest("scope: a released buffer is poisoned before it goes back to the pool", async (gpu) => {
  const t = gpu.fromArray(data, [4], "f32", "poisoned");
  gpu.release(t);
  // A tensor made by hand is not tracked: it shows what the pool holds now.
  const raw = await gpu.read(new Tensor(t.buffer, [4]));
  assert(raw.every(Number.isNaN), `released buffer holds ${raw}`);
});

gpuTest("scope: releaseAll releases each tensor of a structure once", async (gpu) => {
  const before = gpu.poolStats().liveBuffers;
  const a = gpu.fromArray(data, [4], "f32", "a"), b = gpu.fromArray(data, [4], "f32", "b");
  const state = { layers: [{ x: a, y: b }, { x: b, y: null }], last: a.reshape([2, 2]), n: 3 };
  gpu.releaseAll(state);
  assertEquals(gpu.poolStats().liveBuffers, before);
  assertThrows(() => gpu.copy(a, b), Error, `"a"`);
  assertThrows(() => gpu.releaseAll([b]), Error, "already released");
  await Promise.resolve();
});

gpuTest("scope: double release, views and foreign tensors are errors", (gpu) => {
  const t = gpu.fromArray(data, [4], "f32", "twice");
  gpu.release(t);
  const e = assertThrows(() => gpu.release(t), Error);
  assert(e.message.includes(`"twice"`) && e.message.includes("already released"), e.message);
  assert(e.message.includes("scope_test.ts:"), e.message);
  // Through a reshape too (same allocation).
  assertThrows(() => gpu.release(t.reshape([2, 2])), Error, "already released");

  const u = gpu.fromArray(data, [4], "f32", "viewed");
  assertThrows(() => gpu.release(u.view([2], 8)), Error, `view of "viewed"`);
  assertThrows(() => gpu.release(u.view([2])), Error, `view of "viewed"`);
  assertThrows(() => gpu.release(new Tensor(u.buffer, [4])), Error, "not allocated by this Gpu");
  const foreign = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  assertThrows(() => gpu.release(new Tensor(foreign, [4])), Error, "not allocated by this Gpu");
  foreign.destroy();
  gpu.release(u.reshape([2, 2])); // a reshape is the whole tensor: fine
  gpu.release(null, undefined); // skipped
  return Promise.resolve();
});

gpuTest("scope: nested scopes hand returned tensors to the outer scope", async (gpu) => {
  const outside = gpu.fromArray(data, [4], "f32", "outside");
  let inner: Tensor | null = null, innerTemp: Tensor | null = null;
  const before = gpu.poolStats().liveBuffers;
  const result = gpu.scope(() => {
    inner = gpu.scope(() => {
      innerTemp = gpu.alloc([4], "f32", "inner.temp");
      gpu.copy(outside, innerTemp);
      return add(gpu, innerTemp, outside); // 2, 4, 6, 8
    }, "inner");
    // The inner scope ended: its temporary is gone, its result is alive.
    assertThrows(() => gpu.copy(innerTemp!, outside), Error, `"inner.temp"`);
    assertEquals(gpu.scopeDepth, 1);
    const sum = add(gpu, inner, outside); // 3, 6, 9, 12
    return { sum, extra: [add(gpu, sum, sum)] };
  }, "outer");
  assertEquals(gpu.scopeDepth, 0);
  // `inner` belonged to the outer scope, which did not return it.
  assertThrows(() => gpu.copy(inner!, outside), Error, `end of scope "outer"`);
  const [sum, extra] = await gpu.readMany([result.sum, result.extra[0]]);
  assertEquals([...sum], [3, 6, 9, 12]);
  assertEquals([...extra], [6, 12, 18, 24]);
  // Returned tensors are the caller's now (outside any scope): released by hand.
  assertEquals(gpu.poolStats().liveBuffers, before + 2);
  gpu.release(result.sum, result.extra[0], outside);
  // Tensors from before the scope are never touched by it.
  const x = gpu.fromArray(data, [4], "f32", "x");
  gpu.scope(() => add(gpu, x, x) && undefined);
  assertEquals([...await gpu.read(x)], [1, 2, 3, 4]);
  gpu.release(x);
});

gpuTest("scope: keep, early release, throwing and async functions", async (gpu) => {
  const before = gpu.poolStats().liveBuffers;
  let kept: Tensor | null = null;
  gpu.scope(() => {
    kept = gpu.keep(gpu.fromArray(data, [4], "f32", "kept"));
    const early = gpu.alloc([4], "f32", "early");
    gpu.release(early); // allowed; the scope's end skips it
  });
  assertEquals([...await gpu.read(kept!)], [1, 2, 3, 4]);
  gpu.release(kept!);
  assertEquals(gpu.poolStats().liveBuffers, before);

  let leaked: Tensor | null = null;
  assertThrows(
    () =>
      gpu.scope(() => {
        leaked = gpu.alloc([4], "f32", "on.error");
        throw new Error("boom");
      }),
    Error,
    "boom",
  );
  assertThrows(() => gpu.copy(leaked!, leaked!), Error, `"on.error"`);
  assertEquals(gpu.poolStats().liveBuffers, before);

  assertThrows(
    () => gpu.scope(() => Promise.resolve(gpu.alloc([4], "f32", "async"))),
    TypeError,
    "synchronous",
  );
  assertEquals(gpu.poolStats().liveBuffers, before);
  assertEquals(gpu.scopeDepth, 0);

  // Returning a tensor released inside the scope is an error.
  assertThrows(
    () =>
      gpu.scope(() => {
        const t = gpu.alloc([4], "f32", "gone");
        gpu.release(t);
        return t;
      }),
    Error,
    `returned "gone", which was released`,
  );
});

gpuTest("scope: a long loop of scoped steps keeps the pool flat", async (gpu) => {
  const x = gpu.fromArray(data, [4], "f32", "x");
  const step = (g: Gpu, i: number) =>
    g.scope(() => {
      let y = add(g, x, x);
      for (let k = 0; k < 5; k++) y = add(g, y, x);
      const big = g.alloc([256 + (i % 3)], "f32", "varying");
      g.fill(big, i);
      return add(g, y, x); // 1..4 × 8
    });
  const stats = [];
  const outs: Tensor[] = [];
  for (let i = 0; i < 60; i++) {
    const out = step(gpu, i);
    outs.push(out);
    if (outs.length > 2) gpu.release(outs.shift()!);
    stats.push(gpu.poolStats());
  }
  assertEquals([...await gpu.read(outs.at(-1)!)], [8, 16, 24, 32]);
  // After the first steps nothing new is allocated: live and total buffers stay flat.
  const tail = stats.slice(10);
  assert(tail.every((s) => s.liveBuffers === tail[0].liveBuffers), "live buffers grew");
  assert(
    tail.every((s) => s.liveBuffers + s.freeBuffers === tail[0].liveBuffers + tail[0].freeBuffers),
    "the pool grew",
  );
  gpu.release(x, ...outs);
});

/** Runs `fn`, which must throw an instance of `cls` whose message holds `part`; returns it. */
function assertThrows(fn: () => unknown, cls: ErrorConstructor, part = ""): Error {
  try {
    fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert((e as Error).message.includes(part), `"${(e as Error).message}" lacks "${part}"`);
    return e as Error;
  }
  throw new Error(`expected a throw mentioning ${part}`);
}

async function assertRejectsMessage(fn: () => Promise<unknown>, part: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof Error && e.message.includes(part), String(e));
    return;
  }
  throw new Error(`expected a rejection mentioning ${part}`);
}
