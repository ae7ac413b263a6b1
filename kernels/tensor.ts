/**
 * A small handle on a region of a GPU buffer: the buffer, a byte offset, a shape and a dtype.
 * Tensors own nothing; the {@linkcode Gpu} that made them releases their buffers.
 * @module
 */

/** Element types the kernels understand. */
export type DType = "f32" | "f16" | "u32" | "i32";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, u32: 4, i32: 4 };

/**
 * One {@linkcode Gpu.alloc} of a pooled buffer, shared by the tensor it returned and every view
 * of it. The Gpu marks it released (with where, when it records that) so that a later use of any
 * of its tensors throws instead of reading a buffer that now belongs to someone else.
 */
export interface Allocation {
  /** The label given to `alloc` (e.g. `"emb.sum"`). */
  readonly label: string;
  /** Bytes of the tensor `alloc` returned (a tensor of this size at offset 0 may release it). */
  readonly byteLength: number;
  /** Null while live; once released, where (a source line, or the scope that ended). */
  released: string | null;
}

/**
 * A view of `shape` elements of `dtype` starting `offset` bytes into `buffer`.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * const gpu = await Gpu.create();
 * const t = gpu.fromArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.log(t.shape, t.size); // [2, 3] 6
 * gpu.release(t);
 * ```
 */
export class Tensor {
  constructor(
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = "f32",
    readonly offset = 0,
    /** The pool allocation behind this tensor (null for a tensor made by hand). */
    readonly allocation: Allocation | null = null,
  ) {}

  /** Number of elements. */
  get size(): number {
    return shapeSize(this.shape);
  }

  /** Bytes the elements occupy (not the buffer's size). */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** Same storage seen with another shape of the same element count. */
  reshape(shape: readonly number[]): Tensor {
    if (shapeSize(shape) !== this.size) {
      throw new RangeError(
        `reshape: cannot view [${this.shape}] (${this.size} elements) as [${shape}]`,
      );
    }
    return new Tensor(this.buffer, shape, this.dtype, this.offset, this.allocation);
  }

  /**
   * A view of `shape` elements starting `byteOffset` bytes into this tensor (for copies, writes
   * and kernels that take a sub-range). A view cannot be released; release the tensor it views.
   */
  view(shape: readonly number[], byteOffset = 0, dtype: DType = this.dtype): Tensor {
    const bytes = shapeSize(shape) * DTYPE_BYTES[dtype];
    if (byteOffset < 0 || byteOffset + bytes > this.byteLength) {
      throw new RangeError(
        `view: [${shape}] ${dtype} at byte ${byteOffset} does not fit in ${this}`,
      );
    }
    return new Tensor(this.buffer, shape, dtype, this.offset + byteOffset, this.allocation);
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join(",")}]`;
  }
}

/** Product of a shape's dimensions (1 for a scalar). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Throws a TypeError naming `op` unless `t` has the dtype and rank given. */
export function expectTensor(
  op: string,
  name: string,
  t: Tensor,
  rank: number,
  dtype: DType = "f32",
): void {
  if (t.dtype !== dtype) {
    throw new TypeError(`${op}: ${name} must be ${dtype}, got ${t}`);
  }
  if (t.shape.length !== rank) {
    throw new TypeError(`${op}: ${name} must have rank ${rank}, got ${t}`);
  }
}

/** Throws a RangeError naming `op` unless the two dimensions agree. */
export function expectDim(op: string, what: string, a: number, b: number): void {
  if (a !== b) throw new RangeError(`${op}: ${what} mismatch (${a} vs ${b})`);
}

/**
 * One tensor over `parts` stacked along their first axis, when they lie back to back in one buffer
 * (same dtype, same trailing dims, each starting where the previous one ends); otherwise null.
 * The flat parameter layout of training puts the query, key and value weights (and their biases
 * when the hidden size keeps them aligned) back to back, so one fused product can read them.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { stackedView } from "./tensor.ts";
 * const gpu = await Gpu.create();
 * const flat = gpu.zeros([128]);
 * const a = flat.view([2, 32]), b = flat.view([2, 32], 256);
 * console.log(stackedView([a, b])?.shape); // [4, 32]
 * console.log(stackedView([b, a])); // null: b does not end where a starts
 * gpu.release(flat);
 * ```
 */
export function stackedView(parts: readonly Tensor[]): Tensor | null {
  if (parts.length === 0) return null;
  const first = parts[0], tail = first.shape.slice(1).join();
  let rows = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (
      p.buffer !== first.buffer || p.dtype !== first.dtype || p.shape.length < 1 ||
      p.shape.slice(1).join() !== tail ||
      (i > 0 && p.offset !== parts[i - 1].offset + parts[i - 1].byteLength)
    ) {
      return null;
    }
    rows += p.shape[0];
  }
  return new Tensor(
    first.buffer,
    [rows, ...first.shape.slice(1)],
    first.dtype,
    first.offset,
    first.allocation,
  );
}
