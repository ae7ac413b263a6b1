import { equal, ok } from "node:assert/strict";
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { HalfWeights } from "../../model/half_weights.ts";
import type { XlmrParams } from "../../model/params.ts";
import {
  ENCODING_SAVED,
  type Grads,
  LAYER_SAVED,
  makeTokenBatch,
  MIXED_HALF_SAVED,
  XlmrModel,
} from "../../model/xlmr.ts";
import { freshSeed, gpuTest, randn, relErr, rng } from "../_helpers.ts";
import { perturbedWeights, randomSeqs, tinyConfig, uploadWeights } from "./_tiny.ts";

const verbose = !!Deno.env.get("TEST_VERBOSE");
// Mixed precision against f32 on the tiny model: f16 storage of activations and weights rounds
// each at 2^-11 relative, so the two runs differ by that much, not by f32 noise. Measured over 6
// seeds with TEST_VERBOSE=1: pooled ≤ 3.4e-4, gradients ≤ 1.2e-3 (relative, whole tensor). The
// limits sit about 15x above; a product reading a stale or wrong weight copy, or a layer that
// skips a saved tensor, moves them far more.
const POOLED_TOL = 5e-3;
const GRAD_TOL = 2e-2;

function gradsFor(gpu: Gpu, params: XlmrParams): Grads {
  return new Map(
    params.list().map((p) => [p.name, p.chunks.map((t) => gpu.zeros(t.shape, "f32", "grad"))]),
  );
}

/** Pooled output and every gradient of one forward/backward with the given settings. */
async function run(
  gpu: Gpu,
  model: XlmrModel,
  seqs: number[][],
  dPooled: Float32Array,
  checkpointing: boolean,
): Promise<{ pooled: Float32Array; grads: Map<string, Float32Array>; dtypes: string[] }> {
  const grads = gradsFor(gpu, model.params);
  const f = model.forward(makeTokenBatch(seqs, model.config), "mean", true, checkpointing);
  const state = f.state!;
  const dtypes: string[] = [];
  const layer0 = state.layers[0] as unknown as Record<string, Tensor> | undefined;
  if (layer0) {
    for (const key of Object.keys(LAYER_SAVED)) dtypes.push(`${key}:${layer0[key].dtype}`);
  }
  for (const key of Object.keys(ENCODING_SAVED)) {
    dtypes.push(`${key}:${(state[key as keyof typeof state] as Tensor).dtype}`);
  }
  for (const t of state.inputs ?? []) dtypes.push(`input:${t.dtype}`);
  const pooled = await gpu.read(f.pooled);
  const d = gpu.fromArray(dPooled, f.pooled.shape);
  model.backward(state, d, grads);
  const out = new Map<string, Float32Array>();
  for (const [name, ts] of grads) {
    if (name.startsWith("pooler.")) continue;
    out.set(name, await gpu.read(ts[0]));
  }
  gpu.release(f.pooled, d, ...[...grads.values()].flat());
  return { pooled, grads: out, dtypes };
}

gpuTest(
  "mixed precision follows f32 within f16 rounding and saves exactly the declared tensors in f16",
  async (gpu) => {
    const seed = freshSeed("mixed precision");
    const config = tinyConfig();
    const params = uploadWeights(gpu, config, perturbedWeights(config, seed));
    const r = rng(seed + 1);
    const seqs = randomSeqs(r, [7, 4, 9, 5], config.vocabSize);
    const dPooled = randn(seqs.length * config.hiddenSize, r);
    const model = new XlmrModel(params);
    const f32 = await run(gpu, model, seqs, dPooled, false);
    const half = new HalfWeights(params);
    half.refresh();
    model.useHalfWeights(half);
    ok(model.mixed);
    const mixed = await run(gpu, model, seqs, dPooled, false);
    const pooledErr = relErr(mixed.pooled, f32.pooled);
    ok(pooledErr > 1e-5, `pooled differs from f32 by ${pooledErr}: f16 storage did not happen`);
    ok(pooledErr <= POOLED_TOL, `pooled: relative error ${pooledErr} > ${POOLED_TOL}`);
    let worst = 0;
    for (const [name, g] of f32.grads) {
      // The key bias's exact gradient is zero (softmax ignores a shift shared by a row's scores):
      // both runs hold rounding noise there, and a relative error means nothing.
      if (name.endsWith("attention.self.key.bias")) continue;
      const e = relErr(mixed.grads.get(name)!, g);
      worst = Math.max(worst, e);
      ok(e <= GRAD_TOL, `${name}: relative error ${e} > ${GRAD_TOL}`);
    }
    if (verbose) console.log(`mixed vs f32: pooled ${pooledErr}, worst gradient ${worst}`);
    // Stored dtypes follow MIXED_HALF_SAVED (which the memory plan sizes from).
    for (const entry of mixed.dtypes) {
      const [key, dtype] = entry.split(":");
      const half = key === "input" || MIXED_HALF_SAVED.has(key);
      ok((dtype === "f16") === half, `saved ${key} is ${dtype}`);
    }
    equal(
      mixed.dtypes.length,
      Object.keys(LAYER_SAVED).length + Object.keys(ENCODING_SAVED).length,
    );
    ok(f32.dtypes.every((e) => !e.endsWith(":f16")), "f32 mode saves nothing in f16");

    // Checkpointing recomputes each layer from its f16 input: the very same gradients.
    const ckpt = await run(gpu, model, seqs, dPooled, true);
    ok(ckpt.dtypes.filter((e) => e === "input:f16").length === config.numLayers);
    for (const [name, g] of mixed.grads) {
      const got = ckpt.grads.get(name)!;
      ok(got.every((v, i) => Object.is(v, g[i])), `${name}: checkpointed mixed gradient differs`);
    }
    model.useHalfWeights(null);
    half.release();
    params.release();
  },
);
