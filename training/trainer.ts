/**
 * One contrastive training step on the GPU, with no host read-back: encode queries and passages
 * with the shared encoder, L2-normalise, InfoNCE over the batch, backward through both encodings,
 * global gradient-norm clipping and AdamW. Two memory savers change how the backward is organised
 * but not its result: activation checkpointing and GradCache chunking (see
 * {@linkcode TrainerOptions}). Step statistics (loss, in-batch accuracy, gradient norm)
 * stay on the GPU until {@linkcode Trainer.collect} reads many steps at once.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { l2Normalize, l2NormalizeBackward } from "../kernels/l2_norm.ts";
import { infoNce } from "../kernels/info_nce.ts";
import { gradNorm } from "../kernels/grad_norm.ts";
import { adamwStep } from "../kernels/adamw.ts";
import { applyLossScale, createLossScaleState, lossScaleOptions } from "../kernels/loss_scale.ts";
import { HalfWeights } from "../model/half_weights.ts";
import { dropoutKey } from "../kernels/dropout.ts";
import {
  type DropoutSpec,
  type Grads,
  makeTokenBatch,
  type Pooling,
  sliceTokenBatch,
  type TokenBatch,
  XlmrModel,
} from "../model/xlmr.ts";
import { readChunks, writeChunks, type XlmrParams } from "../model/params.ts";
import { flattenParams, type Slab } from "./flat.ts";

/** Optimiser and loss settings of a {@linkcode Trainer}. */
export interface TrainerOptions {
  pooling: Exclude<Pooling, "pooler">;
  temperature: number;
  symmetric: boolean;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm clip; 0 turns clipping off. */
  maxGradNorm: number;
  /** Keep the word-embedding table out of the optimiser (and skip its gradient). */
  freezeEmbeddings: boolean;
  /**
   * GradCache (Gao et al. 2021): sequences per chunk, 0 = off. The whole batch is embedded
   * chunk by chunk without saving activations, the loss gradient w.r.t. every embedding is
   * computed on the full batch, then each chunk is encoded again with saved activations and
   * backpropagated on its own. Same loss and gradients (up to summation order), memory for one
   * chunk's activations instead of the batch's, about one extra forward pass of time.
   */
  gradCacheChunk: number;
  /**
   * Activation checkpointing: keep only each layer's input in the forward pass and recompute
   * the layer just before its backward. Identical gradients; one layer's activations instead of
   * all of them, about one extra forward pass of time.
   */
  checkpointing: boolean;
  /**
   * Train through the parameters' Dense head (a sentence-transformers folder's Dense layers
   * after pooling, see `XlmrParams.head`), updating it with the encoder. Off: the head, if any,
   * is left untouched.
   */
  head: boolean;
  /**
   * Hidden dropout probability in training steps (embeddings, attention output, FFN output);
   * 0 = off. Never applied by {@linkcode Trainer.evaluateLoss}.
   */
  dropout: number;
  /** Attention-probability dropout in training steps (inside the fused attention); 0 = off. */
  attentionDropout: number;
  /**
   * Seed of the dropout masks: step s's query and passage passes use keys derived from
   * (seed, s, side), so a resumed run draws the same masks.
   */
  dropoutSeed: number;
  /**
   * llm.c's flat layout (training/flat.ts): trained parameters, gradients and moments live in a
   * few flat buffers, so zeroing, the gradient norm and AdamW run once per buffer instead of once
   * per tensor. Same AdamW arithmetic per element; the norm's float32 summation order changes.
   * Off: one dispatch per tensor (the A/B baseline of `bench step --baseline`).
   */
  flatOptimizer: boolean;
  /**
   * Encode queries and passages as one batch (one forward and one backward pass instead of two)
   * when no dropout is drawn and GradCache is off. Every row's forward arithmetic is unchanged;
   * the weight gradients sum both sides' rows in one product instead of two. Off: two passes
   * (the A/B baseline of `bench step --baseline`).
   */
  jointEncode: boolean;
  /**
   * One fused `[R, H]·[3H, H]ᵀ` product for the query, key and value of each layer (and one each
   * for their dX and dW) where the flat layout puts their weights and biases back to back (hidden
   * sizes whose bias rows fill whole 256-byte alignment steps: 64, 256, 768, 1024…). Each output
   * element is the same dot product; the tile plan of the wider product (and so f32 rounding) may
   * differ. Needs {@linkcode TrainerOptions.flatOptimizer}. Off: three products (A/B baseline).
   */
  fuseQkv: boolean;
  /**
   * Mixed precision (`train --fp16`): the products read f16 copies of the encoder's linear
   * weights, re-cast from the f32 master weights before every step, and the activations saved for
   * the backward are stored in f16 (model/xlmr.ts); master weights, gradients, AdamW moments,
   * LayerNorm/softmax/loss statistics and all accumulation stay f32. The loss gradient is scaled
   * dynamically with PyTorch GradScaler semantics ({@linkcode TrainerOptions.lossScale}).
   * One difference: a skipped step still advances AdamW's bias-correction count (the host learns
   * of the skip only at the next read-back), where PyTorch's optimiser would not count it.
   * Needs the adapter feature shader-f16.
   */
  fp16: boolean;
  /**
   * The loss scale of {@linkcode TrainerOptions.fp16}: initial scale (default 2^16) and growth
   * interval (default 2000 clean steps; ×2 after that many, ×0.5 and the step skipped on an
   * inf/NaN gradient). Ignored without fp16.
   */
  lossScale: { init: number; growthInterval: number };
}

