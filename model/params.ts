/**
 * XLM-R parameters on the GPU, by Hugging Face name. Each parameter is one tensor, except tables
 * larger than one storage binding (XLM-R base's 250002×768 word embeddings, 732 MiB in f32), which
 * are split into row chunks that the embedding kernels visit one by one.
 * @module
 */
import type { Gpu } from "../kernels/runtime.ts";
import type { Tensor } from "../kernels/tensor.ts";
import type { XlmrConfig } from "./config.ts";
import {
  ParamBuilder,
  parameterSchema,
  parameterShapes,
  type ParamSpec,
} from "./parameter_shapes.ts";
import { assertFinite, Checkpoint, writeSafetensors } from "./safetensors.ts";
import { initialValues, normalRng, randomWeights } from "./init.ts";
import { castF32ToF16 } from "../kernels/cast.ts";

/** One named parameter: its shape, whether AdamW decays it, and its GPU storage. */
export interface Param {
  name: string;
  shape: number[];
  /** Weight decay applies (declared in parameter_shapes.ts: not biases, not LayerNorm). */
  decay: boolean;
  /** Inference may store it in f16 (declared: linear-layer weights). */
  f16: boolean;
  /** Row chunks (one unless the tensor is larger than a storage binding). */
  chunks: Tensor[];
  /** Rows per chunk (the last chunk may hold fewer). */
  chunkRows: number;
}

/**
 * Writes host values across a parameter's row chunks, in order; returns how many values the
 * chunks hold (callers compare it with `data.length`).
 */
export function writeChunks(gpu: Gpu, chunks: Tensor[], data: Float32Array): number {
  let off = 0;
  for (const t of chunks) {
    gpu.write(t, data.subarray(off, off + t.size));
    off += t.size;
  }
  return off;
}

