/**
 * One XLM-R encoder layer, forward then backward, with the engine's kernels, in the same order
 * and with the same calls as the layer loop of model/xlmr.ts (`forward` and `backward`), so that
 * the peer benchmark times exactly the engine's per-layer work without embeddings and pooling.
 * Dev-only (bench/peers).
 * @module
 */
import type { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { add } from "../../kernels/elementwise.ts";
import { linear, linearBackward } from "../../kernels/matmul.ts";
import { addLayerNorm, layerNormBackward } from "../../kernels/layer_norm.ts";
import { gelu, geluBackward } from "../../kernels/gelu.ts";
import { attention, attentionBackward } from "../../kernels/attention.ts";

/** Shape of the benchmarked layer. */
export interface LayerDims {
  batch: number;
  seq: number;
  hidden: number;
  heads: number;
  intermediate: number;
  eps: number;
}

/** The layer's weights (or their gradients), Hugging Face layout (`[out, in]`). */
export interface LayerWeights {
  Wq: Tensor;
  bq: Tensor;
  Wk: Tensor;
  bk: Tensor;
  Wv: Tensor;
  bv: Tensor;
  Wo: Tensor;
  bo: Tensor;
  g1: Tensor;
  b1: Tensor;
  Wi: Tensor;
  bi: Tensor;
  Wout: Tensor;
  bout: Tensor;
  g2: Tensor;
  b2: Tensor;
}

/**
 * Records the layer's forward on `x` ([B·T, H]) and its backward from `dy`, accumulating weight
 * gradients into `grads`. Returns the layer output and dx (the caller releases them); everything
 * else is released.
 *
 * @example
 * ```ts ignore
 * const { y, dx } = ourLayerStep(gpu, dims, weights, grads, x, mask, dy);
 * await gpu.sync();
 * ```
 */
export function ourLayerStep(
  gpu: Gpu,
  d: LayerDims,
  w: LayerWeights,
  g: LayerWeights,
  x: Tensor,
  mask: Tensor,
  dy: Tensor,
): { y: Tensor; dx: Tensor } {
  const dims = { batch: d.batch, seq: d.seq, heads: d.heads, headDim: d.hidden / d.heads };
  // Forward (model/xlmr.ts, the body of the layer loop with train = true).
  const q = linear(gpu, x, w.Wq, w.bq);
  const k = linear(gpu, x, w.Wk, w.bk);
  const v = linear(gpu, x, w.Wv, w.bv);
  const att = attention(gpu, q, k, v, mask, dims);
  const proj = linear(gpu, att.out, w.Wo, w.bo);
  const ln1 = addLayerNorm(gpu, proj, x, w.g1, w.b1, d.eps);
  gpu.release(proj);
  const inter = linear(gpu, ln1.y, w.Wi, w.bi);
  const act = gelu(gpu, inter);
  const out = linear(gpu, act, w.Wout, w.bout);
  const ln2 = addLayerNorm(gpu, out, ln1.y, w.g2, w.b2, d.eps);
  gpu.release(out);

  // Backward (model/xlmr.ts, the body of the reverse layer loop).
  const dSum2 = layerNormBackward(gpu, dy, ln2.sum, ln2.mean, ln2.rstd, w.g2, g.g2, g.b2);
  gpu.release(ln2.sum, ln2.mean, ln2.rstd);
  const dAct = linearBackward(gpu, act, w.Wout, dSum2, g.Wout, g.bout)!;
  gpu.release(act);
  const dInter = geluBackward(gpu, dAct, inter);
  gpu.release(dAct, inter);
  const dH1a = linearBackward(gpu, ln1.y, w.Wi, dInter, g.Wi, g.bi)!;
  gpu.release(dInter, ln1.y);
  const dH1 = add(gpu, dH1a, dSum2);
  gpu.release(dH1a, dSum2);
  const dSum1 = layerNormBackward(gpu, dH1, ln1.sum, ln1.mean, ln1.rstd, w.g1, g.g1, g.b1);
  gpu.release(dH1, ln1.sum, ln1.mean, ln1.rstd);
  const dCtx = linearBackward(gpu, att.out, w.Wo, dSum1, g.Wo, g.bo)!;
  const dAtt = attentionBackward(gpu, dCtx, q, k, v, att.out, att.lse, mask, dims);
  gpu.release(dCtx, att.out, att.lse);
  let dIn = dSum1;
  const parts = [[w.Wq, g.Wq, g.bq, dAtt.dq], [w.Wk, g.Wk, g.bk, dAtt.dk], [
    w.Wv,
    g.Wv,
    g.bv,
    dAtt.dv,
  ]] as const;
  for (const [W, dW, dB, dPart] of parts) {
    const dx = linearBackward(gpu, x, W, dPart, dW, dB)!;
    const next = add(gpu, dIn, dx);
    gpu.release(dIn, dx, dPart);
    dIn = next;
  }
  gpu.release(q, k, v);
  return { y: ln2.y, dx: dIn };
}
