/**
 * Text (or token ids) in, embeddings out: a model directory opened as config + weights +
 * tokenizer, with length-sorted batching so that padding stays small. A sentence-transformers
 * folder (modules.json) also brings its pooling, Dense layers and Normalize, which `embed` applies
 * when no pooling is asked for, computing what `SentenceTransformer(dir).encode` computes.
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { l2Normalize } from "../kernels/l2_norm.ts";
import { readSentenceTransformers, type StFolder } from "./sentence_transformers.ts";
import { loadConfig, maxSequenceLength, type XlmrConfig } from "./config.ts";
import { hasTokenizerFiles, loadTokenizer, type TextTokenizer } from "./text_tokenizer.ts";
import { XlmrParams } from "./params.ts";
import { makeTokenBatch, type Pooling, XlmrModel } from "./xlmr.ts";
import { type HubOptions, type ModelSource, resolveModel } from "./hub.ts";

/**
 * One input: raw text, a (text, pair) to encode as the tokenizer's sentence pair (`<s> A </s></s>
 * B </s>`, or BERT's `[CLS] A [SEP] B [SEP]` with token type 1 for B), or ids (with optional
 * token type ids).
 */
export type EmbedInput = { text: string; pair?: string } | {
  inputIds: number[];
  tokenTypeIds?: number[];
};

/** Options of {@linkcode Encoder.embed}. */
export interface EmbedOptions {
  /**
   * The transformer's output pooled this way (no Dense, no Normalize). Unset: a
   * sentence-transformers folder's own pipeline, else "cls".
   */
  pooling?: Pooling;
  /** Tokens per input. Unset: a sentence-transformers folder's max_seq_length, else 512. */
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
  /** Where the weights came from (a folder, or a Hub id resolved to a commit); set by `load`. */
  source?: ModelSource;

  constructor(
    readonly params: XlmrParams,
    readonly tokenizer: TextTokenizer | null,
    /** The sentence-transformers pipeline when the model folder is one, else null. */
    readonly st: StFolder | null = null,
  ) {
    this.model = new XlmrModel(params);
    // The Dense layers become parameters (`head.*`): training can update them with the rest.
    if (st && st.dense.length > 0 && params.head.length === 0) params.addHead(st.dense);
  }

  /**
   * Width of {@link embed}'s vectors: the last Dense layer's output when the
   * sentence-transformers pipeline runs (`pooling` unset), else the hidden size.
   */
  embeddingDim(pooling?: Pooling): number {
    return this.model.outputDim(pooling === undefined && this.st !== null);
  }

  /** Normalize of the sentence-transformers pipeline, when the folder lists it (in a scope). */
  private stNormalize(x: Tensor): Tensor {
    return this.st?.normalize ? l2Normalize(this.params.gpu, x).y : x;
  }

  /** The model's configuration. */
  get config(): XlmrConfig {
    return this.params.config;
  }

  /**
   * Opens a Hugging Face model directory (`config.json`, safetensors weights, and tokenizer files
   * when present; `tokenizerDir` overrides where the tokenizer is read from). `dir` and
   * `tokenizerDir` may be Hub ids `ORG/NAME[@REVISION]` (a local folder of that name wins): they are
   * resolved to snapshot folders of the Hugging Face cache first (see `model/hub.ts`; `opts.hub`
   * overrides `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`).
   */
  static async load(
    gpu: Gpu,
    dir: string,
    tokenizerDir?: string,
    opts: { dtype?: "f32" | "f16"; hub?: HubOptions } = {},
  ): Promise<Encoder> {
    const source = await resolveModel(dir, opts.hub);
    dir = source.dir;
    // A sentence-transformers folder: the transformer lives in its first module's folder.
    const st = await readSentenceTransformers(dir);
    if (st) dir = join(dir, st.transformerPath);
    if (tokenizerDir) {
      tokenizerDir = (await resolveModel(tokenizerDir, { ...opts.hub, files: "tokenizer" })).dir;
    }
    const config = await loadConfig(dir);
    const tokDir = tokenizerDir ?? dir;
    const hasTokenizer = await hasTokenizerFiles(tokDir);
    if (tokenizerDir && !hasTokenizer) {
      throw new Error(`${tokenizerDir}: no tokenizer.json, vocab.txt or sentencepiece.bpe.model`);
    }
    // The tokenizer follows its own files, not the architecture (multilingual MiniLM is a
    // BertModel with XLM-R's SentencePiece tokenizer).
    const tokenizer = hasTokenizer ? await loadTokenizer(tokDir) : null;
    // XLM-R's last token (<mask>) may lie outside a model's table: text never produces it.
    // WordPiece can produce any of its tokens.
    const needed = tokenizer?.kind === "wordpiece"
      ? tokenizer.vocabSize
      : (tokenizer?.vocabSize ?? 1) - 1;
    if (tokenizer && needed > config.vocabSize) {
      throw new Error(
        `${tokDir}: tokenizer has ${tokenizer.vocabSize} tokens but ${dir}/config.json has ` +
          `vocab_size ${config.vocabSize}`,
      );
    }
    const params = await XlmrParams.load(gpu, dir, config);
    if (opts.dtype === "f16") params.toF16LinearWeights();
    const encoder = new Encoder(params, tokenizer, st);
    encoder.source = source;
    return encoder;
  }

