/**
 * The GPU runtime: adapter and device acquisition, a buffer pool with memory scopes
 * ({@linkcode Gpu.scope}; use after release is an error), a pipeline
 * cache, one command encoder and compute pass per unit of work (submitted on {@linkcode Gpu.flush}),
 * uniform parameters carved from a ring, and read-back helpers.
 *
 * Kernels record dispatches with {@linkcode Gpu.run}, binding tensors and uniforms by the names of
 * their declaration (spec.ts); nothing reaches the GPU until a flush, a read or an upload. Every `await` on the queue costs milliseconds in Deno, so callers batch many
 * dispatches per flush and read results back rarely.
 * @module
 */
import { type Allocation, type DType, DTYPE_BYTES, shapeSize, Tensor } from "./tensor.ts";
import { loadShader } from "./shader.ts";
import v8 from "node:v8";
import vm from "node:vm";
import { acceptedDtypes, type Kernel, kernel, type ShaderDecl, type TemplateVars } from "./spec.ts";
import { type MatmulSwitches, matmulSwitches } from "./options.ts";
import { loadTuneCache, type TuneCache, tuneSource } from "./tune.ts";

/** Options of {@linkcode Gpu.create}. */
export interface GpuOptions {
  /**
   * Fill every buffer handed out by {@linkcode Gpu.alloc} with NaN first, and every released
   * buffer again before it goes back to the pool; record where each tensor was released, so that
   * a use after release names the line (tests use this).
   */
  poison?: boolean;
  /** Power preference passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /** Matmul tiles, split-K and f16 arithmetic for this device only (tests and benchmarks). */
  matmul?: Partial<MatmulSwitches>;
  /**
   * Use tiles tuned for this adapter (`cli.ts bench tune`; kernels/tune.ts): true → the adapter's
   * cache file, a string → that file, false → none. Default: `XLMR_WEBGPU_TUNE` (`on` or a path),
   * else none. Never read when `poison` is set (tests).
   */
  tune?: boolean | string;
}

/** {@linkcode GpuOptions} as a Gpu holds them: the kernel switches filled in. */
export interface GpuSettings extends GpuOptions {
  /** Matmul switches; change them between products (`gpu.options.matmul.splits = 3`). */
  matmul: MatmulSwitches;
}

/** What a kernel dispatch needs to find (or build) its pipeline. */
export interface KernelSpec {
  /** WGSL file, relative to `kernels/` (e.g. `"matmul.wgsl"`). */
  shader: string;
  /** Entry point; defaults to `"main"`. */
  entry?: string;
  /** `override` constants (workgroup size, tile sizes, flags). */
  constants?: Record<string, number>;
  /** Jinja template variables, only where a type must change (f32/f16). */
  template?: TemplateVars;
  /** The declaration whose bindings the loader generates (set by {@linkcode Gpu.run}). */
  kernel?: Kernel;
}

/** How {@linkcode Gpu.run} specialises a kernel: entry point, overrides, template variables. */
export interface RunOptions {
  /** Entry point; may be left out when the program has one. */
  entry?: string;
  /** `override` constants (workgroup size, tile sizes, flags). */
  constants?: Record<string, number>;
  /** Jinja template variables, only where code must change. */
  template?: TemplateVars;
}

/** Everything below is a uniform parameter; a kernel's `Params` struct must match the order. */
export type ParamValue = { u32: number } | { f32: number } | { i32: number };
/** Helpers to build typed uniform parameters. */
export const u32 = (v: number): ParamValue => ({ u32: v });
/** A float uniform parameter. */
export const f32 = (v: number): ParamValue => ({ f32: v });
/** A signed integer uniform parameter. */
export const i32 = (v: number): ParamValue => ({ i32: v });

const FILL = kernel({
  shader: "fill.wgsl",
  uniforms: { count: "u32", value: "u32" },
  bindings: { out: { access: "read_write", type: "u32", dtype: ["f32", "u32", "i32", "f16"] } },
});

const declarationIds = new WeakMap<ShaderDecl, number>();
let nextDeclarationId = 1;
/** A number per shader declaration object, for pipeline cache keys. */
function declarationId(d: ShaderDecl): number {
  let id = declarationIds.get(d);
  if (id === undefined) declarationIds.set(d, id = nextDeclarationId++);
  return id;
}

const UNIFORM_SLOT = 256;
const UNIFORM_RING_BYTES = 256 * 1024;
const MAX_WORKGROUPS = 65535;

