/**
 * A seeded pseudo-random generator whose whole state is four 32-bit words, so samplers can save it
 * in a checkpoint and continue bit for bit after a resume. The generator is sfc32 (Chris Doty-
 * Humphrey's small fast counting generator, as in PractRand), seeded through splitmix32.
 * @module
 */

/** The serialisable state of a {@linkcode Random}: four unsigned 32-bit words. */
export interface RandomState {
  sfc32: [number, number, number, number];
}

function splitmix32(x: number): () => number {
  let s = x >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A seeded PRNG (sfc32) with a JSON-serialisable state.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * const r = new Random(42);
 * r.float(); // a number in [0, 1)
 * const saved = r.state();
 * const a = r.int(10);
 * console.log(Random.restore(saved).int(10) === a); // true
 * ```
 */
export class Random {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;

  /** Seeds from any safe integer (negative and > 2³² seeds are distinct seeds too). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Random: seed must be a safe integer, got ${seed}`);
    }
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const mix = splitmix32((seed >>> 0) ^ Math.imul(hi, 0x27d4eb2d));
    this.#a = mix();
    this.#b = mix();
    this.#c = mix();
    this.#d = (mix() | 1) >>> 0;
    for (let i = 0; i < 12; i++) this.u32(); // warm up away from correlated seeds
  }

  /** The next unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = (this.#b ^ (this.#b >>> 9)) >>> 0;
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }

  /** An integer in [0, n), unbiased (rejection sampling). `n` must be in [1, 2³²]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) {
      throw new RangeError(`Random.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability `p`. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("Random.pick: empty array");
    return xs[this.int(xs.length)];
  }

  /** An index drawn with probability proportional to `weights` (non-negative, not all zero). */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) {
      if (!(w >= 0) || !Number.isFinite(w)) {
        throw new RangeError(`Random.weighted: weights must be finite and >= 0, got ${w}`);
      }
      total += w;
    }
    if (!(total > 0)) throw new RangeError("Random.weighted: all weights are zero");
    let x = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i; // rounding
    return weights.length - 1;
  }

  /** Shuffles `xs` in place (Fisher–Yates) and returns it. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i];
      xs[i] = xs[j];
      xs[j] = t;
    }
    return xs;
  }

  /** The state as plain JSON data. */
  state(): RandomState {
    return { sfc32: [this.#a, this.#b, this.#c, this.#d] };
  }

  /** A generator that continues exactly where the one that produced `state` stood. */
  static restore(state: unknown): Random {
    const words = (state as RandomState | null)?.sfc32;
    if (
      !Array.isArray(words) || words.length !== 4 ||
      !words.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)
    ) {
      throw new TypeError(
        `Random.restore: expected {sfc32: [4 × u32]}, got ${JSON.stringify(state)}`,
      );
    }
    const r = new Random(0);
    [r.#a, r.#b, r.#c, r.#d] = words;
    return r;
  }
}