/** Defaults that follow the paper and PyTorch. */
export const DEFAULT_TRAINER_OPTIONS: TrainerOptions = {
  pooling: "cls",
  temperature: 0.05,
  symmetric: false,
  weightDecay: 0.01,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1.0,
  freezeEmbeddings: false,
  gradCacheChunk: 0,
  checkpointing: false,
  head: false,
  dropout: 0,
  attentionDropout: 0,
  dropoutSeed: 0,
  flatOptimizer: true,
  jointEncode: true,
  fuseQkv: true,
  fp16: false,
  lossScale: { init: 65536, growthInterval: 2000 },
};

/** Statistics of one step as read back from the GPU. */
export interface StepStats {
  step: number;
  loss: number;
  accuracy: number;
  gradNorm: number;
  lr: number;
  /** With fp16: the loss scale this step used. */
  lossScale?: number;
  /**
   * With fp16: the gradients overflowed (a non-finite norm at a finite loss), so the update was
   * skipped and the scale backed off, as GradScaler does.
   */
  skipped?: boolean;
}

interface PendingStep {
  step: number;
  lr: number;
  lossStats: Tensor;
  normStats: Tensor;
}

/**
 * Owns gradients and AdamW moments for a parameter set and runs steps.
 *
 * @example
 * ```ts ignore
 * const trainer = new Trainer(params, { ...DEFAULT_TRAINER_OPTIONS, pooling: "mean" });
 * trainer.step([[0, 5, 2]], [[0, 6, 7, 2]], 3e-5);
 * console.log(await trainer.collect());
 * ```
 */
export class Trainer {
  readonly model: XlmrModel;
  readonly gpu: Gpu;
  readonly grads: Grads;
  readonly m: Grads;
  readonly v: Grads;
  /** Optimiser steps taken so far. */
  stepCount = 0;
  private pending: PendingStep[] = [];
  /** The flat buffers of {@linkcode TrainerOptions.flatOptimizer} (empty when off). */
  private slabs: Slab[] = [];
  /** Mixed precision: the f16 weight copies and the loss scaler's state [scale, clean steps]. */
  private half: HalfWeights | null = null;
  private scaler: Tensor | null = null;
  private growthInterval = DEFAULT_TRAINER_OPTIONS.lossScale.growthInterval;

