/**
 * Inverted dropout with a counter-based mask (no stored mask, no random state): element `i` of a
 * call with key `k` is kept when `hash(k, offset + i) ≥ p·2³²` and then scaled by 1/(1 − p). The
 * same call on the upstream gradient is the backward, so forward, backward and a recomputed
 * forward (activation checkpointing, GradCache) agree exactly. {@linkcode dropoutKeep} is the
 * same mask on the host, for references and tests.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernel } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const DROPOUT = kernel({
  shader: "dropout.wgsl",
  entries: ["dropout"],
  uniforms: { count: "u32", offset: "u32", key: "u32", threshold: "u32", scale: "f32" },
  bindings: { x: "read", y: "read_write" },
});

/** lowbias32, as in dropout.wgsl. */
function mix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A dropout key from integers (e.g. seed, step, call, layer, site): each part is mixed in turn.
 *
 * @example
 * ```ts
 * import { dropoutKey } from "./dropout.ts";
 * console.log(dropoutKey(42, 1, 0) === dropoutKey(42, 1, 0), dropoutKey(42, 1, 0) !== dropoutKey(42, 2, 0)); // true true
 * ```
 */
export function dropoutKey(...parts: number[]): number {
  let k = 0x9e3779b9;
  for (const part of parts) k = mix32((k ^ mix32(part >>> 0)) + 0x632be5ab);
  return k >>> 0;
}

/** The u32 threshold of keep probability 1 − p (p in [0, 1)). */
function threshold(p: number): number {
  return Math.min(2 ** 32 - 1, Math.round(p * 2 ** 32));
}

/** Whether element `index` survives dropout `p` under `key` (the kernel's mask, on the host). */
export function dropoutKeep(key: number, index: number, p: number): boolean {
  const h = mix32((mix32(((index >>> 0) ^ key) >>> 0) + key) >>> 0);
  return h >= threshold(p);
}

/**
 * `y = x · mask / (1 − p)` with the mask of `key` at elements `offset … offset + size − 1`. Its
 * own backward: apply it to the gradient with the same key and offset.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { dropout } from "./dropout.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array(8).fill(1), [8]);
 * console.log(await gpu.read(dropout(gpu, x, { p: 0.5, key: 7 }))); // each 0 or 2
 * ```
 */
export function dropout(
  gpu: Gpu,
  x: Tensor,
  o: { p: number; key: number; offset?: number },
): Tensor {
  if (x.dtype !== "f32") throw new TypeError(`dropout: x must be f32, got ${x}`);
  if (!(o.p >= 0 && o.p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${o.p}`);
  const offset = o.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0 || offset + x.size > 2 ** 32) {
    throw new RangeError(`dropout: offset ${offset} + ${x.size} elements exceed 2^32`);
  }
  const y = gpu.alloc(x.shape, "f32", "dropout.y");
  gpu.run(
    DROPOUT,
    {},
    { x, y },
    {
      count: x.size,
      offset,
      key: o.key >>> 0,
      threshold: threshold(o.p),
      scale: 1 / (1 - o.p),
    },
    Gpu.grid(Math.ceil(x.size / 256)),
  );
  return y;
}