/** How to get a WebGPU adapter when none is found. */
export const NO_ADAPTER_HELP =
  "No WebGPU adapter found. On a machine without a GPU install a Vulkan software driver " +
  "(Debian/Ubuntu: `sudo apt-get install -y mesa-vulkan-drivers`, which provides lavapipe) and " +
  "run with `deno run -A`; set DENO_WEBGPU_BACKEND=vulkan to force the Vulkan backend.";

/**
 * A WebGPU device with the engine's conveniences.
 *
 * @example
 * ```ts
 * import { Gpu } from "./runtime.ts";
 * const gpu = await Gpu.create();
 * const x = gpu.fromArray(new Float32Array([1, 2, 3]), [3]);
 * console.log(await gpu.read(x)); // Float32Array [1, 2, 3]
 * gpu.release(x);
 * ```
 */
export class Gpu {
  /** Number of dispatches recorded since creation (for benchmarks and step reports). */
  dispatchCount = 0;
  /** Number of queue submits since creation. */
  submitCount = 0;
  /** Bytes currently allocated in device buffers (live and pooled). */
  allocatedBytes = 0;
  /** Peak of {@linkcode Gpu.allocatedBytes}. */
  peakBytes = 0;
  /** Pooled device buffers that exist (in use by tensors or free for reuse). */
  bufferCount = 0;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly bufferSizes = new WeakMap<GPUBuffer, number>();
  private uniformRing: GPUBuffer;
  private uniformCursor = 0;
  private uniformStaging = new Uint8Array(UNIFORM_RING_BYTES);
  private uniformDirtyFrom = 0;
  private lostInfo: GPUDeviceLostInfo | null = null;
  /** Open scopes, innermost last: the live allocations each one releases when it ends. */
  private readonly scopes: Scope[] = [];
  /** The scope an allocation belongs to (absent: unscoped, released by hand). */
  private readonly scopeOf = new WeakMap<Allocation, Scope>();
  /** Each pooled buffer's current allocation (finds the owner of a view made by hand). */
  private readonly owners = new WeakMap<GPUBuffer, Allocation>();
  private collectedAt = 0;
  private errors: string[] = [];