  constructor(readonly params: XlmrParams, readonly options: TrainerOptions) {
    if (!Number.isInteger(options.gradCacheChunk) || options.gradCacheChunk < 0) {
      throw new RangeError(
        `Trainer: gradCacheChunk must be an integer ≥ 0 (0 = off), got ${options.gradCacheChunk}`,
      );
    }
    if (typeof options.checkpointing !== "boolean") {
      throw new TypeError(
        `Trainer: checkpointing must be a boolean, got ${JSON.stringify(options.checkpointing)}`,
      );
    }
    for (const k of ["dropout", "attentionDropout"] as const) {
      if (!(options[k] >= 0 && options[k] < 1)) {
        throw new RangeError(`Trainer: ${k} must be in [0, 1), got ${options[k]}`);
      }
    }
    this.model = new XlmrModel(params);
    this.gpu = params.gpu;
    const flatOn = options.flatOptimizer ?? DEFAULT_TRAINER_OPTIONS.flatOptimizer;
    // With the flat layout, trained parameters get views of flat buffers below instead.
    const flatNames = new Set(
      flatOn
        ? params.list().map((p) => p.name).filter((n) =>
          !n.startsWith("pooler.") && (options.head || !n.startsWith("head.")) &&
          !(options.freezeEmbeddings && n === "embeddings.word_embeddings.weight")
        )
        : [],
    );
    const like = (label: string) =>
      new Map(
        params.list().map((p) => [
          p.name,
          flatNames.has(p.name)
            ? []
            : p.chunks.map((t) => this.gpu.zeros(t.shape, "f32", `${label}:${p.name}`)),
        ]),
      );
    this.grads = like("grad");
    this.m = like("adam.m");
    this.v = like("adam.v");
    if (options.head && params.head.length === 0) {
      throw new Error("Trainer: head is set but the parameters have no Dense head");
    }
    if (!options.head) {
      // The head (if any) is not part of this training: no gradients, no moments, no updates.
      for (const n of [...this.grads.keys()].filter((n) => n.startsWith("head."))) {
        this.gpu.release(...this.grads.get(n)!, ...this.m.get(n)!, ...this.v.get(n)!);
        this.grads.set(n, []);
        this.m.set(n, []);
        this.v.set(n, []);
      }
    }
    if (options.freezeEmbeddings) {
      // No gradient tensors at all for the table: the backward skips the scatter.
      const word = "embeddings.word_embeddings.weight";
      this.gpu.release(...this.grads.get(word)!, ...this.m.get(word)!, ...this.v.get(word)!);
      this.grads.set(word, []);
      this.m.set(word, []);
      this.v.set(word, []);
    }
    if (flatOn) {
      const names = params.list().map((p) => p.name).filter((n) => flatNames.has(n));
      const flat = flattenParams(
        this.gpu,
        names.map((n) => params.param(n)),
        (old) => params.releaseChunks(old),
      );
      // The per-tensor parameter buffers are free now: destroy them rather than keep them pooled
      // (a pool of odd sizes the step would hardly reuse; one parameter copy more at the peak).
      this.gpu.trim();
      params.adoptFlat(...flat.slabs.map((s) => s.param));
      for (const n of names) {
        this.grads.set(n, flat.grads.get(n)!);
        this.m.set(n, flat.m.get(n)!);
        this.v.set(n, flat.v.get(n)!);
      }
      this.slabs = flat.slabs;
    }
    this.model.fuseQkv = flatOn && (options.fuseQkv ?? DEFAULT_TRAINER_OPTIONS.fuseQkv);
    if (options.fp16) {
      const ls = options.lossScale ?? DEFAULT_TRAINER_OPTIONS.lossScale;
      this.growthInterval =
        lossScaleOptions({ growthInterval: ls.growthInterval }, "Trainer: lossScale")
          .growthInterval;
      this.half = new HalfWeights(params);
      this.model.useHalfWeights(this.half);
      this.scaler = createLossScaleState(this.gpu, ls.init);
    }
  }

