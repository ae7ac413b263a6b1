/**
 * The XLM-R encoder on the GPU: embeddings, post-LN transformer layers, pooling, and the backward
 * pass in reverse layer order. The forward keeps exactly what the backward needs (per layer: the
 * input, q/k/v, attention output and log-sum-exp, the two pre-norm sums with their statistics, the
 * intermediate pre- and post-activation); inference drops it as it goes. With activation
 * checkpointing the forward keeps only each layer's input and the backward re-runs one layer at a
 * time from it. Hidden dropout (on the embeddings and on the attention-output and FFN-output
 * projections before their residual adds, as Hugging Face's BertModel/XLMRobertaModel place it)
 * draws its mask from a counter-based hash of a per-forward key, the layer, the site and the
 * element's position in the whole batch, so the backward, a checkpointed recomputation and
 * GradCache's chunks all see the same mask without storing it. Attention-probability dropout
 * (`DropoutSpec.attention`) runs inside the fused attention kernel with the same kind of mask.
 *
 * Mixed precision ({@linkcode XlmrModel.useHalfWeights}): the products read f16 weight copies, and
 * every [B·T, H] or [B·T, I] activation saved for the backward is stored in f16 (the statistics —
 * LayerNorm mean and rstd, attention log-sum-exp — stay f32, and all arithmetic is f32). Where a
 * saved activation is also read later in the forward (a layer's input, q/k/v, the attention output,
 * the first LayerNorm's output) the f32 value is rounded to f16 in place first, so the forward goes
 * on with exactly the values its backward reads back.
 *
 * With {@linkcode XlmrModel.fuseQkv} (the trainer's flat layout), a layer whose query, key and
 * value weights and biases lie back to back runs one [R, H]·[3H, H]ᵀ product into a packed
 * [R, 3H] q|k|v tensor that the attention kernels read and whose gradient they write packed.
 *
 * Shapes: B sequences padded to T tokens, H hidden, I intermediate. Activations are [B·T, H].
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { linear, linearBackward, linearGelu } from "../kernels/matmul.ts";
import { addLayerNorm, layerNorm, layerNormBackward } from "../kernels/layer_norm.ts";
import { geluBackward, tanh, tanhBackward } from "../kernels/gelu.ts";
import {
  attention,
  attentionBackward,
  attentionBackwardPacked,
  type AttentionDims,
  attentionPacked,
} from "../kernels/attention.ts";
import { stackedView } from "../kernels/tensor.ts";
import {
  buildScatterPlan,
  gatherRows,
  scatterAddRows,
  type ScatterPlan,
} from "../kernels/embedding.ts";
import { poolFirst, poolFirstBackward, poolMean, poolMeanBackward } from "../kernels/pooling.ts";
import { dropout, dropoutKey } from "../kernels/dropout.ts";
import { castF16ToF32, castF32ToF16, roundToF16 } from "../kernels/cast.ts";
import { isBert, maxSequenceLength, type XlmrConfig } from "./config.ts";
import type { XlmrParams } from "./params.ts";
import type { HalfWeights } from "./half_weights.ts";

/** How a sequence becomes one vector. */
export type Pooling = "cls" | "mean" | "pooler";

/** A padded batch of token ids, as the host prepares it. */
export interface TokenBatch {
  batch: number;
  seq: number;
  /** [B·T] token ids, padding = pad id. */
  ids: Uint32Array;
  /** [B·T] position ids: XLM-R cumsum(mask)·mask + pad; BERT 0, 1, … (padding 0). */
  positions: Uint32Array;
  /** [B·T] token type ids (0 except a BERT sentence pair's second segment; padding 0). */
  typeIds: Uint32Array;
  /** [B·T] 1 for real tokens, 0 for padding. */
  mask: Float32Array;
  /**
   * Index of the first sequence in the batch this one was sliced from (default 0): dropout masks
   * follow an element's position in that whole batch.
   */
  first?: number;
}

/**
 * Dropout of one forward pass: hidden probability `p`, attention-probability `attention`
 * (default 0), and the key their masks derive from.
 */
export interface DropoutSpec {
  p: number;
  attention?: number;
  key: number;
}

/**
 * Pads sequences to the longest one and computes the position ids and mask of the config's scheme
 * (XLM-R: tokens with the pad id are masked, positions cumsum(mask) + pad; BERT: every token of a
 * sequence is real, positions 0, 1, …). `typeIds`, when given, holds each sequence's token type ids
 * (missing or undefined entries: all 0). Fails naming the sequence when an id is outside the
 * vocabulary, a type id outside the type table, or a sequence is longer than the position table
 * allows.
 */
