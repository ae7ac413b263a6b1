/**
 * A float64 CPU reference of the XLM-R and BERT encoders and the contrastive loss, written as
 * plainly as possible. Tests compare the GPU forward, the loss and the backward (by finite
 * differences) against it.
 *
 * It shares no batching code with the engine: it takes the raw, unpadded id sequences and encodes
 * each one on its own, building its position ids as Hugging Face does — for XLM-R
 * `create_position_ids_from_input_ids` (`cumsum(ids != pad) · (ids != pad) + pad`), for BERT
 * (`model_type` "bert") `arange(T)` — and adding the token type row of each token (row 0 unless
 * type ids are given). So a padding, mask, position-id or token-type bug in `makeTokenBatch`
 * cannot cancel out between the two.
 * @module
 */
import { erf, layerNormRef } from "../kernels/reference.ts";
import { infoNceReference } from "../kernels/info_nce_reference.ts";
import { dropoutKeep, dropoutKey } from "../kernels/dropout.ts";
import type { XlmrConfig } from "./config.ts";

/** Weights by Hugging Face name (no prefix), as float64 row-major arrays. */
export type RefWeights = Map<string, Float64Array>;

/** Pooling of the reference: first token, mean over tokens, or tanh(dense(first token)). */
export type RefPooling = "cls" | "mean" | "pooler";

function linearRef(
  x: Float64Array,
  rows: number,
  inDim: number,
  w: Float64Array,
  b: Float64Array,
  outDim: number,
): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * outDim + o] = s;
    }
  }
  return y;
}

/** Hugging Face's RoBERTa/XLM-R position ids for one sequence. */
export function referencePositionIds(ids: readonly number[], padId: number): number[] {
  let count = 0;
  return ids.map((id) => (id !== padId ? ++count : 0) + padId);
}

/** Hugging Face's BERT position ids for one unpadded sequence: 0, 1, …, T − 1. */
export function referenceBertPositionIds(ids: readonly number[]): number[] {
  return ids.map((_, t) => t);
}

/** The last hidden state [T, H] of one unpadded sequence. */
function encodeOne(
  w: RefWeights,
  c: XlmrConfig,
  ids: readonly number[],
  types?: readonly number[],
  drop?: (layer: number, site: number, x: Float64Array) => void,
  attnDrop?: (layer: number, head: number, i: number, j: number) => number,
): Float64Array {
  const H = c.hiddenSize, I = c.intermediateSize, T = ids.length;
  const nh = c.numHeads, hd = H / nh, eps = c.layerNormEps;
  const get = (n: string) => {
    const v = w.get(n);
    if (!v) throw new Error(`reference: missing ${n}`);
    return v;
  };
  const word = get("embeddings.word_embeddings.weight");
  const pos = get("embeddings.position_embeddings.weight");
  const typ = get("embeddings.token_type_embeddings.weight");
  const positions = c.modelType === "bert"
    ? referenceBertPositionIds(ids)
    : referencePositionIds(ids, c.padTokenId);
  const e = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    const ty = types?.[t] ?? 0;
    if (ty * H >= typ.length) throw new Error(`reference: type id ${ty} outside the type table`);
    for (let h = 0; h < H; h++) {
      e[t * H + h] = word[ids[t] * H + h] + pos[positions[t] * H + h] + typ[ty * H + h];
    }
  }
  let x =
    layerNormRef(e, H, get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)
      .y;
  drop?.(0, 0, x);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    const lin = (input: Float64Array, name: string, inDim: number, outDim: number) =>
      linearRef(input, T, inDim, get(`${p}${name}.weight`), get(`${p}${name}.bias`), outDim);
    const q = lin(x, "attention.self.query", H, H);
    const k = lin(x, "attention.self.key", H, H);
    const v = lin(x, "attention.self.value", H, H);
    const ctx = new Float64Array(T * H);
    const scale = 1 / Math.sqrt(hd);
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(T);
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let f = 0; f < hd; f++) d += q[i * H + h * hd + f] * k[j * H + h * hd + f];
          s[j] = d * scale;
          mx = Math.max(mx, s[j]);
        }
        let z = 0;
        for (let j = 0; j < T; j++) {
          s[j] = Math.exp(s[j] - mx);
          z += s[j];
        }
        // Attention dropout scales each probability after the (undropped) normalisation.
        if (attnDrop) { for (let j = 0; j < T; j++) s[j] *= attnDrop(l, h, i, j); }
        for (let f = 0; f < hd; f++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += s[j] * v[j * H + h * hd + f];
          ctx[i * H + h * hd + f] = acc / z;
        }
      }
    }
    const ao = lin(ctx, "attention.output.dense", H, H);
    drop?.(l + 1, 1, ao);
    for (let i = 0; i < T * H; i++) ao[i] += x[i];
    const h1 = layerNormRef(
      ao,
      H,
      get(`${p}attention.output.LayerNorm.weight`),
      get(`${p}attention.output.LayerNorm.bias`),
      eps,
    ).y;
    const inter = lin(h1, "intermediate.dense", H, I);
    for (let i = 0; i < inter.length; i++) {
      inter[i] = inter[i] * 0.5 * (1 + erf(inter[i] / Math.SQRT2));
    }
    const o = lin(inter, "output.dense", I, H);
    drop?.(l + 1, 2, o);
    for (let i = 0; i < T * H; i++) o[i] += h1[i];
    x =
      layerNormRef(o, H, get(`${p}output.LayerNorm.weight`), get(`${p}output.LayerNorm.bias`), eps)
        .y;
  }
  return x;
}

