/**
 * Text (or token ids) in, embeddings out: a model directory opened as config + weights +
 * tokenizer, with length-sorted batching so that padding stays small.
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import { loadConfig, type XlmrConfig } from "./config.ts";
import { XlmrTokenizer } from "./tokenizer.ts";
import { XlmrParams } from "./params.ts";
import { exists } from "./atomic_write.ts";
import { makeTokenBatch, type Pooling, XlmrModel } from "./xlmr.ts";

/** One input: raw text, a (text, pair) to encode as `<s> A </s></s> B </s>`, or ids. */
export type EmbedInput = { text: string; pair?: string } | { inputIds: number[] };

/** Options of {@linkcode Encoder.embed}. */
export interface EmbedOptions {
  pooling?: Pooling;
  maxLength?: number;
  batchSize?: number;
  /** Called after each batch with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * A loaded model with its tokenizer.
 *
 * @example
 * ```ts ignore
 * const gpu = await Gpu.create();
 * const enc = await Encoder.load(gpu, "path/to/model");
 * const emb = await enc.embed([{ text: "Hello" }, { text: "Hallo" }], { pooling: "mean" });
 * console.log(emb.length / enc.config.hiddenSize); // 2
 * ```
 */
export class Encoder {
  readonly model: XlmrModel;

  constructor(
    readonly params: XlmrParams,
    readonly tokenizer: XlmrTokenizer | null,
  ) {
    this.model = new XlmrModel(params);
  }

  /** The model's configuration. */
  get config(): XlmrConfig {
    return this.params.config;
  }

  /**
   * Opens a Hugging Face model directory (`config.json`, safetensors weights, and tokenizer files
   * when present; `tokenizerDir` overrides where the tokenizer is read from).
   */
  static async load(
    gpu: Gpu,
    dir: string,
    tokenizerDir?: string,
    opts: { dtype?: "f32" | "f16" } = {},
  ): Promise<Encoder> {
    const config = await loadConfig(dir);
    const tokDir = tokenizerDir ?? dir;
    const hasTokenizer = await exists(join(tokDir, "tokenizer.json")) ||
      await exists(join(tokDir, "sentencepiece.bpe.model"));
    if (tokenizerDir && !hasTokenizer) {
      throw new Error(`${tokenizerDir}: no tokenizer.json or sentencepiece.bpe.model`);
    }
    const tokenizer = hasTokenizer ? await XlmrTokenizer.fromDir(tokDir) : null;
    // The last token (<mask>) may lie outside a model's table: text never produces it.
    if (tokenizer && tokenizer.vocabSize - 1 > config.vocabSize) {
      throw new Error(
        `${tokDir}: tokenizer has ${tokenizer.vocabSize} tokens but ${dir}/config.json has ` +
          `vocab_size ${config.vocabSize}`,
      );
    }
    const params = await XlmrParams.load(gpu, dir, config);
    if (opts.dtype === "f16") params.toF16LinearWeights();
    return new Encoder(params, tokenizer);
  }

  /** Longest sequence the position table allows. */
  get maxSequence(): number {
    return this.config.maxPositions - this.config.padTokenId - 1;
  }

  /** Token ids of one input, with `<s>`/`</s>`, truncated to `maxLength`. */
  ids(input: EmbedInput, maxLength: number): number[] {
    if ("inputIds" in input) return input.inputIds;
    if (!this.tokenizer) {
      throw new Error("this model has no tokenizer files: give input_ids or --tokenizer DIR");
    }
    return input.pair !== undefined
      ? this.tokenizer.encodePair(input.text, input.pair, maxLength)
      : this.tokenizer.encode(input.text, maxLength);
  }

  /** Embeddings [n, hidden] (row-major, not normalised) in input order. */
  async embed(inputs: EmbedInput[], opts: EmbedOptions = {}): Promise<Float32Array> {
    const pooling = opts.pooling ?? "cls";
    const maxLength = Math.min(opts.maxLength ?? 512, this.maxSequence);
    const batchSize = opts.batchSize ?? 64;
    const H = this.config.hiddenSize;
    const seqs = inputs.map((x) => this.ids(x, maxLength));
    // Sort by length so each batch pads little; results go back to input order.
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
    const out = new Float32Array(inputs.length * H);
    const gpu = this.params.gpu;
    // Several batches are recorded before one read-back: the queue wait costs milliseconds.
    const group = 8;
    for (let g0 = 0; g0 < order.length; g0 += batchSize * group) {
      const pending: { idx: number[]; t: ReturnType<XlmrModel["forward"]>["pooled"] }[] = [];
      for (let s = g0; s < Math.min(order.length, g0 + batchSize * group); s += batchSize) {
        const idx = order.slice(s, s + batchSize);
        const batch = makeTokenBatch(idx.map((i) => seqs[i]), this.config);
        pending.push({ idx, t: this.model.forward(batch, pooling).pooled });
      }
      const values = await gpu.readMany(pending.map((p) => p.t));
      pending.forEach((p, j) => {
        p.idx.forEach((i, r) => out.set(values[j].subarray(r * H, (r + 1) * H), i * H));
        gpu.release(p.t);
      });
      opts.onProgress?.(Math.min(order.length, g0 + batchSize * group), order.length);
    }
    return out;
  }

  /** Frees the parameters. */
  release(): void {
    this.params.release();
  }
}
