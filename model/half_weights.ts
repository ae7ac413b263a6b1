/**
 * f16 copies of the encoder's linear-layer weights for mixed-precision training (`train --fp16`):
 * the f32 parameters stay the master copy that AdamW updates, and the products of the forward and
 * backward passes read these copies, half the bytes per weight load. The trainer re-casts them
 * from the master weights before every step, so they never lag behind an update or a resume.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { castF32ToF16 } from "../kernels/cast.ts";
import type { XlmrParams } from "./params.ts";

/**
 * The f16 weight copies of one parameter set: every encoder linear-layer weight (query, key,
 * value, attention output, intermediate, output). Embedding tables, biases, LayerNorm, the pooler
 * and a Dense head stay f32 only.
 *
 * @example
 * ```ts
 * import { Gpu } from "../kernels/runtime.ts";
 * import { presetConfig } from "./config.ts";
 * import { XlmrParams } from "./params.ts";
 * import { HalfWeights } from "./half_weights.ts";
 * const gpu = await Gpu.create();
 * const params = XlmrParams.init(gpu, presetConfig("tiny", { vocabSize: 100 }), 1);
 * const half = new HalfWeights(params);
 * half.refresh();
 * console.log(half.get("encoder.layer.0.attention.self.query.weight").dtype); // "f16"
 * half.release();
 * ```
 */
export class HalfWeights {
  readonly gpu: Gpu;
  private readonly copies = new Map<string, Tensor>();
  /** The allocations behind the copies (a layer's query, key and value share one). */
  private readonly owned: Tensor[] = [];

  constructor(readonly params: XlmrParams) {
    this.gpu = params.gpu;
    if (!this.gpu.hasF16) {
      throw new Error(
        "mixed precision (--fp16) needs the WebGPU feature shader-f16, which this adapter lacks " +
          "(gpu.hasF16); train in f32 on it",
      );
    }
    const align = this.gpu.limits.minStorageBufferOffsetAlignment ?? 256;
    for (const p of params.list()) {
      if (!p.f16 || !p.name.startsWith("encoder.") || this.copies.has(p.name)) continue;
      if (p.chunks.length !== 1) throw new Error(`HalfWeights: ${p.name} is split into chunks`);
      const qkv = p.name.match(/^(encoder\.layer\.\d+\.attention\.self\.)query\.weight$/);
      const [rows, cols] = p.shape;
      if (qkv && (rows * cols * 2) % align === 0) {
        // Query, key and value back to back, so a fused QKV product reads all three as one.
        const all = this.gpu.alloc([3 * rows, cols], "f16", `f16:${qkv[1]}qkv`);
        this.owned.push(all);
        ["query", "key", "value"].forEach((m, i) =>
          this.copies.set(`${qkv[1]}${m}.weight`, all.view(p.shape, i * rows * cols * 2))
        );
        continue;
      }
      const t = this.gpu.alloc(p.shape, "f16", `f16:${p.name}`);
      this.owned.push(t);
      this.copies.set(p.name, t);
    }
  }

  /** Re-casts every copy from the current f32 master weights (one dispatch per weight). */
  refresh(): void {
    for (const [name, t] of this.copies) castF32ToF16(this.gpu, this.params.get(name), t);
  }

  /** The f16 copy of a linear-layer weight, or undefined for a parameter that has none. */
  get(name: string): Tensor;
  get(name: string, optional: true): Tensor | undefined;
  get(name: string, optional = false): Tensor | undefined {
    const t = this.copies.get(name);
    if (!t && !optional) throw new Error(`HalfWeights: no f16 copy of ${name}`);
    return t;
  }

  /** Device bytes of the copies. */
  get bytes(): number {
    let n = 0;
    for (const t of this.copies.values()) n += 2 * t.size;
    return n;
  }

  /** Frees the copies. */
  release(): void {
    this.gpu.release(...this.owned);
    this.owned.length = 0;
    this.copies.clear();
  }
}