export function makeTokenBatch(
  seqs: number[][],
  config: XlmrConfig,
  typeIds?: readonly (readonly number[] | undefined)[],
): TokenBatch {
  if (seqs.length === 0) throw new RangeError("makeTokenBatch: no sequences");
  const pad = config.padTokenId;
  const bert = isBert(config);
  const maxLen = maxSequenceLength(config);
  const seq = Math.max(...seqs.map((s) => s.length));
  const batch = seqs.length;
  const ids = new Uint32Array(batch * seq).fill(pad);
  const positions = new Uint32Array(batch * seq).fill(bert ? 0 : pad);
  const types = new Uint32Array(batch * seq);
  const mask = new Float32Array(batch * seq);
  seqs.forEach((s, b) => {
    if (s.length === 0) throw new RangeError(`sequence ${b} is empty`);
    if (s.length > maxLen) {
      throw new RangeError(
        `sequence ${b} has ${s.length} tokens; the position table allows at most ${maxLen}`,
      );
    }
    const ty = typeIds?.[b];
    if (ty && ty.length !== s.length) {
      throw new RangeError(`sequence ${b}: ${ty.length} type ids for ${s.length} tokens`);
    }
    let count = 0;
    s.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
        throw new RangeError(
          `sequence ${b}, token ${t}: id ${id} is outside the vocabulary (0..${
            config.vocabSize - 1
          })`,
        );
      }
      const i = b * seq + t;
      ids[i] = id;
      if (ty) {
        const v = ty[t];
        if (!Number.isInteger(v) || v < 0 || v >= config.typeVocabSize) {
          throw new RangeError(
            `sequence ${b}, token ${t}: type id ${v} is outside the token type table ` +
              `(type_vocab_size ${config.typeVocabSize})`,
          );
        }
        types[i] = v;
      }
      if (bert) {
        // Every token of the sequence is real, whatever its id (BERT with XLM-R's tokenizer, as
        // multilingual MiniLM, starts with <s> = 0 = its pad_token_id), as Hugging Face's
        // attention mask from the tokenizer says.
        positions[i] = t;
        mask[i] = 1;
      } else if (id !== pad) {
        count++;
        positions[i] = count + pad;
        mask[i] = 1;
      }
    });
  });
  return { batch, seq, ids, positions, typeIds: types, mask };
}

/**
 * Sequences `start .. start + count - 1` of a padded batch, keeping its padded length, so that each
 * row is encoded exactly as in the whole batch (GradCache encodes a batch in such chunks).
 *
 * @example
 * ```ts
 * import { presetConfig } from "./config.ts";
 * import { makeTokenBatch, sliceTokenBatch } from "./xlmr.ts";
 * const whole = makeTokenBatch([[0, 5, 2], [0, 6, 7, 8, 2], [0, 9, 2]], presetConfig("tiny"));
 * const part = sliceTokenBatch(whole, 1, 2);
 * console.log(part.batch, part.seq); // 2 5
 * ```
 */
export function sliceTokenBatch(tokens: TokenBatch, start: number, count: number): TokenBatch {
  if (
    !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 ||
    start + count > tokens.batch
  ) {
    throw new RangeError(
      `sliceTokenBatch: sequences ${start}..${start + count - 1} are outside the batch of ` +
        `${tokens.batch}`,
    );
  }
  const T = tokens.seq, a = start * T, b = (start + count) * T;
  return {
    batch: count,
    seq: T,
    ids: tokens.ids.slice(a, b),
    positions: tokens.positions.slice(a, b),
    typeIds: tokens.typeIds.slice(a, b),
    mask: tokens.mask.slice(a, b),
    first: (tokens.first ?? 0) + start,
  };
}

interface LayerSaved {
  /**
   * With the fused QKV product, q, k and v are one packed [R, 3H] tensor (each row q | k | v),
   * held in all three fields.
   */
  packed?: boolean;
  h: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  ctx: Tensor;
  lse: Tensor;
  sum1: Tensor;
  mean1: Tensor;
  rstd1: Tensor;
  h1: Tensor;
  inter: Tensor;
  act: Tensor;
  sum2: Tensor;
  mean2: Tensor;
  rstd2: Tensor;
}

/** What one forward pass leaves for its backward (only when asked for). */
export interface ForwardState {
  tokens: TokenBatch;
  pooling: Pooling;
  ids: Tensor;
  positions: Tensor;
  mask: Tensor;
  embSum: Tensor;
  embMean: Tensor;
  embRstd: Tensor;
  /** Per layer, everything its backward needs (empty with checkpointing). */
  layers: LayerSaved[];
  /** With checkpointing: only each layer's input; the backward recomputes the rest. */
  inputs: Tensor[] | null;
  last: Tensor;
  /** Per head layer (when the forward ran the head): its input and its tanh output, if any. */
  head: { x: Tensor; y: Tensor | null }[];
  /** The forward's hidden dropout (null: none); the backward applies the same masks. */
  dropout: DropoutSpec | null;
  /**
   * The embedding backward's scatter plans for the word, position and token-type tables, uploaded
   * with the ids at the start of the forward: one upload of the step's host data, so the backward
   * records without a write (each write ends the command buffer, one more submit).
   */
  plans: { word: ScatterPlan; position: ScatterPlan; type: ScatterPlan } | null;
}

