/**
 * A tiny random XLM-R for tests that compare the GPU model with the float64 reference in
 * `model/xlmr_reference.ts`: its config, perturbed weights, random id sequences.
 * @module
 */
import type { Gpu } from "../../kernels/runtime.ts";
import { presetConfig, type XlmrConfig } from "../../model/config.ts";
import { randomWeights } from "../../model/init.ts";
import { XlmrParams } from "../../model/params.ts";
import type { RefWeights } from "../../model/xlmr_reference.ts";
import { rng } from "../_helpers.ts";

/**
 * Hidden 32, 2 layers, 4 heads. LayerNorm eps 1e-3, not XLM-R's 1e-5: an eps the engine takes
 * from somewhere other than the config then changes the result far above the noise.
 */
export function tinyConfig(overrides: Partial<XlmrConfig> = {}): XlmrConfig {
  return presetConfig("tiny", {
    vocabSize: 97,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 48,
    maxPositions: 40,
    layerNormEps: 1e-3,
    ...overrides,
  });
}

/**
 * The same size as a BERT (`model_type: "bert"`): positions from 0, pad id 0, two token types,
 * 40 positions all usable. LayerNorm eps 1e-3 for the same reason as above.
 */
export function tinyBertConfig(overrides: Partial<XlmrConfig> = {}): XlmrConfig {
  return presetConfig("bert-tiny", {
    vocabSize: 97,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 48,
    maxPositions: 40,
    layerNormEps: 1e-3,
    ...overrides,
  });
}

/** `<s>`, random ids ≥ 4, `</s>` for each length. */
export function randomSeqs(r: () => number, lengths: number[], vocab: number): number[][] {
  return lengths.map((n) => {
    const s = [0];
    for (let i = 0; i < n - 2; i++) s.push(4 + Math.floor(r() * (vocab - 4)));
    s.push(2);
    return s;
  });
}

/** One named weight. */
export interface NamedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Float64 copies by name, for the reference. */
export function refWeights(ws: NamedWeight[]): RefWeights {
  return new Map(ws.map((w) => [w.name, Float64Array.from(w.data)]));
}

/** Random weights with non-trivial LayerNorm and biases, so that every path is exercised. */
export function perturbedWeights(config: XlmrConfig, seed: number): NamedWeight[] {
  const r = rng(seed);
  return randomWeights(config, seed).map((w) => {
    const data = w.data.map((v) =>
      w.name.includes("LayerNorm") || w.name.endsWith(".bias") ? v + (r() - 0.5) * 0.2 : v * 5
    );
    return { ...w, data };
  });
}

/** GPU parameters holding `weights`. */
export function uploadWeights(gpu: Gpu, config: XlmrConfig, weights: NamedWeight[]): XlmrParams {
  const params = XlmrParams.init(gpu, config, 0);
  for (const w of weights) params.upload(w.name, w.data);
  return params;
}