  /** Names of the parameters the optimiser updates (the loss never reaches the pooler). */
  trainedNames(): string[] {
    return this.params.list()
      .map((p) => p.name)
      .filter((n) => !n.startsWith("pooler.") && (this.grads.get(n)?.length ?? 0) > 0);
  }

  /**
   * Sets every trained gradient to zero: each flat buffer at once, other tensors one by one. The
   * pooler's gradients, which no loss reaches, are never written and stay zero.
   */
  zeroGrad(): void {
    for (const s of this.slabs) this.gpu.fill(s.grad, 0);
    const flat = new Set(this.slabs.map((s) => s.grad.allocation));
    for (const n of this.trainedNames()) {
      for (const t of this.grads.get(n)!) if (!flat.has(t.allocation)) this.gpu.fill(t, 0);
    }
  }

  /**
   * Records one step for `queries` (B token sequences) against `passages` (B positives, then any
   * hard negatives). Nothing is read back; call {@linkcode Trainer.collect} every few steps.
   * Runs in a {@linkcode Gpu.scope}: only the step's statistics outlive it.
   */
  step(queries: number[][], passages: number[][], lr: number): void {
    this.gpu.scope(() => this.stepScoped(queries, passages, lr), "step");
  }

  private stepScoped(queries: number[][], passages: number[][], lr: number): void {
    const gpu = this.gpu, o = this.options, c = this.params.config;
    if (queries.length === 0 || passages.length < queries.length) {
      throw new RangeError(
        `step: ${queries.length} queries need at least as many passages (got ${passages.length})`,
      );
    }
    const qBatch = makeTokenBatch(queries, c);
    const pBatch = makeTokenBatch(passages, c);
    // Mixed precision: the products read the weights as they are now (after the last update or a
    // resume).
    this.half?.refresh();
    const drops = [0, 1].map((side): DropoutSpec | null =>
      o.dropout > 0 || o.attentionDropout > 0
        ? {
          p: o.dropout,
          attention: o.attentionDropout,
          key: dropoutKey(o.dropoutSeed, this.stepCount + 1, side),
        }
        : null
    ) as [DropoutSpec | null, DropoutSpec | null];
    const joint = (o.jointEncode ?? DEFAULT_TRAINER_OPTIONS.jointEncode) && !drops[0] && !drops[1];
    const lossStats = o.gradCacheChunk > 0
      ? this.gradCacheBackward(qBatch, pBatch, o.gradCacheChunk, drops)
      : joint
      ? this.jointBackward(makeTokenBatch([...queries, ...passages], c), queries.length)
      : this.plainBackward(qBatch, pBatch, drops);

    const names = this.slabs.length > 0 ? [] : this.trainedNames();
    // With a loss scale the norm kernel unscales (norm and clip come out as f32 would have them)
    // and backs off or grows the scale on the GPU; AdamW skips a step whose norm is not finite.
    const normStats = gradNorm(
      gpu,
      this.slabs.length > 0
        ? this.slabs.map((s) => s.grad)
        : names.flatMap((n) => this.grads.get(n)!),
      o.maxGradNorm,
      this.scaler ? { state: this.scaler, growthInterval: this.growthInterval } : undefined,
    );
    this.stepCount++;
    for (const s of this.slabs) {
      adamwStep(gpu, s.param, s.grad, s.m, s.v, {
        lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: s.decay ? o.weightDecay : 0,
        step: this.stepCount,
      }, normStats);
    }
    for (const name of names) {
      const p = this.params.param(name);
      const g = this.grads.get(name)!, m = this.m.get(name)!, v = this.v.get(name)!;
      p.chunks.forEach((t, k) =>
        adamwStep(gpu, t, g[k], m[k], v[k], {
          lr,
          beta1: o.beta1,
          beta2: o.beta2,
          eps: o.eps,
          weightDecay: p.decay ? o.weightDecay : 0,
          step: this.stepCount,
        }, normStats)
      );
    }
    // Read by collect(), which releases them.
    gpu.keep(lossStats);
    gpu.keep(normStats);
    this.pending.push({ step: this.stepCount, lr, lossStats, normStats });
    gpu.flush();
  }

