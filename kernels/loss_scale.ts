/**
 * Dynamic loss scaling for mixed-precision training, with PyTorch `GradScaler` semantics, kept on
 * the GPU. The scale lives in a tiny f32 tensor `[scale, clean steps since the last change]`
 * ({@linkcode createLossScaleState}); {@linkcode applyLossScale} multiplies the loss gradient by
 * it, and {@linkcode gradNorm} given `{ state }` unscales the norm and the clip factor, detects
 * inf/NaN and updates the scale, all in its one finishing dispatch. Nothing is read back to the
 * host, so a step stays one GPU submission.
 *
 * With a power-of-two scale (the default 2^16, grown ×2 and backed off ×0.5) every scaling and
 * unscaling is exact in f32, so a clean scaled step gives the same norm, clip factor and AdamW
 * update, bit for bit, as the unscaled f32 step.
 * @module
 */
import { Gpu } from "./runtime.ts";
import { kernel } from "./spec.ts";
import type { Tensor } from "./tensor.ts";

const APPLY = kernel({
  shader: "loss_scale.wgsl",
  entries: ["apply"],
  uniforms: { count: "u32" },
  bindings: { x: "read_write", state: { access: "read", wgsl: "ls_state" } },
});

/** How the scale changes (PyTorch `GradScaler`'s arguments; every field optional). */
export interface LossScaleOptions {
  /** Consecutive finite steps after which the scale grows (integer ≥ 1; default 2000). */
  growthInterval?: number;
  /** Factor the scale grows by (> 1; default 2). */
  growthFactor?: number;
  /** Factor the scale shrinks by after a non-finite gradient (in (0, 1); default 0.5). */
  backoffFactor?: number;
}

/** PyTorch's `GradScaler` defaults. */
export const LOSS_SCALE_DEFAULTS: Readonly<Required<LossScaleOptions>> = Object.freeze({
  growthInterval: 2000,
  growthFactor: 2,
  backoffFactor: 0.5,
});

/** The counter is an f32: integers above 2^24 are not all representable. */
const MAX_INTERVAL = 2 ** 24;

/**
 * `o` with defaults filled in, after checking it; a bad value throws a RangeError naming it.
 *
 * @example
 * ```ts
 * import { lossScaleOptions } from "./loss_scale.ts";
 * console.log(lossScaleOptions({ growthInterval: 100 }));
 * // { growthInterval: 100, growthFactor: 2, backoffFactor: 0.5 }
 * ```
 */
export function lossScaleOptions(
  o: LossScaleOptions = {},
  op = "lossScaleOptions",
): Required<LossScaleOptions> {
  const r = {
    growthInterval: o.growthInterval ?? LOSS_SCALE_DEFAULTS.growthInterval,
    growthFactor: o.growthFactor ?? LOSS_SCALE_DEFAULTS.growthFactor,
    backoffFactor: o.backoffFactor ?? LOSS_SCALE_DEFAULTS.backoffFactor,
  };
  if (
    !Number.isInteger(r.growthInterval) || r.growthInterval < 1 || r.growthInterval > MAX_INTERVAL
  ) {
    throw new RangeError(
      `${op}: growthInterval must be an integer in [1, 2^24], got ${r.growthInterval}`,
    );
  }
  if (!Number.isFinite(r.growthFactor) || !(r.growthFactor > 1)) {
    throw new RangeError(`${op}: growthFactor must be finite and > 1, got ${r.growthFactor}`);
  }
  if (!(r.backoffFactor > 0 && r.backoffFactor < 1)) {
    throw new RangeError(`${op}: backoffFactor must be in (0, 1), got ${r.backoffFactor}`);
  }
  return r;
}

/**
 * A new loss-scale state on the GPU: f32 `[initScale, 0]` (the scale, and the number of clean
 * steps since it last changed). Pass it to {@linkcode applyLossScale} and to
 * {@linkcode gradNorm}, which updates it every step.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { createLossScaleState } from "./loss_scale.ts";
 * const gpu = await Gpu.create();
 * const state = createLossScaleState(gpu);
 * console.log(await gpu.read(state)); // Float32Array [65536, 0]
 * gpu.release(state);
 * ```
 */
export function createLossScaleState(gpu: Gpu, initScale = 65536): Tensor {
  if (!Number.isFinite(initScale) || !(initScale > 0) || !Number.isFinite(Math.fround(initScale))) {
    throw new RangeError(
      `createLossScaleState: initScale must be finite (in f32) and > 0, got ${initScale}`,
    );
  }
  return gpu.fromArray(new Float32Array([initScale, 0]), [2], "f32", "lossScale.state");
}

/**
 * Multiplies `x` (f32, any shape) by the current scale `state[0]`, in place, in one dispatch; the
 * scale is read on the GPU.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * import { applyLossScale, createLossScaleState } from "./loss_scale.ts";
 * const gpu = await Gpu.create();
 * const state = createLossScaleState(gpu, 8);
 * const dLoss = gpu.fromArray(new Float32Array([0.5, -0.25]), [2]);
 * applyLossScale(gpu, dLoss, state);
 * console.log(await gpu.read(dLoss)); // Float32Array [4, -2]
 * gpu.release(state, dLoss);
 * ```
 */
export function applyLossScale(gpu: Gpu, x: Tensor, state: Tensor): void {
  if (x.dtype !== "f32") throw new TypeError(`applyLossScale: x must be f32, got ${x}`);
  if (state.dtype !== "f32" || state.size !== 2) {
    throw new TypeError(`applyLossScale: state must be f32 [2] (scale, clean steps), got ${state}`);
  }
  if (x.size === 0) return;
  gpu.run(APPLY, {}, { x, state }, { count: x.size }, Gpu.grid(Math.ceil(x.size / 256)));
}