/**
 * Shape of a saved activation for an encoding of `seqs` sequences of `len` tokens (R = seqs·len
 * rows): [R, hidden], [R, intermediate], [R], or [seqs, heads, len].
 */
export type SavedShape = "R×H" | "R×I" | "R" | "S×heads×T";

/** The tensor-valued fields of `T`. */
type TensorFields<T> = { [K in keyof T]-?: T[K] extends Tensor ? K : never }[keyof T];

/**
 * Every tensor one layer saves for its backward, with its shape. The compiler holds this list to
 * {@linkcode LayerSaved} (a field added there must be added here), and the memory plan
 * (`training/memory_plan.ts`) sizes activations from it, so `--max-memory` stays right.
 */
export const LAYER_SAVED: { readonly [K in TensorFields<LayerSaved>]: SavedShape } = {
  h: "R×H",
  q: "R×H",
  k: "R×H",
  v: "R×H",
  ctx: "R×H",
  lse: "S×heads×T",
  sum1: "R×H",
  mean1: "R",
  rstd1: "R",
  h1: "R×H",
  inter: "R×I",
  act: "R×I",
  sum2: "R×H",
  mean2: "R",
  rstd2: "R",
};

/** The tensors one encoding saves once (not per layer), held to {@linkcode ForwardState}. */
export const ENCODING_SAVED: { readonly [K in TensorFields<ForwardState>]: SavedShape } = {
  ids: "R",
  positions: "R",
  mask: "R",
  embSum: "R×H",
  embMean: "R",
  embRstd: "R",
  last: "R×H",
};

/**
 * The saved activations that mixed precision stores in f16: every [R, H] and [R, I] tensor of a
 * layer, and the embedding sum. The rest stays f32: statistics (LayerNorm mean and rstd, attention
 * log-sum-exp), ids and mask, and the last hidden state (pooling reads it in f32).
 */
export const MIXED_HALF_SAVED: ReadonlySet<string> = new Set([
  ...Object.entries(LAYER_SAVED).filter(([, s]) => s === "R×H" || s === "R×I").map(([k]) => k),
  "embSum",
]);

/**
 * Bytes of a saved-activation inventory for `seqs` sequences of `len` tokens: 4-byte elements, or
 * 2-byte ones for the entries in `half` (mixed precision: {@linkcode MIXED_HALF_SAVED}).
 */
export function savedBytes(
  inventory: Record<string, SavedShape>,
  c: XlmrConfig,
  seqs: number,
  len: number,
  half: ReadonlySet<string> = new Set(),
): number {
  const R = seqs * len;
  const elements: Record<SavedShape, number> = {
    "R×H": R * c.hiddenSize,
    "R×I": R * c.intermediateSize,
    "R": R,
    "S×heads×T": seqs * c.numHeads * len,
  };
  return Object.entries(inventory).reduce(
    (n, [key, shape]) => n + (half.has(key) ? 2 : 4) * elements[shape],
    0,
  );
}

/** Result of {@linkcode XlmrModel.forward}. */
export interface ForwardResult {
  /** [B, H] pooled embeddings (not normalised). */
  pooled: Tensor;
  /** Saved activations when `train` was set. */
  state: ForwardState | null;
}

/** Gradients by parameter name, one tensor per chunk, as {@linkcode XlmrParams.like} makes. */
export type Grads = Map<string, Tensor[]>;

/**
 * The XLM-R encoder over a set of GPU parameters.
 *
 * @example
 * ```ts ignore
 * const model = new XlmrModel(params);
 * const batch = makeTokenBatch([[0, 5, 6, 2], [0, 7, 2]], params.config);
 * const { pooled } = model.forward(batch, "cls");
 * console.log(await params.gpu.read(pooled));
 * ```
 */
export class XlmrModel {
  readonly gpu: Gpu;
  readonly config: XlmrConfig;
  /** The f16 weight copies of mixed precision, or null (all f32). */
  private half: HalfWeights | null = null;
  /**
   * Fuse the query, key and value products into one `[R, H]·[3H, H]ᵀ` product (and one each for
   * dX and dW in the backward) wherever their weights and biases lie back to back in one buffer,
   * as the trainer's flat layout puts them (the trainer turns this on; gradients passed to
   * {@linkcode XlmrModel.backward} must then lie back to back too). Off: three products.
   */
  fuseQkv = false;