  /**
   * Normalises both sets of pooled embeddings, computes InfoNCE and returns the loss gradient
   * w.r.t. the pooled (unnormalised) rows, with the loss statistics.
   */
  private lossGradients(
    qPooled: Tensor,
    pPooled: Tensor,
  ): { dq: Tensor; dp: Tensor; stats: Tensor } {
    return this.gpu.scope(() => this.lossScoped(qPooled, pPooled), "loss");
  }

  private lossScoped(qPooled: Tensor, pPooled: Tensor): { dq: Tensor; dp: Tensor; stats: Tensor } {
    const gpu = this.gpu, o = this.options;
    const qn = l2Normalize(gpu, qPooled);
    const pn = l2Normalize(gpu, pPooled);
    const loss = infoNce(gpu, qn.y, pn.y, { temperature: o.temperature, symmetric: o.symmetric });
    const dq = l2NormalizeBackward(gpu, loss.dq, qn.y, qn.norm);
    const dp = l2NormalizeBackward(gpu, loss.dp, pn.y, pn.norm);
    if (this.scaler) {
      // Scaled by the current loss scale (a power of two: exact in f32), unscaled by gradNorm.
      applyLossScale(gpu, dq, this.scaler);
      applyLossScale(gpu, dp, this.scaler);
    }
    return { dq, dp, stats: loss.stats };
  }

  /** Both encodings with saved activations, the loss, both backward passes. */
  private plainBackward(
    qBatch: TokenBatch,
    pBatch: TokenBatch,
    [qDrop, pDrop]: [DropoutSpec | null, DropoutSpec | null],
  ): Tensor {
    const o = this.options;
    const qf = this.model.forward(qBatch, o.pooling, true, o.checkpointing, o.head, qDrop);
    const pf = this.model.forward(pBatch, o.pooling, true, o.checkpointing, o.head, pDrop);
    const { dq, dp, stats } = this.lossGradients(qf.pooled, pf.pooled);
    this.zeroGrad();
    this.model.backward(qf.state!, dq, this.grads);
    this.model.backward(pf.state!, dp, this.grads);
    return stats;
  }

  /**
   * {@linkcode TrainerOptions.jointEncode}: queries (the first `nq` rows of `batch`) and passages
   * in one forward and one backward pass; the pooled rows and their gradients travel by copies.
   */
  private jointBackward(batch: TokenBatch, nq: number): Tensor {
    const gpu = this.gpu, o = this.options;
    const f = this.model.forward(batch, o.pooling, true, o.checkpointing, o.head, null);
    const width = f.pooled.shape[1], np = batch.batch - nq;
    const q = gpu.alloc([nq, width], "f32", "joint.q");
    const p = gpu.alloc([np, width], "f32", "joint.p");
    gpu.copy(rows(f.pooled, 0, nq), q);
    gpu.copy(rows(f.pooled, nq, np), p);
    gpu.release(f.pooled);
    const { dq, dp, stats } = this.lossGradients(q, p);
    gpu.release(q, p);
    const d = gpu.alloc([batch.batch, width], "f32", "joint.dpooled");
    gpu.copy(dq, rows(d, 0, nq));
    gpu.copy(dp, rows(d, nq, np));
    gpu.release(dq, dp);
    this.zeroGrad();
    this.model.backward(f.state!, d, this.grads);
    return stats;
  }

  /** GradCache: embed in chunks without activations, full-batch loss, re-encode and backprop. */
  private gradCacheBackward(
    qBatch: TokenBatch,
    pBatch: TokenBatch,
    chunk: number,
    [qDrop, pDrop]: [DropoutSpec | null, DropoutSpec | null],
  ): Tensor {
    // Masks follow each element's place in the whole batch: the chunks see the batch's masks.
    const qPooled = this.embedInChunks(qBatch, chunk, qDrop);
    const pPooled = this.embedInChunks(pBatch, chunk, pDrop);
    const { dq, dp, stats } = this.lossGradients(qPooled, pPooled);
    this.zeroGrad();
    this.backwardInChunks(qBatch, dq, chunk, qDrop);
    this.backwardInChunks(pBatch, dp, chunk, pDrop);
    return stats;
  }

