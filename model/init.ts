/**
 * Random initialisation of an XLM-R model, as Hugging Face's `_init_weights` does it:
 * normal(0, initializer_range) for linear and embedding weights, zero biases, LayerNorm weight 1
 * and bias 0, the padding rows of the word and position tables zero. `init` writes the result as
 * a Hugging Face model directory, which then loads through the same path as real checkpoints.
 * @module
 */
import { join } from "node:path";
import { configToJson, type XlmrConfig } from "./config.ts";
import { parameterSchema, parameterSpec, type ParamSpec } from "./parameter_shapes.ts";
import { writeSafetensors } from "./safetensors.ts";
import { writeFileAtomic, writeJsonAtomic } from "./atomic_write.ts";

/**
 * A small seeded PRNG (mulberry32) returning floats in [0, 1).
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./init.ts";
 * const r = mulberry32(1);
 * console.log(r() < 1); // true
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded standard-normal generator (Box–Muller over mulberry32). */
export function normalRng(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () =>
    Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
}

/** Freshly initialised values of one parameter, as its declaration says. */
export function initialValues(
  name: string,
  shape: number[],
  config: XlmrConfig,
  normal: () => number,
): Float32Array {
  return initialValuesOf({ ...parameterSpec(config, name), shape }, config, normal);
}

/** Freshly initialised values of a declared parameter (draws from `normal` only for "normal"). */
export function initialValuesOf(
  spec: ParamSpec,
  config: XlmrConfig,
  normal: () => number,
): Float32Array {
  const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  if (spec.init === "zeros") return data;
  if (spec.init === "ones") return data.fill(1);
  const std = config.initializerRange ?? 0.02;
  for (let i = 0; i < data.length; i++) data[i] = normal() * std;
  if (spec.zeroRow !== undefined) {
    const H = spec.shape[1];
    data.fill(0, spec.zeroRow * H, (spec.zeroRow + 1) * H);
  }
  return data;
}

/** All parameters of a fresh model, in checkpoint order. */
export function randomWeights(
  config: XlmrConfig,
  seed: number,
): { name: string; shape: number[]; data: Float32Array }[] {
  const normal = normalRng(seed);
  return parameterSchema(config).map((spec) => ({
    name: spec.name,
    shape: spec.shape,
    data: initialValuesOf(spec, config, normal),
  }));
}

/** Tokenizer files a Hugging Face XLM-R or BERT directory may carry. */
const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "sentencepiece.bpe.model",
  "vocab.txt",
  "special_tokens_map.json",
];

/** Copies the tokenizer files present in `from` into `to` (atomically); returns how many. */
export async function copyTokenizerFiles(from: string, to: string): Promise<number> {
  let copied = 0;
  for (const f of TOKENIZER_FILES) {
    try {
      await writeFileAtomic(join(to, f), await Deno.readFile(join(from, f)));
      copied++;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return copied;
}

/**
 * Writes a randomly initialised Hugging Face-format model directory: `config.json`,
 * `model.safetensors` and, when `tokenizerDir` is given, its tokenizer files.
 *
 * @example
 * ```ts ignore
 * import { presetConfig } from "./config.ts";
 * await initModelDir("tiny-model", presetConfig("tiny", { vocabSize: 16001 }), { seed: 1 });
 * ```
 */
export async function initModelDir(
  out: string,
  config: XlmrConfig,
  opts: { seed?: number; tokenizerDir?: string } = {},
): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  await writeSafetensors(join(out, "model.safetensors"), randomWeights(config, opts.seed ?? 0), {
    format: "pt",
  });
  await writeJsonAtomic(join(out, "config.json"), configToJson(config));
  if (opts.tokenizerDir) {
    if (await copyTokenizerFiles(opts.tokenizerDir, out) === 0) {
      throw new Error(
        `--tokenizer ${opts.tokenizerDir}: no tokenizer.json, vocab.txt or sentencepiece.bpe.model`,
      );
    }
  }
}