  constructor(readonly params: XlmrParams) {
    this.gpu = params.gpu;
    this.config = params.config;
  }

  /**
   * Turns mixed precision on (with the f16 copies the products read; their owner keeps them fresh)
   * or off (null). See the module comment for what is stored in f16.
   */
  useHalfWeights(half: HalfWeights | null): void {
    if (half && half.params !== this.params) {
      throw new Error("useHalfWeights: the copies belong to another parameter set");
    }
    this.half = half;
  }

  /** Whether mixed precision is on. */
  get mixed(): boolean {
    return this.half !== null;
  }

  private w(name: string): Tensor {
    return this.params.get(name);
  }

  /**
   * The stacked [3H, H] weight and [3H] bias of layer `l`'s query, key and value as the products
   * read them, or null when fusing is off or they do not lie back to back.
   */
  private qkv(l: number): { w: Tensor; b: Tensor } | null {
    if (!this.fuseQkv) return null;
    const names = qkvNames(l);
    const w = stackedView(names.map((n) => this.mw(`${n}.weight`)));
    const b = stackedView(names.map((n) => this.w(`${n}.bias`)));
    return w && b ? { w, b } : null;
  }

  /** Whether layer `l` runs the fused QKV product ({@linkcode XlmrModel.fuseQkv}). */
  fusesQkv(l: number): boolean {
    return this.qkv(l) !== null;
  }

  /** A linear-layer weight as the products read it: its f16 copy under mixed precision. */
  private mw(name: string): Tensor {
    return this.half?.get(name, true) ?? this.params.get(name);
  }

  /** Under mixed precision, an f16 copy of `t` for the backward (`t` itself is left as is). */
  private stored(t: Tensor): Tensor {
    return this.half ? castF32ToF16(this.gpu, t) : t;
  }

  /**
   * Under mixed precision, rounds `t` to f16 in place and returns its f16 copy for the backward;
   * the forward goes on with `t`, now holding exactly the stored values.
   */
  private rounded(t: Tensor): Tensor {
    return this.half ? roundToF16(this.gpu, t) : t;
  }

  /** An f32 view of a saved activation: itself, or a widened copy of an f16 one (caller frees). */
  private widened(t: Tensor): Tensor {
    return t.dtype === "f16" ? castF16ToF32(this.gpu, t) : t;
  }

  /** Width of the output: the last head layer's with `head`, else the hidden size. */
  outputDim(head = false): number {
    return head && this.params.head.length > 0
      ? this.params.head[this.params.head.length - 1].out
      : this.config.hiddenSize;
  }

  /**
   * Runs the encoder. With `train`, keeps what {@linkcode XlmrModel.backward} needs; with
   * `checkpointing` as well, keeps only each layer's input and lets the backward recompute the
   * layer (the same kernels on the same input, so the gradients are unchanged). With `head`, the
   * pooled rows go through the parameters' Dense head (a sentence-transformers folder's). With
   * `drop` (p > 0), hidden dropout with masks derived from `drop.key`.
   * Runs in a {@linkcode Gpu.scope}: what the result does not hold is released when it returns.
   */
  forward(...args: Parameters<XlmrModel["forwardScoped"]>): ForwardResult {
    return this.gpu.scope(() => this.forwardScoped(...args), "forward");
  }