/** Reads a parameter's row chunks back as one host array (one wait). */
export async function readChunks(gpu: Gpu, chunks: Tensor[]): Promise<Float32Array> {
  const parts = await gpu.readMany(chunks);
  const out = new Float32Array(parts.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of parts) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

export { parameterShapes } from "./parameter_shapes.ts";

/**
 * All parameters of one XLM-R model on the GPU.
 *
 * @example
 * ```ts ignore
 * import { Gpu } from "../kernels/runtime.ts";
 * import { presetConfig } from "./config.ts";
 * import { XlmrParams } from "./params.ts";
 * const gpu = await Gpu.create();
 * const params = XlmrParams.init(gpu, presetConfig("tiny", { vocabSize: 1000 }), 42);
 * console.log(params.count()); // number of scalars
 * ```
 */
export class XlmrParams {
  /**
   * A sentence-transformers folder's Dense layers after pooling (`head.<i>.weight` [out, in] and
   * `head.<i>.bias` in {@link byName}, trained with the rest when the trainer runs the head; kept
   * out of {@link save}, which writes the transformer only). Empty for a plain model.
   */
  readonly head: { tanh: boolean; out: number; bias: boolean }[] = [];

  private constructor(
    readonly gpu: Gpu,
    readonly config: XlmrConfig,
    readonly byName: Map<string, Param>,
  ) {}

  /**
   * Appends Dense layers `act(x·Wᵀ + b)` after pooling (see {@link head}); the first takes
   * `hiddenSize` features, each next one the previous one's output.
   */
  addHead(
    layers: {
      inFeatures: number;
      outFeatures: number;
      weight: Float32Array;
      bias: Float32Array | null;
      activation: "tanh" | "identity";
    }[],
  ): void {
    let width = this.head.at(-1)?.out ?? this.config.hiddenSize;
    for (const d of layers) {
      const i = this.head.length;
      if (d.inFeatures !== width) {
        throw new RangeError(
          `head layer ${i} takes ${d.inFeatures} features, the input has ${width}`,
        );
      }
      // Declared like every other linear layer: the weight decays, the bias does not.
      const [w, b] = new ParamBuilder().scope("head").linear(
        `${i}`,
        d.outFeatures,
        d.inFeatures,
        d.bias !== null,
      ).specs;
      const add = (spec: ParamSpec, data: Float32Array) => {
        const t = this.gpu.alloc(spec.shape, "f32", spec.name);
        this.gpu.write(t, data);
        this.byName.set(spec.name, {
          name: spec.name,
          shape: spec.shape,
          decay: spec.decay,
          f16: spec.f16,
          chunks: [t],
          chunkRows: spec.shape[0],
        });
      };
      add(w, d.weight);
      if (d.bias) add(b, d.bias);
      this.head.push({ tanh: d.activation === "tanh", out: d.outFeatures, bias: d.bias !== null });
      width = d.outFeatures;
    }
  }

  /** The head's layers with their current weights (for writing a sentence-transformers folder). */
  async readHead(): Promise<
    {
      inFeatures: number;
      outFeatures: number;
      weight: Float32Array;
      bias: Float32Array | null;
      activation: "tanh" | "identity";
    }[]
  > {
    const out = [];
    for (const [i, h] of this.head.entries()) {
      const w = this.param(`head.${i}.weight`);
      out.push({
        inFeatures: w.shape[1],
        outFeatures: h.out,
        weight: await this.read(w.name),
        bias: h.bias ? await this.read(`head.${i}.bias`) : null,
        activation: h.tanh ? "tanh" as const : "identity" as const,
      });
    }
    return out;
  }

  /** Rows of an [rows, cols] table that fit one storage binding. */
  static chunkRowsFor(gpu: Gpu, shape: number[]): number {
    if (shape.length !== 2) return shape[0] ?? 1;
    const maxRows = Math.floor(gpu.limits.maxStorageBufferBindingSize / (shape[1] * 4));
    return Math.min(shape[0], maxRows);
  }

  private static allocate(gpu: Gpu, config: XlmrConfig): Map<string, Param> {
    const map = new Map<string, Param>();
    for (const { name, shape, decay, f16 } of parameterSchema(config)) {
      const chunkRows = XlmrParams.chunkRowsFor(gpu, shape);
      const chunks: Tensor[] = [];
      for (let r = 0; r < shape[0]; r += chunkRows) {
        const rows = Math.min(chunkRows, shape[0] - r);
        chunks.push(gpu.alloc(shape.length === 2 ? [rows, shape[1]] : [rows], "f32", name));
      }
      map.set(name, { name, shape, decay, f16, chunks, chunkRows });
    }
    return map;
  }

  /**
   * Random initialisation as Hugging Face does it: normal(0, initializerRange) for linear and
   * embedding weights, zero biases, LayerNorm weight 1 and bias 0, the padding row zero.
   */
  static init(gpu: Gpu, config: XlmrConfig, seed: number): XlmrParams {
    const params = new XlmrParams(gpu, config, XlmrParams.allocate(gpu, config));
    for (const w of randomWeights(config, seed)) params.upload(w.name, w.data);
    return params;
  }

  /** Copies host values (chunks concatenated) into a parameter. */
  upload(name: string, data: Float32Array): void {
    const p = this.param(name);
    if (writeChunks(this.gpu, p.chunks, data) !== data.length) {
      throw new RangeError(`${name}: ${data.length} values for shape [${p.shape}]`);
    }
  }

  /**
   * Loads a Hugging Face checkpoint directory (`model.safetensors` or a sharded index). Accepts
   * names with a `roberta.` or `bert.` prefix, ignores the MLM/NSP heads (`lm_head.*`, `cls.*`)
   * and the `position_ids` buffer, fails naming a missing tensor or a wrong shape, and warns about
   * tensors it does not use.
   */
  static async load(gpu: Gpu, dir: string, config: XlmrConfig): Promise<XlmrParams> {
    const ckpt = await Checkpoint.open(dir);
    try {
      const names = new Set(ckpt.names());
      const expected = parameterShapes(config);
      const resolve = (name: string) =>
        names.has(name)
          ? name
          : names.has(`roberta.${name}`)
          ? `roberta.${name}`
          : names.has(`bert.${name}`)
          ? `bert.${name}`
          : null;
      const used = new Set<string>();
      // Validate every name and shape before allocating anything on the GPU.
      for (const [name, shape] of expected) {
        const found = resolve(name);
        if (!found) {
          if (name.startsWith("pooler.")) continue; // some checkpoints have no pooler
          throw new Error(`${dir}: checkpoint lacks tensor ${name} (expected shape [${shape}])`);
        }
        const info = ckpt.info(found);
        if (info.shape.join(",") !== shape.join(",")) {
          throw new Error(
            `${dir}: tensor ${found} has shape [${info.shape}], expected [${shape}] from config.json`,
          );
        }
        used.add(found);
      }
      const unused = [...names].filter((n) =>
        !used.has(n) && !n.startsWith("lm_head.") && !n.startsWith("cls.") &&
        !n.endsWith("embeddings.position_ids")
      );
      if (unused.length > 0) {
        console.warn(
          `warning: ${dir}: ${unused.length} unused tensors: ${unused.slice(0, 8).join(", ")}${
            unused.length > 8 ? ", …" : ""
          }`,
        );
      }
      // A NaN/Inf weight fails naming the tensor before anything is allocated: one extra pass
      // over the file in row blocks of at most 64 MiB (cheap next to the upload).
      for (const name of used) {
        const info = ckpt.info(name);
        const rowElems = info.shape.slice(1).reduce((a, b) => a * b, 1);
        const rows = info.shape.length === 0 ? 1 : info.shape[0];
        const block = Math.max(1, Math.floor(2 ** 24 / Math.max(rowElems, 1)));
        if (info.shape.length === 0 || rows <= block) {
          assertFinite(await ckpt.readF32(name), dir, name);
          continue;
        }
        for (let r = 0; r < rows; r += block) {
          const n = Math.min(block, rows - r);
          assertFinite(await ckpt.readF32Rows(name, r, n), dir, name, r * rowElems);
        }
      }
      const params = new XlmrParams(gpu, config, XlmrParams.allocate(gpu, config));
      try {
        for (const p of params.byName.values()) {
          const found = resolve(p.name);
          if (!found) { // no pooler in the checkpoint: initialise it as Hugging Face would
            params.upload(p.name, initialValues(p.name, p.shape, config, normalRng(0)));
            continue;
          }
          for (let k = 0; k < p.chunks.length; k++) {
            const t = p.chunks[k];
            const data = p.chunks.length === 1
              ? await ckpt.readF32(found)
              : await ckpt.readF32Rows(found, k * p.chunkRows, t.shape[0]);
            gpu.write(t, data);
          }
        }
      } catch (e) {
        params.release();
        throw e;
      }
      return params;
    } finally {
      ckpt.close();
    }
  }

  /** The parameter called `name` (Hugging Face name without prefix). */
  param(name: string): Param {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter ${name}`);
    return p;
  }

  /** The single tensor of an unchunked parameter. */
  get(name: string): Tensor {
    const p = this.param(name);
    if (p.chunks.length !== 1) throw new Error(`${name} is split into ${p.chunks.length} chunks`);
    return p.chunks[0];
  }

  /** All parameters in checkpoint order. */
  list(): Param[] {
    return [...this.byName.values()];
  }

  /** Number of scalar parameters. */
  count(): number {
    let n = 0;
    for (const p of this.byName.values()) n += p.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /** Reads one parameter back to the host (chunks concatenated). */
  async read(name: string): Promise<Float32Array> {
    return await readChunks(this.gpu, this.param(name).chunks);
  }

  /** Writes `model.safetensors` (names without prefix, F32; no head), atomically. */
  async save(path: string, metadata: Record<string, string> = { format: "pt" }): Promise<void> {
    const tensors = [];
    for (const p of this.byName.values()) {
      if (p.name.startsWith("head.")) continue;
      tensors.push({ name: p.name, shape: p.shape, data: await this.read(p.name) });
    }
    await writeSafetensors(path, tensors, metadata);
  }

  /** Zero-filled tensors shaped like every parameter (gradients, optimiser moments). */
  like(label: string): Map<string, Tensor[]> {
    const out = new Map<string, Tensor[]>();
    for (const p of this.byName.values()) {
      out.set(p.name, p.chunks.map((t) => this.gpu.zeros(t.shape, "f32", `${label}:${p.name}`)));
    }
    return out;
  }

  /**
   * Stores every linear-layer weight (attention, feed-forward, pooler) in f16 for inference:
   * half the memory of those weights, f32 accumulation in the matmuls. Embedding tables,
   * LayerNorm parameters and biases stay f32. Training needs f32 weights; a model converted
   * here cannot be trained.
   */
  toF16LinearWeights(): void {
    if (!this.gpu.hasF16) {
      throw new TypeError(
        "f16 weights need the WebGPU feature shader-f16, which this adapter lacks (gpu.hasF16)",
      );
    }
    if (this.flat.length > 0) {
      throw new Error("toF16LinearWeights: the parameters are in a trainer's flat layout");
    }
    for (const p of this.byName.values()) {
      if (!p.f16) continue;
      const f16 = p.chunks.map((t) => castF32ToF16(this.gpu, t));
      this.gpu.release(...p.chunks);
      p.chunks = f16;
    }
  }

  /** Flat buffers whose views some parameters' chunks became (training/flat.ts). */
  private flat: Tensor[] = [];

  /**
   * Takes ownership of flat buffers that parameters' chunks are now views of (the optimiser's
   * flat layout, training/flat.ts): {@linkcode XlmrParams.release} frees them instead of the views.
   */
  adoptFlat(...buffers: Tensor[]): void {
    this.flat.push(...buffers);
  }

  /** Frees replaced chunk tensors, except views of adopted flat buffers (freed by release). */
  releaseChunks(chunks: Tensor[]): void {
    const flat = new Set(this.flat.map((t) => t.allocation));
    this.gpu.release(...chunks.filter((t) => !flat.has(t.allocation)));
  }

  /** Frees every parameter tensor. */
  release(): void {
    const flat = new Set(this.flat.map((t) => t.allocation));
    for (const p of this.byName.values()) {
      this.gpu.release(...p.chunks.filter((t) => !flat.has(t.allocation)));
    }
    this.gpu.release(...this.flat);
    this.flat = [];
  }
}
