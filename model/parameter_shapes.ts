/**
 * The model's parameters, declared once: each block builds its parameters through a
 * prefix-scoped {@linkcode ParamBuilder} (as candle's `VarBuilder`), which records the Hugging Face
 * name, the shape, how the parameter is initialised, whether AdamW decays it and whether inference
 * may store it in f16. Initialisation (init.ts), the GPU store and its optimiser groups and f16
 * conversion (params.ts), the memory plan and the checkpoint writers all read this list, so no
 * code picks tensors by matching substrings of their names.
 * @module
 */
import type { XlmrConfig } from "./config.ts";

/** How a parameter starts: N(0, initializer_range²), all zeros, all ones. */
export type InitKind = "normal" | "zeros" | "ones";

/** One declared parameter. */
export interface ParamSpec {
  /** Hugging Face name without the `roberta.`/`bert.` prefix. */
  name: string;
  shape: number[];
  init: InitKind;
  /** Whether AdamW's weight decay applies (Hugging Face: not biases, not LayerNorm). */
  decay: boolean;
  /** Whether `--dtype f16` inference stores it in f16 (linear-layer weights only). */
  f16: boolean;
  /** Row whose initial values are zero (the padding row of an embedding table), if any. */
  zeroRow?: number;
}

/**
 * Declares parameters under a name prefix.
 *
 * @example
 * ```ts
 * import { ParamBuilder } from "./parameter_shapes.ts";
 * const specs = new ParamBuilder().scope("encoder.layer.0").scope("output").linear("dense", 8, 4).specs;
 * console.log(specs.map((s) => `${s.name} ${s.shape} ${s.decay}`));
 * // ["encoder.layer.0.output.dense.weight 8,4 true", "encoder.layer.0.output.dense.bias 8 false"]
 * ```
 */
export class ParamBuilder {
  constructor(private readonly out: ParamSpec[] = [], private readonly prefix = "") {}

  /** Everything declared through this builder and its scopes, in declaration order. */
  get specs(): ParamSpec[] {
    return this.out;
  }

  /** A builder whose names start with `prefix.`. */
  scope(prefix: string): ParamBuilder {
    return new ParamBuilder(this.out, `${this.prefix}${prefix}.`);
  }

  /** `y = x·Wᵀ + b`: weight [outDim, inDim] (normal, decayed, f16-able), bias [outDim]. */
  linear(name: string, outDim: number, inDim: number, bias = true): this {
    const p = `${this.prefix}${name}.`;
    this.out.push({
      name: `${p}weight`,
      shape: [outDim, inDim],
      init: "normal",
      decay: true,
      f16: true,
    });
    if (bias) {
      this.out.push({ name: `${p}bias`, shape: [outDim], init: "zeros", decay: false, f16: false });
    }
    return this;
  }

  /** LayerNorm over `n` features: weight (ones) and bias (zeros), neither decayed. */
  layerNorm(name: string, n: number): this {
    const p = `${this.prefix}${name}.`;
    this.out.push(
      { name: `${p}weight`, shape: [n], init: "ones", decay: false, f16: false },
      { name: `${p}bias`, shape: [n], init: "zeros", decay: false, f16: false },
    );
    return this;
  }

  /** An embedding table [rows, dim] (normal, decayed, kept in f32), its `zeroRow` zeroed at init. */
  embedding(name: string, rows: number, dim: number, zeroRow?: number): this {
    this.out.push({
      name: `${this.prefix}${name}.weight`,
      shape: [rows, dim],
      init: "normal",
      decay: true,
      f16: false,
      ...(zeroRow !== undefined && zeroRow < rows ? { zeroRow } : {}),
    });
    return this;
  }
}

/** Every parameter of an XLM-R or BERT encoder with its pooler, in checkpoint order. */
export function parameterSchema(c: XlmrConfig): ParamSpec[] {
  const H = c.hiddenSize, I = c.intermediateSize;
  const root = new ParamBuilder();
  const emb = root.scope("embeddings");
  emb.embedding("word_embeddings", c.vocabSize, H, c.padTokenId);
  // BERT's positions start at 0, so its position table has no padding row.
  emb.embedding(
    "position_embeddings",
    c.maxPositions,
    H,
    c.modelType === "bert" ? undefined : c.padTokenId,
  );
  emb.embedding("token_type_embeddings", c.typeVocabSize, H);
  emb.layerNorm("LayerNorm", H);
  for (let l = 0; l < c.numLayers; l++) {
    const layer = root.scope(`encoder.layer.${l}`);
    const self = layer.scope("attention.self");
    for (const m of ["query", "key", "value"]) self.linear(m, H, H);
    layer.scope("attention.output").linear("dense", H, H).layerNorm("LayerNorm", H);
    layer.scope("intermediate").linear("dense", I, H);
    layer.scope("output").linear("dense", H, I).layerNorm("LayerNorm", H);
  }
  root.scope("pooler").linear("dense", H, H);
  return root.specs;
}

/** Names and shapes of every parameter, in checkpoint order. */
export function parameterShapes(c: XlmrConfig): [string, number[]][] {
  return parameterSchema(c).map((p) => [p.name, p.shape]);
}

/** The declared spec of `name` under config `c`; throws naming it when it is not a parameter. */
export function parameterSpec(c: XlmrConfig, name: string): ParamSpec {
  const spec = parameterSchema(c).find((p) => p.name === name);
  if (!spec) throw new RangeError(`${name} is not a parameter of this model`);
  return spec;
}