  private forwardScoped(
    tokens: TokenBatch,
    pooling: Pooling,
    train = false,
    checkpointing = false,
    head = false,
    drop: DropoutSpec | null = null,
  ): ForwardResult {
    for (const [what, v] of [["p", drop?.p], ["attention", drop?.attention]] as const) {
      if (v !== undefined && !(v >= 0 && v < 1)) {
        throw new RangeError(`forward: dropout ${what} must be in [0, 1), got ${v}`);
      }
    }
    if (drop && drop.p === 0 && !drop.attention) drop = null;
    const gpu = this.gpu, c = this.config;
    const { batch: B, seq: T } = tokens;
    const H = c.hiddenSize, rows = B * T;
    const ids = gpu.fromArray(tokens.ids, [rows], "u32", "ids");
    const positions = gpu.fromArray(tokens.positions, [rows], "u32", "positions");
    const typeIds = gpu.fromArray(tokens.typeIds, [rows], "u32", "type_ids");
    const mask = gpu.fromArray(tokens.mask, [B, T], "f32", "mask");
    const plans = train
      ? {
        word: buildScatterPlan(gpu, tokens.ids),
        position: buildScatterPlan(gpu, tokens.positions),
        type: buildScatterPlan(gpu, tokens.typeIds),
      }
      : null;

    // Embeddings: word (chunked table) + position + token type, then LayerNorm.
    const embSum = gpu.zeros([rows, H], "f32", "emb.sum");
    const word = this.params.param("embeddings.word_embeddings.weight");
    word.chunks.forEach((t, k) => gatherRows(gpu, t, ids, embSum, k * word.chunkRows, true));
    gatherRows(gpu, this.w("embeddings.position_embeddings.weight"), positions, embSum, 0, true);
    gatherRows(gpu, this.w("embeddings.token_type_embeddings.weight"), typeIds, embSum, 0, true);
    gpu.release(typeIds);
    const emb = layerNorm(
      gpu,
      embSum,
      this.w("embeddings.LayerNorm.weight"),
      this.w("embeddings.LayerNorm.bias"),
      c.layerNormEps,
    );
    if (drop && drop.p > 0) {
      const y = this.drop(emb.y, tokens, drop, 0, 0);
      gpu.release(emb.y);
      emb.y = y;
    }

    const dims = this.dims(B, T);
    const saveAll = train && !checkpointing;
    const saved: LayerSaved[] = [];
    const inputs: Tensor[] = [];
    let h = emb.y;
    for (let l = 0; l < c.numLayers; l++) {
      const layer = this.layerForward(l, h, null, mask, dims, saveAll, tokens, drop);
      if (layer.saved) saved.push(layer.saved);
      else if (train) inputs.push(layer.input);
      else if (layer.input !== h) gpu.release(layer.input);
      if (layer.input !== h || !train) gpu.release(h); // mixed precision keeps the f16 copy
      h = layer.out;
    }
    const savedSum = train ? this.stored(embSum) : embSum;
    if (savedSum !== embSum) gpu.release(embSum);

    const hidden = h.reshape([B, T, H]);
    let pooled: Tensor;
    if (pooling === "mean") pooled = poolMean(gpu, hidden, mask);
    else {
      pooled = poolFirst(gpu, hidden);
      if (pooling === "pooler") {
        const dense = linear(
          gpu,
          pooled,
          this.w("pooler.dense.weight"),
          this.w("pooler.dense.bias"),
        );
        gpu.release(pooled);
        pooled = tanh(gpu, dense);
      }
    }
    const headSaved: { x: Tensor; y: Tensor | null }[] = [];
    if (head) {
      if (pooling === "pooler") throw new Error("the Dense head follows cls or mean pooling");
      this.params.head.forEach((layer, i) => {
        const b = layer.bias ? this.w(`head.${i}.bias`) : null;
        const z = linear(gpu, pooled, this.w(`head.${i}.weight`), b);
        const y = layer.tanh ? tanh(gpu, z) : null;
        if (y) gpu.release(z);
        if (train) headSaved.push({ x: pooled, y });
        else gpu.release(pooled);
        pooled = y ?? z;
      });
      // The caller frees what it gets; the backward still needs the last tanh output.
      const last = headSaved.at(-1)?.y;
      if (last) {
        pooled = gpu.alloc(last.shape, "f32", "head.out");
        gpu.copy(last, pooled);
      }
    }
    if (!train) return { pooled, state: null };
    return {
      pooled,
      state: {
        tokens,
        pooling,
        ids,
        positions,
        mask,
        embSum: savedSum,
        embMean: emb.mean,
        embRstd: emb.rstd,
        layers: saved,
        inputs: checkpointing ? inputs : null,
        last: h,
        head: headSaved,
        dropout: drop,
        plans,
      },
    };
  }

  /** Attention-probability dropout of encoder layer `l` (site 3), or undefined. */
  private attentionDrop(l: number, tokens: TokenBatch, d: DropoutSpec | null) {
    if (!d?.attention) return undefined;
    return {
      p: d.attention,
      key: dropoutKey(d.key, l + 1, 3),
      firstSequence: tokens.first ?? 0,
    };
  }

  /**
   * Dropout of a [B·T, H] activation at (`layer`, `site`): layer 0 is the embeddings, l + 1 is
   * encoder layer l; site 1 the attention output, 2 the FFN output. Also its own backward.
   */
  private drop(x: Tensor, tokens: TokenBatch, d: DropoutSpec, layer: number, site: number) {
    if (d.p === 0) return x; // attention dropout only
    return dropout(this.gpu, x, {
      p: d.p,
      key: dropoutKey(d.key, layer, site),
      offset: (tokens.first ?? 0) * tokens.seq * this.config.hiddenSize,
    });
  }

  /**
   * One post-LN transformer layer on `h` ([B·T, H]); `h` itself stays with the caller. With
   * `save`, returns everything the layer's backward needs (h included); otherwise its scope frees
   * it.
   */
  private layerForward(
    ...args: Parameters<XlmrModel["layerScoped"]>
  ): ReturnType<XlmrModel["layerScoped"]> {
    return this.gpu.scope(() => this.layerScoped(...args), "layer");
  }