  /** [N, H] pooled embeddings of `batch`, encoded `chunk` sequences at a time, nothing saved. */
  private embedInChunks(batch: TokenBatch, chunk: number, drop: DropoutSpec | null = null): Tensor {
    const gpu = this.gpu;
    const width = this.model.outputDim(this.options.head);
    const out = gpu.alloc([batch.batch, width], "f32", "gradcache.pooled");
    for (let start = 0; start < batch.batch; start += chunk) {
      gpu.scope(() => {
        const part = sliceTokenBatch(batch, start, Math.min(chunk, batch.batch - start));
        const { pooled } = this.model.forward(
          part,
          this.options.pooling,
          false,
          false,
          this.options.head,
          drop,
        );
        gpu.copy(pooled, rows(out, start, part.batch));
      }, "gradcache.embed");
    }
    return out;
  }

  /** Re-encodes each chunk with saved activations and backpropagates its rows of `dPooled`. */
  private backwardInChunks(
    batch: TokenBatch,
    dPooled: Tensor,
    chunk: number,
    drop: DropoutSpec | null,
  ): void {
    const gpu = this.gpu, o = this.options;
    for (let start = 0; start < batch.batch; start += chunk) {
      gpu.scope(() => {
        const part = sliceTokenBatch(batch, start, Math.min(chunk, batch.batch - start));
        const f = this.model.forward(part, o.pooling, true, o.checkpointing, o.head, drop);
        gpu.release(f.pooled);
        const width = this.model.outputDim(o.head);
        const d = gpu.alloc([part.batch, width], "f32", "gradcache.dpooled");
        gpu.copy(rows(dPooled, start, part.batch), d);
        this.model.backward(f.state!, d, this.grads);
      }, "gradcache.backward");
    }
  }

  /**
   * The loss and in-batch accuracy of each batch under the current parameters, exactly as
   * {@linkcode Trainer.step} computes them (same pooling, temperature, symmetric loss, head,
   * GradCache chunking), but forward only: no activations kept, gradients, moments and the step
   * count untouched. One read-back for all batches (validation loss).
   */
  async evaluateLoss(
    batches: { queries: number[][]; passages: number[][] }[],
  ): Promise<{ loss: number; accuracy: number }[]> {
    const gpu = this.gpu, o = this.options, c = this.params.config;
    const stats: Tensor[] = [];
    this.half?.refresh();
    const embed = (seqs: number[][]) => {
      const batch = makeTokenBatch(seqs, c);
      return o.gradCacheChunk > 0
        ? this.embedInChunks(batch, o.gradCacheChunk)
        : this.model.forward(batch, o.pooling, false, false, o.head).pooled;
    };
    try {
      for (const b of batches) {
        if (b.queries.length === 0 || b.passages.length < b.queries.length) {
          throw new RangeError(
            `evaluateLoss: ${b.queries.length} queries need at least as many passages ` +
              `(got ${b.passages.length})`,
          );
        }
        stats.push(gpu.scope(() => {
          const q = embed(b.queries), p = embed(b.passages);
          const qn = l2Normalize(gpu, q), pn = l2Normalize(gpu, p);
          const loss = infoNce(gpu, qn.y, pn.y, {
            temperature: o.temperature,
            symmetric: o.symmetric,
          });
          return loss.stats;
        }, "evaluateLoss"));
        gpu.flush();
      }
      const values = await gpu.readMany(stats);
      return values.map((v) => ({ loss: v[0], accuracy: v[1] }));
    } finally {
      gpu.release(...stats);
    }
  }