  /** The options this Gpu was created with; `options.matmul` may be changed between products. */
  readonly options: GpuSettings;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    options: GpuOptions,
  ) {
    this.options = { ...options, matmul: matmulSwitches(options.matmul) };
    this.uniformRing = device.createBuffer({
      label: "uniform-ring",
      size: UNIFORM_RING_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.lost.then((info) => {
      this.lostInfo = info;
    });
    // Validation errors (a shader that does not compile, a bad binding) would otherwise leave
    // outputs silently unwritten: keep them and raise at the next read or sync.
    device.addEventListener("uncapturederror", (e) => {
      this.errors.push((e as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** Requests an adapter and a device with the adapter's full limits and useful features. */
  static async create(options: GpuOptions = {}): Promise<Gpu> {
    matmulSwitches(options.matmul); // bad switches throw before a device is requested
    if (!("gpu" in navigator) || !navigator.gpu) throw new Error(NO_ADAPTER_HELP);
    const adapter = await navigator.gpu.requestAdapter({
      powerPreference: options.powerPreference ?? "high-performance",
    });
    if (!adapter) throw new Error(NO_ADAPTER_HELP);
    const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
    const l = adapter.limits;
    const requiredLimits: Record<string, number> = {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    };
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    const gpu = new Gpu(adapter, device, options);
    const source = tuneSource(options.tune, options.poison === true, adapter.info);
    if (source !== null) gpu.tuned = loadTuneCache(source);
    return gpu;
  }

  /** Tuned matmul plans of this adapter (kernels/tune.ts), or null: the hand-written table. */
  tuned: TuneCache | null = null;

  /** The device's limits (as granted). */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  private cpuAdapterCache: boolean | undefined;

  /**
   * Whether the adapter is a software (CPU) one such as lavapipe or SwiftShader, which wants other
   * tiles and work splits than a GPU. Computed once per Gpu; every kernel reads it here.
   */
  get cpuAdapter(): boolean {
    if (this.cpuAdapterCache === undefined) {
      const info = this.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
      this.cpuAdapterCache = info.isFallbackAdapter === true ||
        /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device}`);
    }
    return this.cpuAdapterCache;
  }

  /** Whether WGSL `f16` is available. */
  get hasF16(): boolean {
    return this.device.features.has("shader-f16");
  }

  /** Whether GPU timestamps can be taken. */
  get hasTimestamps(): boolean {
    return this.device.features.has("timestamp-query");
  }

  /** A one-line description of the adapter. */
  describe(): string {
    const i = this.adapter.info;
    const feats = [...this.device.features].filter((f) =>
      f === "shader-f16" || f === "timestamp-query" || f === "subgroups"
    );
    return `${i.description || i.device || "unknown"} (vendor ${i.vendor || "?"}, ` +
      `max binding ${
        (this.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)
      } MiB, features: ${feats.join(", ") || "none"})`;
  }

  // ---------------------------------------------------------------- buffers

  /**
   * A tensor from the pool (contents undefined, NaN when poisoning). Inside
   * {@linkcode Gpu.scope} it is released when the scope ends (unless returned or kept); outside
   * any scope, release it when done.
   */
  alloc(shape: readonly number[], dtype: DType = "f32", label = "tensor"): Tensor {
    const bytes = shapeSize(shape) * DTYPE_BYTES[dtype];
    const buffer = this.allocBuffer(bytes, label);
    const allocation: Allocation = { label, byteLength: bytes, released: null };
    this.owners.set(buffer, allocation);
    const t = new Tensor(buffer, shape, dtype, 0, allocation);
    const scope = this.scopes.at(-1);
    if (scope) {
      scope.live.set(allocation, t);
      this.scopeOf.set(allocation, scope);
    }
    if (this.options.poison) this.poison(t);
    return t;
  }

  /** A zero-filled tensor. */
  zeros(shape: readonly number[], dtype: DType = "f32", label = "zeros"): Tensor {
    const t = this.alloc(shape, dtype, label);
    this.fill(t, 0);
    return t;
  }

  /** A tensor holding `data`. */
  fromArray(
    data: Float32Array | Uint32Array | Int32Array | Uint16Array,
    shape: readonly number[],
    dtype?: DType,
    label = "data",
  ): Tensor {
    const dt: DType = dtype ??
      (data instanceof Float32Array
        ? "f32"
        : data instanceof Uint32Array
        ? "u32"
        : data instanceof Int32Array
        ? "i32"
        : "f16");
    if (data.length !== shapeSize(shape)) {
      throw new RangeError(`fromArray(${label}): ${data.length} values for shape [${shape}]`);
    }
    const t = this.alloc(shape, dt, label);
    this.write(t, data);
    return t;
  }

  /** Copies `data` into `t` after all work recorded so far. */
  write(t: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    if (data.byteLength + byteOffset > t.byteLength) {
      throw new RangeError(`write: ${data.byteLength} bytes do not fit ${t}`);
    }
    this.checkLive(t, "write");
    // Queue writes land before any command buffer submitted later; flush so that the work
    // recorded before this call sees the old contents.
    this.flush();
    const padded = data.byteLength % 4 === 0 ? data : padTo4(data);
    this.device.queue.writeBuffer(
      t.buffer,
      t.offset + byteOffset,
      padded.buffer as ArrayBuffer,
      padded.byteOffset,
      padded.byteLength,
    );
  }

  /** Fills `t` with one value (f32 bit pattern for f32 tensors, raw u32 otherwise). */
  fill(t: Tensor, value: number): void {
    const bits = t.dtype === "f32" ? new Uint32Array(new Float32Array([value]).buffer)[0] : value;
    const count = Math.ceil(t.byteLength / 4);
    this.run(FILL, {}, { out: t }, { count, value: bits }, Gpu.grid(Math.ceil(count / 256)));
  }

  /** Fills `t` with quiet NaNs so that a kernel that forgets to write shows up in tests. */
  poison(t: Tensor): void {
    const count = Math.ceil(t.byteLength / 4);
    this.run(FILL, {}, { out: t }, { count, value: 0x7fc00000 }, Gpu.grid(Math.ceil(count / 256)));
  }

  /**
   * Returns tensors' buffers to the pool (null and undefined are skipped). The tensors, and every
   * view of them, must not be used afterwards: a dispatch, copy, write or read that binds one
   * throws, naming the tensor's label and (with `poison`) where it was released. Releasing a
   * view, a tensor this Gpu did not allocate, or a tensor twice throws.
   */
  release(...tensors: (Tensor | null | undefined)[]): void {
    for (const t of tensors) {
      if (!t) continue;
      const a = t.allocation;
      if (!a || this.owners.get(t.buffer) !== a && !a.released) {
        throw new Error(`release: ${t} was not allocated by this Gpu (a hand-made view?)`);
      }
      if (a.released) {
        throw new Error(
          `release: "${a.label}" (${t}) was already released${this.where(a.released)}`,
        );
      }
      if (t.offset !== 0 || t.byteLength !== a.byteLength) {
        throw new Error(
          `release: ${t} is a view of "${a.label}"; release the tensor it views instead`,
        );
      }
      this.free1(t, a, this.options.poison ? callerLine() : "");
    }
  }

  /**
   * Releases every distinct tensor held by `value` (a Tensor, or arrays, maps and plain objects of
   * them, searched as {@linkcode Gpu.scope} searches what it returns); tensors that appear twice
   * (a saved input that is also another entry's output) are released once. For state that
   * outlives the scope that made it, such as a forward pass's saved activations.
   */
  releaseAll(value: unknown): void {
    const found = new Map<Allocation, Tensor>();
    collectTensors(value, found, 0, new Set());
    this.release(...found.values());
  }

  /**
   * Runs `fn` and then releases every tensor allocated while it ran, except those it returns (a
   * Tensor, or arrays and plain objects holding tensors, searched a few levels deep) and those
   * passed to {@linkcode Gpu.keep}. Scopes nest: what an inner scope returns belongs to the
   * enclosing scope (or, outside any scope, to the caller, who releases it). When `fn` throws,
   * everything it allocated is released. Tensors allocated before the scope are never touched,
   * and releasing one of the scope's tensors early (to lower the peak) is allowed.
   *
   * `fn` must be synchronous: recording GPU work is, and a read's `await` would let other code
   * allocate into this scope. Record inside, read outside (a returned tensor survives the scope).
   * A function returning a Promise throws.
   *
   * @example
   * ```ts
   * import { Gpu } from "./runtime.ts";
   * const gpu = await Gpu.create();
   * const x = gpu.fromArray(new Float32Array([1, 2, 3]), [3]);
   * const y = gpu.scope(() => {
   *   const tmp = gpu.alloc([3]); // released when the scope ends
   *   gpu.copy(x, tmp);
   *   const out = gpu.alloc([3]);
   *   gpu.copy(tmp, out);
   *   return out; // survives
   * });
   * console.log(await gpu.read(y)); // Float32Array [1, 2, 3]
   * gpu.release(x, y);
   * ```
   */
  scope<T>(fn: () => T, name = "scope"): T {
    const scope: Scope = { name, live: new Map() };
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise || typeof (result as { then?: unknown })?.then === "function") {
        throw new TypeError(
          `scope "${name}": the function returned a Promise; scopes are synchronous ` +
            "(record the work inside, await the read outside)",
        );
      }
    } catch (e) {
      this.endScope(scope, new Map());
      throw e;
    }
    const returned = new Map<Allocation, Tensor>();
    collectTensors(result, returned, 0, new Set());
    for (const a of returned.keys()) {
      if (a.released) {
        throw new Error(
          `scope "${name}" returned "${a.label}", which was released${this.where(a.released)}`,
        );
      }
    }
    this.endScope(scope, returned);
    return result;
  }

  /**
   * Takes `t` out of the scope it was allocated in, so that the scope's end does not release it;
   * the caller releases it later (a step's statistics kept for a deferred read, a lazily created
   * gradient). Returns `t`. A tensor allocated outside any scope is left as it is.
   */
  keep<T extends Tensor>(t: T): T {
    const a = t.allocation;
    if (!a) throw new Error(`keep: ${t} was not allocated by this Gpu`);
    if (a.released) throw new Error(`keep: "${a.label}" was released${this.where(a.released)}`);
    this.scopeOf.get(a)?.live.delete(a);
    this.scopeOf.delete(a);
    return t;
  }

  /** Number of open scopes (0 outside {@linkcode Gpu.scope}). */
  get scopeDepth(): number {
    return this.scopes.length;
  }

  private endScope(scope: Scope, returned: Map<Allocation, Tensor>): void {
    if (this.scopes.at(-1) !== scope) {
      throw new Error(`scope "${scope.name}" ended while an inner scope was still open`);
    }
    this.scopes.pop();
    const outer = this.scopes.at(-1);
    const site = `the end of scope "${scope.name}"`;
    for (const [a, t] of scope.live) {
      if (a.released) continue;
      if (returned.has(a)) {
        if (outer) {
          outer.live.set(a, t);
          this.scopeOf.set(a, outer);
        } else this.scopeOf.delete(a);
      } else this.free1(t, a, site);
    }
    scope.live.clear();
  }

  /** Marks `a` released (poisoning its buffer first in tests) and pools the buffer. */
  private free1(t: Tensor, a: Allocation, site: string): void {
    if (this.options.poison) this.poison(t);
    a.released = site || "?";
    const scope = this.scopeOf.get(a);
    if (scope) {
      scope.live.delete(a);
      this.scopeOf.delete(a);
    }
    const size = this.bufferSizes.get(t.buffer)!;
    const list = this.free.get(size) ?? [];
    list.push(t.buffer);
    this.free.set(size, list);
  }

  private where(site: string): string {
    return site === "?" ? " (create the Gpu with poison: true to record where)" : ` at ${site}`;
  }

  /**
   * Throws when `t` (or the tensor it views) was released. A tensor made by hand
   * (`new Tensor(buffer, …)`, no allocation) is not tracked: the benchmark's replay binds the
   * recorded step's buffers that way on purpose.
   */
  private checkLive(t: Tensor, what: string): void {
    const a = t.allocation;
    if (a?.released) {
      throw new Error(
        `${what}: "${a.label}" (${t}) is used after it was released${this.where(a.released)}`,
      );
    }
  }

  /**
   * The buffer pool at this moment: buffers (and bytes) held by live tensors, and those free for
   * reuse. A leak shows as live buffers that grow across identical phases (soak benchmark).
   */
  poolStats(): { liveBuffers: number; liveBytes: number; freeBuffers: number; freeBytes: number } {
    let freeBuffers = 0, freeBytes = 0;
    for (const [size, list] of this.free) {
      freeBuffers += list.length;
      freeBytes += size * list.length;
    }
    return {
      liveBuffers: this.bufferCount - freeBuffers,
      liveBytes: this.allocatedBytes - freeBytes,
      freeBuffers,
      freeBytes,
    };
  }

  /** Destroys pooled buffers that are not in use (after a phase that needed a lot of memory). */
  trim(): void {
    this.flush();
    for (const [size, list] of this.free) {
      for (const b of list) {
        b.destroy();
        this.allocatedBytes -= size;
        this.bufferCount--;
      }
    }
    this.free.clear();
  }

  private allocBuffer(bytes: number, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 256) * 256);
    if (size > this.limits.maxBufferSize) {
      throw new RangeError(
        `${label}: ${bytes} bytes exceed the device's maxBufferSize ` +
          `(${this.limits.maxBufferSize} bytes); split the tensor`,
      );
    }
    const pooled = this.free.get(size);
    if (pooled && pooled.length > 0) return pooled.pop()!;
    this.device.pushErrorScope("out-of-memory");
    const buffer = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.device.popErrorScope().then((e) => {
      // Raised at the next read or sync, naming what was being allocated and how much.
      if (e) {
        this.errors.push(
          `GPU out of memory allocating ${label} (${size} bytes; ${this.allocatedBytes} bytes ` +
            `already allocated): ${e.message}`,
        );
      }
    });
    this.bufferSizes.set(buffer, size);
    this.allocatedBytes += size;
    this.bufferCount++;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return buffer;
  }

  // ---------------------------------------------------------------- pipelines and dispatch

  /** The compute pipeline for a kernel spec, built once per distinct spec. */
  pipeline(spec: KernelSpec): GPUComputePipeline {
    // The declaration takes part: two declarations of one file generate different code.
    const decl = spec.kernel ? declarationId(spec.kernel.file) : 0;
    const key = JSON.stringify([
      spec.shader,
      decl,
      spec.entry ?? "main",
      spec.constants,
      spec.template,
    ]);
    let p = this.pipelines.get(key);
    if (!p) {
      const code = loadShader(spec.shader, spec.template, spec.kernel?.file);
      const module = this.device.createShaderModule({ label: spec.shader, code });
      p = this.device.createComputePipeline({
        label: `${spec.shader}:${spec.entry ?? "main"}`,
        layout: "auto",
        compute: { module, entryPoint: spec.entry ?? "main", constants: spec.constants },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Records one dispatch of a declared kernel: tensors and uniforms by the names of its
   * declaration (spec.ts). A missing, extra or misspelled name, a tensor of a dtype the binding
   * does not take, or an entry point the program does not have throws, naming the kernel and the
   * binding.
   *
   * @example
   * ```ts
   * import { Gpu } from "./runtime.ts";
   * import { kernel } from "./spec.ts";
   * const ADD = kernel({
   *   shader: "elementwise.wgsl",
   *   entries: ["add"],
   *   uniforms: { count: "u32" },
   *   bindings: { a: "read", b: "read", out: "read_write" },
   * });
   * const gpu = await Gpu.create();
   * const a = gpu.fromArray(new Float32Array([1, 2]), [2]);
   * const out = gpu.alloc([2]);
   * gpu.run(ADD, {}, { a, b: a, out }, { count: 2 }, [1]);
   * console.log(await gpu.read(out)); // Float32Array [2, 4]
   * ```
   */
  run<U extends string, B extends string>(
    k: Kernel<U, B>,
    opts: RunOptions,
    tensors: { [name in B]?: Tensor | null },
    uniforms: { [name in U]: number },
    workgroups: [number, number?, number?],
  ): void {
    const entry = opts.entry ?? (k.entries.length === 1 ? k.entries[0] : undefined);
    if (entry === undefined || !k.entries.includes(entry)) {
      throw new TypeError(
        `${k.name}: ${entry === undefined ? "no entry point given" : `no entry point "${entry}"`}` +
          ` (it has ${k.entries.join(", ")})`,
      );
    }
    const names = Object.keys(k.bindings) as B[];
    for (const n of Object.keys(tensors)) {
      if (!Object.hasOwn(k.bindings, n)) {
        throw new TypeError(`${k.name}: no binding "${n}" (it binds ${names.join(", ")})`);
      }
    }
    const bound: (Tensor | null)[] = names.map((n) => {
      const t = tensors[n] ?? null;
      const b = k.bindings[n];
      if (!t) {
        if (b.optional) return null;
        throw new TypeError(`${k.name}: binding "${n}" is missing`);
      }
      if (!(t instanceof Tensor)) throw new TypeError(`${k.name}: binding "${n}" is not a Tensor`);
      const ok = acceptedDtypes(b, opts.template);
      if (!ok.includes(t.dtype)) {
        throw new TypeError(`${k.name}: binding "${n}" takes ${ok.join(" or ")}, got ${t}`);
      }
      return t;
    });
    const want = Object.keys(k.uniforms) as U[];
    for (const n of Object.keys(uniforms)) {
      if (!Object.hasOwn(k.uniforms, n)) {
        throw new TypeError(`${k.name}: no uniform "${n}" (it has ${want.join(", ") || "none"})`);
      }
    }
    const params: ParamValue[] = want.map((n) => {
      const v = uniforms[n];
      if (typeof v !== "number") throw new TypeError(`${k.name}: uniform "${n}" is missing`);
      const t = k.uniforms[n];
      return t === "u32" ? u32(v) : t === "i32" ? i32(v) : f32(v);
    });
    this.dispatch(
      { shader: k.shader, entry, constants: opts.constants, template: opts.template, kernel: k },
      bound,
      params,
      workgroups,
    );
  }

  /**
   * Records one dispatch into the current compute pass, positionally (the layer under
   * {@linkcode Gpu.run}): binding 0 is the uniform `params` (when given); tensors follow at
   * bindings 1, 2, … (a null leaves that binding out).
   */
  dispatch(
    spec: KernelSpec,
    tensors: (Tensor | null)[],
    params: ParamValue[] | null,
    workgroups: [number, number?, number?],
  ): void {
    if (this.lostInfo) throw new Error(`GPU device lost: ${this.lostInfo.message}`);
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const name = `${spec.shader}:${spec.entry ?? "main"}`;
    if (x > MAX_WORKGROUPS || y > MAX_WORKGROUPS || z > MAX_WORKGROUPS) {
      throw new RangeError(`${name}: dispatch [${x}, ${y}, ${z}] exceeds 65535 per dimension`);
    }
    const maxBinding = this.limits.maxStorageBufferBindingSize;
    const entries: GPUBindGroupEntry[] = [];
    if (params && params.length > 0) {
      entries.push({ binding: 0, resource: this.uniform(params) });
    }
    tensors.forEach((t, i) => {
      if (!t) return;
      this.checkLive(t, name);
      const size = Math.ceil(t.byteLength / 4) * 4;
      if (size > maxBinding) {
        throw new RangeError(
          `${name}: ${t} (${size} bytes) exceeds maxStorageBufferBindingSize ` +
            `(${maxBinding} bytes); split it into smaller tensors`,
        );
      }
      entries.push({
        binding: i + 1,
        resource: { buffer: t.buffer, offset: t.offset, size: Math.max(4, size) },
      });
    });
    const pipeline = this.pipeline(spec);
    const bindGroup = this.device.createBindGroup({
      label: name,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    const pass = this.currentPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
  }

  /** Splits `n` workgroups into a 2-D grid within the per-dimension limit. */
  static grid(n: number): [number, number] {
    if (n <= MAX_WORKGROUPS) return [n, 1];
    const y = Math.ceil(n / MAX_WORKGROUPS);
    return [Math.ceil(n / y), y];
  }

  /** Records a buffer-to-buffer copy (ends the current pass). */
  copy(src: Tensor, dst: Tensor, bytes = src.byteLength): void {
    if (bytes > dst.byteLength) throw new RangeError(`copy: ${src} does not fit ${dst}`);
    this.checkLive(src, "copy");
    this.checkLive(dst, "copy");
    this.endPass();
    this.currentEncoder().copyBufferToBuffer(
      src.buffer,
      src.offset,
      dst.buffer,
      dst.offset,
      Math.ceil(bytes / 4) * 4,
    );
  }

  private uniform(params: ParamValue[]): GPUBufferBinding {
    if (this.uniformCursor + UNIFORM_SLOT > UNIFORM_RING_BYTES) this.flush();
    const offset = this.uniformCursor;
    const view = new DataView(this.uniformStaging.buffer, offset, UNIFORM_SLOT);
    params.forEach((p, i) => {
      if ("u32" in p) view.setUint32(i * 4, p.u32 >>> 0, true);
      else if ("i32" in p) view.setInt32(i * 4, p.i32 | 0, true);
      else view.setFloat32(i * 4, p.f32, true);
    });
    this.uniformCursor += UNIFORM_SLOT;
    return {
      buffer: this.uniformRing,
      offset,
      size: Math.max(16, Math.ceil(params.length / 4) * 16),
    };
  }

  private currentEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private currentPass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.currentEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits everything recorded so far (one command buffer). Does not wait. */
  flush(): void {
    this.endPass();
    if (this.uniformCursor > this.uniformDirtyFrom) {
      // The ring's new slots are written before the command buffer that reads them runs.
      this.device.queue.writeBuffer(
        this.uniformRing,
        this.uniformDirtyFrom,
        this.uniformStaging,
        this.uniformDirtyFrom,
        this.uniformCursor - this.uniformDirtyFrom,
      );
    }
    this.uniformCursor = 0;
    this.uniformDirtyFrom = 0;
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.submitCount++;
    }
    // Every dispatch leaves a bind group whose native memory is freed only by a full V8 collection,
    // which a small JS heap never triggers: without this, host memory grows ~0.5 KB per dispatch.
    if (this.dispatchCount - this.collectedAt >= GC_EVERY_DISPATCHES) {
      this.collectedAt = this.dispatchCount;
      collectGarbage();
    }
  }

  /** Flushes and waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkLost();
  }

  // ---------------------------------------------------------------- read-back

  /** Reads a tensor back to the host (flushes first). */
  async read(t: Tensor): Promise<Float32Array>;
  async read(t: Tensor, as: "u32"): Promise<Uint32Array>;
  async read(t: Tensor, as: "i32"): Promise<Int32Array>;
  async read(t: Tensor, as?: "u32" | "i32"): Promise<Float32Array | Uint32Array | Int32Array> {
    const bytes = await this.readBytes(t);
    if (as === "u32" || (!as && t.dtype === "u32")) return new Uint32Array(bytes, 0, t.size);
    if (as === "i32" || (!as && t.dtype === "i32")) return new Int32Array(bytes, 0, t.size);
    if (t.dtype === "f16") return f16BitsToF32(new Uint16Array(bytes, 0, t.size));
    return new Float32Array(bytes, 0, t.size);
  }

  /** Reads several tensors with one wait. */
  async readMany(ts: Tensor[]): Promise<Float32Array[]> {
    const staged = ts.map((t) => this.stage(t));
    this.flush();
    await Promise.all(staged.map((s) => s.mapAsync(GPUMapMode.READ)));
    this.checkLost();
    return staged.map((s, i) => {
      const bytes = s.getMappedRange().slice(0, ts[i].byteLength);
      s.unmap();
      s.destroy();
      // f16 tensors may hold an odd number of halves: never view them as 4-byte floats.
      return ts[i].dtype === "f16" ? f16BitsToF32(new Uint16Array(bytes)) : new Float32Array(bytes);
    });
  }

  private stage(t: Tensor): GPUBuffer {
    this.checkLive(t, "read");
    const size = Math.ceil(t.byteLength / 4) * 4;
    const staging = this.device.createBuffer({
      size: Math.max(4, size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.endPass();
    this.currentEncoder().copyBufferToBuffer(t.buffer, t.offset, staging, 0, size);
    return staging;
  }

  private async readBytes(t: Tensor): Promise<ArrayBuffer> {
    const staging = this.stage(t);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    this.checkLost();
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    return copy;
  }

  private checkLost(): void {
    if (this.lostInfo) throw new Error(`GPU device lost: ${this.lostInfo.message}`);
    if (this.errors.length > 0) {
      const all = this.errors.splice(0);
      throw new Error(
        `WebGPU error: ${all[0]}${all.length > 1 ? ` (and ${all.length - 1} more)` : ""}`,
      );
    }
  }

  // ---------------------------------------------------------------- timing

  /**
   * Runs `record` in a compute pass of its own with GPU timestamps around it and returns the GPU
   * time in milliseconds, or null when the adapter has no timestamp queries.
   */
  async timeGpu(record: () => void): Promise<number | null> {
    if (!this.hasTimestamps) {
      record();
      await this.sync();
      return null;
    }
    this.flush();
    const querySet = this.device.createQuerySet({ type: "timestamp", count: 2 });
    const resolve = this.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const readback = this.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.pass = this.currentEncoder().beginComputePass({
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    record();
    this.endPass();
    const enc = this.currentEncoder();
    enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
    this.flush();
    await readback.mapAsync(GPUMapMode.READ);
    const [t0, t1] = new BigUint64Array(readback.getMappedRange());
    readback.unmap();
    readback.destroy();
    resolve.destroy();
    querySet.destroy();
    return Number(t1 - t0) / 1e6;
  }

  /** Releases every GPU resource. */
  destroy(): void {
    this.trim();
    this.device.destroy();
  }
}

/** One open {@linkcode Gpu.scope}: its name and the live tensors it will release. */
interface Scope {
  name: string;
  live: Map<Allocation, Tensor>;
}

/** The tensors in `value` by allocation (arrays, maps, sets and plain objects, 4 levels deep). */
function collectTensors(
  value: unknown,
  into: Map<Allocation, Tensor>,
  depth: number,
  seen: Set<object>,
): void {
  if (value instanceof Tensor) {
    if (value.allocation && !into.has(value.allocation)) into.set(value.allocation, value);
    return;
  }
  if (depth > 4 || value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into, depth + 1, seen);
    return;
  }
  if (value instanceof Map || value instanceof Set) {
    for (const v of value.values()) collectTensors(v, into, depth + 1, seen);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1, seen);
  }
}

/** The first stack frame outside this file ("file.ts:12"), for release sites in tests. */
function callerLine(): string {
  const lines = (new Error().stack ?? "").split("\n").slice(1);
  const here = import.meta.url;
  for (const l of lines) {
    if (l.includes(here)) continue;
    const m = l.match(/\(?((?:file|https?):\/\/[^\s)]+)\)?\s*$/);
    if (m) return m[1].replace(/^file:\/\/.*\/(?=[^/]+\/[^/]+:\d+:\d+$)/, "");
  }
  return "?";
}

/** Dispatches between two full garbage collections (see {@linkcode Gpu.flush}). */
const GC_EVERY_DISPATCHES = 10000;
let fullGc: (() => void) | null | undefined;

/** A full V8 collection where the runtime allows one (node:v8 exposes `gc` to a fresh context). */
function collectGarbage(): void {
  if (fullGc === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc");
      fullGc = vm.runInNewContext("gc") as () => void;
    } catch {
      fullGc = null;
    }
  }
  fullGc?.();
}

function padTo4(data: ArrayBufferView): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}

/** Converts IEEE half-precision bit patterns to f32. */
export function f16BitsToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0
      ? s * m * 2 ** -24
      : e === 31
      ? (m ? NaN : s * Infinity)
      : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}