  private layerScoped(
    l: number,
    h: Tensor,
    h16: Tensor | null,
    mask: Tensor,
    dims: AttentionDims,
    save: boolean,
    tokens: TokenBatch,
    drop: DropoutSpec | null,
  ): { out: Tensor; saved: LayerSaved | null; input: Tensor } {
    const gpu = this.gpu, eps = this.config.layerNormEps;
    const p = `encoder.layer.${l}.`;
    const dense = (x: Tensor, name: string) =>
      linear(gpu, x, this.mw(`${p}${name}.weight`), this.w(`${p}${name}.bias`));
    // Mixed precision: the input as stored (h16 when the caller already has it), q/k/v and the
    // attention output rounded in place, so attention and the next products use stored values.
    const input = h16 ?? this.rounded(h);
    const fused = this.qkv(l);
    let att: { out: Tensor; lse: Tensor }, q16: Tensor, k16: Tensor, v16: Tensor;
    if (fused) {
      // One product for q | k | v, and attention reading them from its packed rows.
      const qkv = linear(gpu, input, fused.w, fused.b);
      q16 = k16 = v16 = this.rounded(qkv);
      att = attentionPacked(gpu, qkv, mask, dims, this.attentionDrop(l, tokens, drop));
    } else {
      const q = dense(input, "attention.self.query");
      const k = dense(input, "attention.self.key");
      const v = dense(input, "attention.self.value");
      [q16, k16, v16] = [q, k, v].map((t) => this.rounded(t));
      att = attention(gpu, q, k, v, mask, dims, this.attentionDrop(l, tokens, drop));
    }
    const ctx16 = this.rounded(att.out);
    let proj = dense(ctx16, "attention.output.dense");
    if (drop && drop.p > 0) {
      const y = this.drop(proj, tokens, drop, l + 1, 1);
      gpu.release(proj);
      proj = y;
    }
    const ln1 = addLayerNorm(
      gpu,
      proj,
      h,
      this.w(`${p}attention.output.LayerNorm.weight`),
      this.w(`${p}attention.output.LayerNorm.bias`),
      eps,
    );
    gpu.release(proj);
    const h1 = this.rounded(ln1.y);
    // Bias and GELU in the matmul's epilogue; the pre-activation is kept for the backward.
    const { pre: inter, y: act32 } = linearGelu(
      gpu,
      h1,
      this.mw(`${p}intermediate.dense.weight`),
      this.w(`${p}intermediate.dense.bias`),
    );
    const act = this.stored(act32);
    let out = dense(act, "output.dense");
    if (drop && drop.p > 0) {
      const y = this.drop(out, tokens, drop, l + 1, 2);
      gpu.release(out);
      out = y;
    }
    const ln2 = addLayerNorm(
      gpu,
      out,
      ln1.y,
      this.w(`${p}output.LayerNorm.weight`),
      this.w(`${p}output.LayerNorm.bias`),
      eps,
    );
    gpu.release(out);
    if (!save) return { out: ln2.y, saved: null, input };
    return {
      out: ln2.y,
      input,
      saved: {
        packed: fused !== null,
        h: input,
        q: q16,
        k: k16,
        v: v16,
        ctx: ctx16,
        lse: att.lse,
        sum1: this.stored(ln1.sum),
        mean1: ln1.mean,
        rstd1: ln1.rstd,
        h1,
        inter: this.stored(inter),
        act,
        sum2: this.stored(ln2.sum),
        mean2: ln2.mean,
        rstd2: ln2.rstd,
      },
    };
  }

  private dims(batch: number, seq: number): AttentionDims {
    const c = this.config;
    return { batch, seq, heads: c.numHeads, headDim: c.hiddenSize / c.numHeads };
  }

  /**
   * Backpropagates `dPooled` ([B, H], the loss gradient w.r.t. the pooled output) through the
   * encoder, accumulating (+=) into `grads`, and frees the saved state. The pooler is not part of
   * training (cls and mean pooling do not reach it). A checkpointed state has each layer rebuilt
   * from its saved input just before that layer's backward, so one layer's set is alive at a time.
   * Runs in a {@linkcode Gpu.scope}: gradients of activations and the scatter plans not released
   * early go when it returns.
   */
  backward(...args: Parameters<XlmrModel["backwardScoped"]>): void {
    this.gpu.scope(() => this.backwardScoped(...args), "backward");
  }