  /** Reads back the statistics of every step since the last call (one wait). */
  async collect(): Promise<StepStats[]> {
    if (this.pending.length === 0) return [];
    const pending = this.pending;
    this.pending = [];
    const values = await this.gpu.readMany(pending.flatMap((p) => [p.lossStats, p.normStats]));
    const out = pending.map((p, i): StepStats => {
      const loss = values[2 * i][0], norm = values[2 * i + 1];
      const s: StepStats = {
        step: p.step,
        lr: p.lr,
        loss,
        accuracy: values[2 * i][1],
        gradNorm: norm[0],
      };
      if (this.scaler) {
        s.lossScale = norm[2];
        s.skipped = Number.isFinite(loss) && !Number.isFinite(norm[0]);
      }
      return s;
    });
    for (const p of pending) this.gpu.release(p.lossStats, p.normStats);
    return out;
  }

  /** AdamW moments by name (for checkpoints). */
  async readMoments(): Promise<{ name: string; shape: number[]; data: Float32Array }[]> {
    const out = [];
    for (const name of this.trainedNames()) {
      const p = this.params.param(name);
      for (const [label, store] of [["m", this.m], ["v", this.v]] as const) {
        const data = await readChunks(this.gpu, store.get(name)!);
        out.push({ name: `${label}.${name}`, shape: p.shape, data });
      }
    }
    return out;
  }

  /** Restores AdamW moments written by {@linkcode Trainer.readMoments}. */
  writeMoments(get: (name: string) => Float32Array | undefined, source: string): void {
    for (const name of this.trainedNames()) {
      for (const [label, store] of [["m", this.m], ["v", this.v]] as const) {
        const data = get(`${label}.${name}`);
        if (!data) throw new Error(`${source}: optimizer state lacks ${label}.${name}`);
        const off = writeChunks(this.gpu, store.get(name)!, data);
        if (off !== data.length) {
          throw new Error(`${source}: ${label}.${name} has ${data.length} values, expected ${off}`);
        }
      }
    }
  }

  /**
   * The loss scaler's state (fp16 only, else null): the scale the next step uses and the clean
   * steps counted towards its growth. Checkpoints store it, so a resumed run scales as the
   * uninterrupted one would.
   */
  async readLossScale(): Promise<{ scale: number; cleanSteps: number } | null> {
    if (!this.scaler) return null;
    const [scale, cleanSteps] = await this.gpu.read(this.scaler);
    return { scale, cleanSteps };
  }

  /** Restores the state {@linkcode Trainer.readLossScale} returned (fp16 only). */
  writeLossScale(state: { scale: number; cleanSteps: number }, source: string): void {
    if (!this.scaler) throw new Error(`${source}: a loss scale needs fp16 training`);
    const { scale, cleanSteps } = state;
    if (
      !(Number.isFinite(scale) && scale > 0) || !(Number.isInteger(cleanSteps) && cleanSteps >= 0)
    ) {
      throw new RangeError(
        `${source}: lossScale must hold a finite scale > 0 and an integer cleanSteps ≥ 0, got ` +
          JSON.stringify(state),
      );
    }
    this.gpu.write(this.scaler, new Float32Array([scale, cleanSteps]));
  }

  /** Frees gradients and moments. */
  release(): void {
    const flat = new Set(this.slabs.flatMap((s) => [s.grad, s.m, s.v]).map((t) => t.allocation));
    for (const store of [this.grads, this.m, this.v]) {
      for (const ts of store.values()) {
        this.gpu.release(...ts.filter((t) => !flat.has(t.allocation)));
      }
    }
    for (const s of this.slabs) this.gpu.release(s.grad, s.m, s.v);
    this.slabs = [];
    if (this.half) {
      this.model.useHalfWeights(null);
      this.half.release();
      this.half = null;
    }
    if (this.scaler) this.gpu.release(this.scaler);
    this.scaler = null;
  }
}

/** Rows `start .. start + count - 1` of a [N, H] tensor, as a view (for buffer copies only). */
function rows(t: Tensor, start: number, count: number): Tensor {
  const H = t.shape[1];
  return t.view([count, H], start * H * 4);
}
