/**
 * llm.c's flat layout for the optimiser: every trained parameter tensor, its gradient and its two
 * AdamW moments live as views in a few large "slabs" (one slab per decay group, a new slab
 * wherever the next tensor would pass `maxStorageBufferBindingSize`), so zeroing the gradients,
 * the gradient norm's partial sums and AdamW run once per slab instead of once per tensor.
 *
 * Views start at `minStorageBufferOffsetAlignment` (256 bytes); the padding between them is zero
 * in all four slabs and stays zero under AdamW (g = m = v = p = 0 gives p' = 0), and adds 0 to
 * the gradient norm. Per element, AdamW's arithmetic is the per-tensor kernel's.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import type { Param } from "../model/params.ts";

/** One slab: the four flat tensors that hold a group of parameters with the same decay. */
export interface Slab {
  decay: boolean;
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
}

interface Placement {
  param: Param;
  chunk: number;
  slab: number;
  /** Element offset in the slab. */
  offset: number;
}

/**
 * Lays `params` (their row chunks, in order; decayed ones first) out in slabs, copies each
 * chunk's current values into its place, and returns the slabs and, per parameter, the views of
 * its chunks in each of the four slabs. The parameters' old chunk tensors go to `release` and
 * `param.chunks` is replaced by the views (the caller records the slabs' ownership).
 */
export function flattenParams(gpu: Gpu, params: Param[], release: (old: Tensor[]) => void): {
  slabs: Slab[];
  grads: Map<string, Tensor[]>;
  m: Map<string, Tensor[]>;
  v: Map<string, Tensor[]>;
} {
  const align = (gpu.limits.minStorageBufferOffsetAlignment ?? 256) / 4;
  const maxElems = Math.floor(
    Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 4,
  );
  const sizes: { decay: boolean; elems: number }[] = [];
  const placements: Placement[] = [];
  for (const decay of [true, false]) {
    let slab = -1, used = 0;
    for (const p of params.filter((q) => q.decay === decay)) {
      p.chunks.forEach((t, k) => {
        if (t.dtype !== "f32") throw new TypeError(`flattenParams: ${p.name} is not f32 (${t})`);
        const start = Math.ceil(used / align) * align;
        if (slab < 0 || start + t.size > maxElems) {
          sizes.push({ decay, elems: 0 });
          slab = sizes.length - 1;
          used = 0;
        }
        const offset = Math.ceil(used / align) * align;
        placements.push({ param: p, chunk: k, slab, offset });
        used = offset + t.size;
        sizes[slab].elems = used;
      });
    }
  }
  const slabs: Slab[] = sizes.map(({ decay, elems }, i) => ({
    decay,
    param: gpu.zeros([elems], "f32", `flat.param.${i}`),
    grad: gpu.zeros([elems], "f32", `flat.grad.${i}`),
    m: gpu.zeros([elems], "f32", `flat.adam.m.${i}`),
    v: gpu.zeros([elems], "f32", `flat.adam.v.${i}`),
  }));
  const grads = new Map<string, Tensor[]>();
  const m = new Map<string, Tensor[]>();
  const v = new Map<string, Tensor[]>();
  const newChunks = new Map<Param, Tensor[]>();
  for (const { param: p, chunk, slab, offset } of placements) {
    const old = p.chunks[chunk];
    const s = slabs[slab];
    const at = (t: Tensor) => t.view(old.shape, offset * 4);
    const view = at(s.param);
    gpu.copy(old, view);
    if (!newChunks.has(p)) newChunks.set(p, []);
    newChunks.get(p)!.push(view);
    for (const [store, flat] of [[grads, s.grad], [m, s.m], [v, s.v]] as const) {
      if (!store.has(p.name)) store.set(p.name, []);
      store.get(p.name)!.push(at(flat));
    }
  }
  for (const [p, chunks] of newChunks) {
    release(p.chunks);
    p.chunks = chunks;
  }
  return { slabs, grads, m, v };
}