  private backwardScoped(state: ForwardState, dPooled: Tensor, grads: Grads): void {
    const gpu = this.gpu, c = this.config;
    const { batch: B, seq: T } = state.tokens;
    const H = c.hiddenSize;
    if (state.pooling === "pooler") {
      throw new Error("training through the pooler is not supported; use cls or mean pooling");
    }
    if (!(state.inputs?.length === c.numLayers || state.layers.length === c.numLayers)) {
      throw new Error("backward: the forward state was already consumed or is incomplete");
    }
    const g = (name: string): Tensor => {
      const t = grads.get(name);
      if (!t || t.length !== 1) throw new Error(`no single gradient tensor for ${name}`);
      return t[0];
    };
    // The head first (last layer first): d(tanh), then the Dense layer's weights and input.
    let dOut = dPooled;
    for (let i = state.head.length - 1; i >= 0; i--) {
      const { x, y } = state.head[i];
      const dz = y ? tanhBackward(gpu, dOut, y) : dOut;
      const dx = linearBackward(
        gpu,
        x,
        this.w(`head.${i}.weight`),
        dz,
        g(`head.${i}.weight`),
        this.params.head[i].bias ? g(`head.${i}.bias`) : null,
      )!;
      if (dz !== dOut) gpu.release(dz);
      if (dOut !== dPooled) gpu.release(dOut);
      if (y) gpu.release(y);
      // A tanh output is also the next layer's input: freed once, as that layer's y.
      if (i === 0 || x !== state.head[i - 1].y) gpu.release(x);
      dOut = dx;
    }
    state.head = [];
    let dh = state.pooling === "mean"
      ? poolMeanBackward(gpu, dOut, state.mask)
      : poolFirstBackward(gpu, dOut, T);
    if (dOut !== dPooled) gpu.release(dOut);
    dh = dh.reshape([B * T, H]);
    const dims = this.dims(B, T);

    for (let l = c.numLayers - 1; l >= 0; l--) {
      let s: LayerSaved;
      if (state.inputs) {
        // A mixed-precision input is stored in f16: the layer re-runs on its exact f32 widening.
        const input = state.inputs[l], h = this.widened(input);
        const re = this.layerForward(
          l,
          h,
          h === input ? null : input,
          state.mask,
          dims,
          true,
          state.tokens,
          state.dropout,
        );
        gpu.release(re.out); // equals the next layer's input; only the internals are needed
        if (h !== input) gpu.release(h);
        s = re.saved!;
      } else s = state.layers[l];
      const p = `encoder.layer.${l}.`;
      // Mixed precision: statistics-bearing saved tensors (LayerNorm sums, the GELU
      // pre-activation, attention's q/k/v/ctx) are widened to f32 just before their kernel; the
      // products read their f16 operands directly.
      const sum2 = this.widened(s.sum2);
      // Output block: h2 = LN(act·Woᵀ + bo + h1)
      const dSum2 = layerNormBackward(
        gpu,
        dh,
        sum2,
        s.mean2,
        s.rstd2,
        this.w(`${p}output.LayerNorm.weight`),
        g(`${p}output.LayerNorm.weight`),
        g(`${p}output.LayerNorm.bias`),
      );
      gpu.release(dh, s.sum2, s.mean2, s.rstd2);
      if (sum2 !== s.sum2) gpu.release(sum2);
      // Through the FFN output's dropout (the residual path has none).
      const dOut2 = state.dropout ? this.drop(dSum2, state.tokens, state.dropout, l + 1, 2) : dSum2;
      const dAct = linearBackward(
        gpu,
        s.act,
        this.mw(`${p}output.dense.weight`),
        dOut2,
        g(`${p}output.dense.weight`),
        g(`${p}output.dense.bias`),
      )!;
      if (dOut2 !== dSum2) gpu.release(dOut2);
      gpu.release(s.act);
      const inter = this.widened(s.inter);
      const dInter = geluBackward(gpu, dAct, inter);
      gpu.release(dAct, s.inter);
      if (inter !== s.inter) gpu.release(inter);
      // dH1 = dInter·W + dSum2, added in the product's epilogue (into dSum2, read above).
      const dH1 = linearBackward(
        gpu,
        s.h1,
        this.mw(`${p}intermediate.dense.weight`),
        dInter,
        g(`${p}intermediate.dense.weight`),
        g(`${p}intermediate.dense.bias`),
        true,
        dSum2,
      )!;
      gpu.release(dInter, s.h1);
      // Attention block: h1 = LN(ctx·Waoᵀ + bao + h)
      const sum1 = this.widened(s.sum1);
      const dSum1 = layerNormBackward(
        gpu,
        dH1,
        sum1,
        s.mean1,
        s.rstd1,
        this.w(`${p}attention.output.LayerNorm.weight`),
        g(`${p}attention.output.LayerNorm.weight`),
        g(`${p}attention.output.LayerNorm.bias`),
      );
      gpu.release(dH1, s.sum1, s.mean1, s.rstd1);
      if (sum1 !== s.sum1) gpu.release(sum1);
      const dOut1 = state.dropout ? this.drop(dSum1, state.tokens, state.dropout, l + 1, 1) : dSum1;
      const dCtx = linearBackward(
        gpu,
        s.ctx,
        this.mw(`${p}attention.output.dense.weight`),
        dOut1,
        g(`${p}attention.output.dense.weight`),
        g(`${p}attention.output.dense.bias`),
      )!;
      if (dOut1 !== dSum1) gpu.release(dOut1);
      const attDrop = this.attentionDrop(l, state.tokens, state.dropout);
      // dIn = dSum1 + dq·Wq + dk·Wk + dv·Wv, each product added in its epilogue (same order).
      const dIn = dSum1;
      if (s.packed) {
        // The fused form: attention's gradient comes packed like q | k | v, and one product
        // each gives dX (into dIn) and dW, db for all three.
        const fused = this.qkv(l);
        const names = qkvNames(l);
        const gw = stackedView(names.map((n) => g(`${n}.weight`)));
        const gb = stackedView(names.map((n) => g(`${n}.bias`)));
        if (!fused || !gw || !gb) {
          throw new Error(
            `backward: layer ${l} ran the fused QKV product, but its weights or gradients do not ` +
              "lie back to back (give backward the trainer's flat gradients, or set fuseQkv false)",
          );
        }
        const [qkv, ctx] = [s.q, s.ctx].map((t) => this.widened(t));
        const dqkv = attentionBackwardPacked(gpu, dCtx, qkv, ctx, s.lse, state.mask, dims, attDrop);
        gpu.release(dCtx, s.ctx, s.lse);
        if (qkv !== s.q) gpu.release(qkv, ctx);
        linearBackward(gpu, s.h, fused.w, dqkv, gw, gb, true, dIn);
        gpu.release(dqkv, s.q);
      } else {
        const [q, k, v, ctx] = [s.q, s.k, s.v, s.ctx].map((t) => this.widened(t));
        const dAtt = attentionBackward(gpu, dCtx, q, k, v, ctx, s.lse, state.mask, dims, attDrop);
        gpu.release(dCtx, s.ctx, s.lse);
        if (q !== s.q) gpu.release(q, k, v, ctx);
        for (const [m, d] of [["query", dAtt.dq], ["key", dAtt.dk], ["value", dAtt.dv]] as const) {
          linearBackward(
            gpu,
            s.h,
            this.mw(`${p}attention.self.${m}.weight`),
            d,
            g(`${p}attention.self.${m}.weight`),
            g(`${p}attention.self.${m}.bias`),
            true,
            dIn,
          );
          gpu.release(d);
        }
        gpu.release(s.q, s.k, s.v);
      }
      gpu.release(s.h); // each layer's input is saved only here
      dh = dIn;
    }
    state.layers = [];
    state.inputs = null;

    // Embeddings: dropout and LN backward, then scatter-add into the three tables.
    if (state.dropout && state.dropout.p > 0) {
      const d = this.drop(dh, state.tokens, state.dropout, 0, 0);
      gpu.release(dh);
      dh = d;
    }
    const embSum = this.widened(state.embSum);
    const dEmb = layerNormBackward(
      gpu,
      dh,
      embSum,
      state.embMean,
      state.embRstd,
      this.w("embeddings.LayerNorm.weight"),
      g("embeddings.LayerNorm.weight"),
      g("embeddings.LayerNorm.bias"),
    );
    gpu.release(dh, state.embSum, state.embMean, state.embRstd);
    if (embSum !== state.embSum) gpu.release(embSum);
    const word = this.params.param("embeddings.word_embeddings.weight");
    const wordGrads = grads.get(word.name)!;
    const tokens = state.tokens;
    const plans = state.plans ?? {
      word: buildScatterPlan(gpu, tokens.ids),
      position: buildScatterPlan(gpu, tokens.positions),
      type: buildScatterPlan(gpu, tokens.typeIds),
    };
    if (wordGrads.length > 0) {
      wordGrads.forEach((t, k) => scatterAddRows(gpu, dEmb, plans.word, t, k * word.chunkRows));
    }
    scatterAddRows(gpu, dEmb, plans.position, g("embeddings.position_embeddings.weight"), 0);
    scatterAddRows(gpu, dEmb, plans.type, g("embeddings.token_type_embeddings.weight"), 0);
    gpu.releaseAll(plans);
    state.plans = null;
    gpu.release(state.ids, state.positions, state.mask, state.last);
  }

  /** Frees a forward state without running the backward (e.g. after a non-finite loss). */
  discard(state: ForwardState): void {
    // Every tensor the state still holds, once (a head layer's input is the previous one's y).
    this.gpu.releaseAll(state);
    state.head = [];
    state.layers = [];
    state.inputs = null;
    state.plans = null;
  }
}

/** Layer `l`'s query, key and value module names, in the order the fused product stacks them. */
function qkvNames(l: number): string[] {
  return ["query", "key", "value"].map((m) => `encoder.layer.${l}.attention.self.${m}`);
}