/**
 * Pooled embeddings [B, H] of raw (unpadded) id sequences, in float64, each sequence encoded on
 * its own, with each sequence's token type ids when `typeIds` gives them (else 0). Mean pooling
 * averages every token of the sequence (`<s>` and `</s>` included).
 *
 * @example
 * ```ts ignore
 * const emb = referenceForward(weights, config, [[0, 17, 2], [0, 5, 9, 2]], "cls");
 * ```
 */
export function referenceForward(
  w: RefWeights,
  c: XlmrConfig,
  seqs: readonly (readonly number[])[],
  pooling: RefPooling,
  typeIds?: readonly (readonly number[] | undefined)[],
  head: readonly RefHeadLayer[] = [],
  dropout?: RefDropout,
): Float64Array {
  const H = c.hiddenSize, B = seqs.length;
  const out = new Float64Array(B * H);
  // Hidden dropout with the engine's masks: element (t, h) of sequence b sits at
  // (b·T + t)·H + h of the batch padded to its longest sequence T.
  const Tpad = Math.max(...seqs.map((s) => s.length));
  seqs.forEach((ids, b) => {
    const drop = dropout && dropout.p > 0
      ? (layer: number, site: number, x: Float64Array) => {
        const key = dropoutKey(dropout.key, layer, site), scale = 1 / (1 - dropout.p);
        for (let i = 0; i < x.length; i++) {
          x[i] *= dropoutKeep(key, b * Tpad * H + i, dropout.p) ? scale : 0;
        }
      }
      : undefined;
    const pa = dropout?.attention ?? 0;
    const attnDrop = dropout && pa > 0
      ? (layer: number, head: number, i: number, j: number) =>
        dropoutKeep(
            dropoutKey(dropout.key, layer + 1, 3),
            ((b * c.numHeads + head) * Tpad + i) * Tpad + j,
            pa,
          )
          ? 1 / (1 - pa)
          : 0
      : undefined;
    const x = encodeOne(w, c, ids, typeIds?.[b], drop, attnDrop);
    const T = ids.length;
    for (let h = 0; h < H; h++) {
      if (pooling === "mean") {
        let s = 0;
        for (let t = 0; t < T; t++) s += x[t * H + h];
        out[b * H + h] = s / T;
      } else {
        out[b * H + h] = x[h];
      }
    }
  });
  if (pooling === "pooler") {
    const w1 = w.get("pooler.dense.weight"), b1 = w.get("pooler.dense.bias");
    if (!w1 || !b1) throw new Error("reference: missing pooler.dense");
    return linearRef(out, B, H, w1, b1, H).map(Math.tanh);
  }
  // A sentence-transformers Dense head: act(x·Wᵀ + b) per layer, weights `head.<i>.*` in `w`.
  let x: Float64Array = out, width = H;
  head.forEach((layer, i) => {
    const wi = w.get(`head.${i}.weight`);
    if (!wi) throw new Error(`reference: missing head.${i}.weight`);
    const outDim = wi.length / width;
    const bi = w.get(`head.${i}.bias`) ?? new Float64Array(outDim);
    x = linearRef(x, B, width, wi, bi, outDim);
    if (layer.tanh) x = x.map(Math.tanh);
    width = outDim;
  });
  return x;
}

/** Hidden dropout of one reference forward: the engine's masks for `key` (see kernels/dropout.ts). */
export interface RefDropout {
  p: number;
  /** Attention-probability dropout (default 0). */
  attention?: number;
  key: number;
}

/** One Dense layer of a sentence-transformers head (weights `head.<i>.weight`/`.bias`). */
export interface RefHeadLayer {
  tanh: boolean;
}

/** Options of {@linkcode referenceLoss}. */
export interface RefLossOptions {
  pooling: "cls" | "mean";
  temperature: number;
  symmetric?: boolean;
  /** Dense layers after pooling (a sentence-transformers head), before the normalisation. */
  head?: readonly RefHeadLayer[];
  /** Hidden dropout p with the keys of the query and the passage forward passes. */
  dropout?: { p: number; attention?: number; queryKey: number; passageKey: number };
}

/**
 * The training loss in float64: encode queries and passages (B positives, then any hard
 * negatives), L2-normalise, InfoNCE over cosine similarities / temperature.
 *
 * @example
 * ```ts ignore
 * const loss = referenceLoss(weights, config, queries, passages, { pooling: "cls", temperature: 0.05 });
 * ```
 */
export function referenceLoss(
  w: RefWeights,
  c: XlmrConfig,
  queries: readonly (readonly number[])[],
  passages: readonly (readonly number[])[],
  opts: RefLossOptions,
): number {
  const head = opts.head ?? [];
  const d = opts.dropout;
  const q0 = referenceForward(
    w,
    c,
    queries,
    opts.pooling,
    undefined,
    head,
    d && {
      p: d.p,
      attention: d.attention,
      key: d.queryKey,
    },
  );
  const p0 = referenceForward(
    w,
    c,
    passages,
    opts.pooling,
    undefined,
    head,
    d && {
      p: d.p,
      attention: d.attention,
      key: d.passageKey,
    },
  );
  const H = q0.length / queries.length; // the hidden size, or the head's output width
  const normalise = (x: Float64Array) => {
    for (let r = 0; r < x.length / H; r++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += x[r * H + h] ** 2;
      const n = Math.sqrt(s);
      for (let h = 0; h < H; h++) x[r * H + h] /= n;
    }
    return x;
  };
  const q = normalise(q0);
  const p = normalise(p0);
  return infoNceReference(q, p, queries.length, passages.length, H, {
    temperature: opts.temperature,
    symmetric: opts.symmetric,
  }).loss;
}
