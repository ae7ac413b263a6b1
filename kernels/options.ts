/**
 * Per-{@linkcode Gpu} switches of the kernels (`Gpu.create({ matmul: { … } })`, or
 * `gpu.options.matmul` afterwards): tests and benchmarks force a matmul tile shape, a split of K,
 * or f16 arithmetic on one device without touching any other.
 * @module
 */

/**
 * Workgroup shape of the tiled matmul kernel: WX×WY threads, each a (4·TM4)×(4·TN4) register
 * block, so a tile of C is (4·TM4·WY)×(4·TN4·WX); K advances BK at a time.
 */
export interface MatmulTiles {
  /** Threads along N. */
  WX: number;
  /** Threads along M. */
  WY: number;
  /** K tile held in workgroup memory (multiple of 4). */
  BK: number;
  /** Rows per thread / 4 (1, 2 or 4). */
  TM4: number;
  /** Columns per thread / 4 (1, 2 or 4). */
  TN4: number;
}

/** Matmul switches of a Gpu (all default to the automatic choice). */
export interface MatmulSwitches {
  /**
   * Every product uses these tiles (null: the shape table). WX·WY ≤ 256, BK a multiple of 4,
   * TM4 and TN4 in 1, 2, 4.
   */
  tiles: MatmulTiles | null;
  /**
   * Every product splits K into this many ranges (clamped to the number of BK steps; 1 disables
   * split-K; null: the automatic choice). An integer in 1..256.
   */
  splits: number | null;
  /**
   * Products with an f16 operand run their tiles and 4-term dot products in f16 (accumulators
   * stay f32; an f32 operand is rounded to f16 on load). Default false: f16 operands are widened
   * to f32 before any arithmetic. An experiment for benchmarks: it was measured slower and less
   * accurate on lavapipe (PERFORMANCE.md, "f16").
   */
  f16Math: boolean;
}

/** The switches with every field set (missing ones at their defaults), checked. */
export function matmulSwitches(s: Partial<MatmulSwitches> = {}): MatmulSwitches {
  const out: MatmulSwitches = {
    tiles: s.tiles ?? null,
    splits: s.splits ?? null,
    f16Math: s.f16Math ?? false,
  };
  checkMatmulSwitches(out);
  return out;
}

/** Throws a RangeError naming the bad field of `s`. */
export function checkMatmulSwitches(s: Partial<MatmulSwitches>): void {
  const { tiles, splits } = s;
  if (splits != null && !(Number.isInteger(splits) && splits >= 1 && splits <= 256)) {
    throw new RangeError(`matmul.splits: need an integer in 1..256 or null, got ${splits}`);
  }
  const bad = tiles && (tiles.BK % 4 !== 0 || tiles.BK < 4 || tiles.WX * tiles.WY > 256 ||
    ![1, 2, 4].includes(tiles.TM4) || ![1, 2, 4].includes(tiles.TN4));
  if (bad) {
    throw new RangeError(
      `matmul.tiles: need BK a multiple of 4, WX·WY ≤ 256, TM4 and TN4 in {1, 2, 4}; got ${
        JSON.stringify(tiles)
      }`,
    );
  }
}