  /** Longest sequence the position table allows. */
  get maxSequence(): number {
    return maxSequenceLength(this.config);
  }

  /** Token ids of one input, with `<s>`/`</s>` (`[CLS]`/`[SEP]`), truncated to `maxLength`. */
  ids(input: EmbedInput, maxLength: number): number[] {
    return this.typedIds(input, maxLength).ids;
  }

  /** {@link ids} with the token type ids (undefined: all 0). */
  typedIds(input: EmbedInput, maxLength: number): { ids: number[]; typeIds?: number[] } {
    if ("inputIds" in input) return { ids: input.inputIds, typeIds: input.tokenTypeIds };
    if (!this.tokenizer) {
      throw new Error("this model has no tokenizer files: give input_ids or --tokenizer DIR");
    }
    // sentence_bert_config.json's do_lower_case: the Transformer module lowercases texts first.
    const lower = (t: string) => (this.st?.lowercase ? t.toLowerCase() : t);
    return input.pair !== undefined
      ? this.tokenizer.encodePairWithTypes(lower(input.text), lower(input.pair), maxLength)
      : { ids: this.tokenizer.encode(lower(input.text), maxLength) };
  }

  /**
   * Embeddings [n, {@link embeddingDim}] (row-major) in input order: the pooled transformer
   * output (not normalised), or with `pooling` unset on a sentence-transformers folder, its
   * pipeline's output.
   */
  async embed(inputs: EmbedInput[], opts: EmbedOptions = {}): Promise<Float32Array> {
    const st = opts.pooling === undefined ? this.st : null;
    const pooling = st ? st.pooling : opts.pooling ?? "cls";
    const maxLength = Math.min(opts.maxLength ?? this.st?.maxSeqLength ?? 512, this.maxSequence);
    const batchSize = opts.batchSize ?? 64;
    const H = this.embeddingDim(opts.pooling);
    const typed = inputs.map((x) => this.typedIds(x, maxLength));
    const seqs = typed.map((x) => x.ids);
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
        const batch = makeTokenBatch(
          idx.map((i) => seqs[i]),
          this.config,
          idx.map((i) => typed[i].typeIds),
        );
        // Recorded in a scope (only the rows survive), read outside it, then released.
        const t = gpu.scope(() => {
          const pooled = this.model.forward(batch, pooling, false, false, st !== null).pooled;
          return st ? this.stNormalize(pooled) : pooled;
        }, "embed");
        pending.push({ idx, t });
      }
      const values = await gpu.readMany(pending.map((p) => p.t));
      pending.forEach((p, j) => {
        p.idx.forEach((i, r) => out.set(values[j].subarray(r * H, (r + 1) * H), i * H));
      });
      gpu.releaseAll(pending);
      opts.onProgress?.(Math.min(order.length, g0 + batchSize * group), order.length);
    }
    return out;
  }

  /** Frees the parameters. */
  release(): void {
    this.params.release();
  }
}
