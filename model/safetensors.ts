/**
 * Safetensors read and write, our own implementation of the format that PyTorch's `safetensors`
 * writes: an 8-byte little-endian header length, a JSON header (`__metadata__` plus one
 * `{dtype, shape, data_offsets}` entry per tensor, offsets relative to the data section), then the
 * tensors back to back. Reading streams one tensor (or a block of rows) at a time with seek + read,
 * so a 732 MiB embedding table never has to sit in memory twice.
 * @module
 */
import { writeAll, writeFileAtomic } from "./atomic_write.ts";

/** Element types this reader understands. */
export type SafetensorsDType = "F32" | "F16" | "BF16" | "I64" | "I32" | "U8";

/** One tensor of a safetensors file; `begin`/`end` are absolute byte offsets in the file. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** A header longer than this is treated as corrupt rather than read into memory. */
export const MAX_HEADER_BYTES = 100 * 2 ** 20;

const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
};

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("safetensors.ts assumes a little-endian host");
}

/** Number of elements of `shape` (1 for a scalar). */
function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Parses and validates a safetensors header. `headerLength` is the u64 from the first 8 bytes,
 * `fileSize` the size of the whole file; errors name `source` and the tensor or field.
 *
 * @example
 * ```ts
 * import { parseSafetensorsHeader } from "./safetensors.ts";
 * const json = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
 * const bytes = new TextEncoder().encode(json);
 * const { tensors } = parseSafetensorsHeader(bytes, 8 + bytes.length + 8, "x.safetensors");
 * console.log(tensors.get("w")?.begin); // 8 + header length
 * ```
 */
export function parseSafetensorsHeader(
  header: Uint8Array,
  fileSize: number,
  source: string,
): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(header));
  } catch (e) {
    throw new Error(`${source}: safetensors header is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${source}: safetensors header is not a JSON object`);
  }
  const dataStart = 8 + header.length;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw new Error(`${source}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") {
          throw new Error(`${source}: __metadata__.${k} must be a string, got ${typeof v}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `${source}: tensor "${name}"`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new Error(`${where}: entry must be an object {dtype, shape, data_offsets}`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      throw new Error(
        `${where}: unknown dtype ${JSON.stringify(dtype)} (supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        })`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      );
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new Error(
        `${where}: data_offsets must be [begin, end] with non-negative integers, got ${
          JSON.stringify(offsets)
        }`,
      );
    }
    const [begin, end] = offsets as number[];
    if (begin > end) throw new Error(`${where}: data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLength) {
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes)`,
      );
    }
    const want = numel(shape) * DTYPE_BYTES[dtype as SafetensorsDType];
    if (want !== end - begin) {
      throw new Error(
        `${where}: shape [${shape}] × ${dtype} is ${want} bytes but data_offsets [${begin}, ${end}] hold ${
          end - begin
        }`,
      );
    }
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDType,
      shape: [...shape],
      begin: dataStart + begin,
      end: dataStart + end,
    });
  }
  // The data section must be covered exactly once: no overlap, no gap, nothing left over.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = dataStart;
  let prev = "the start of the data section";
  for (const t of sorted) {
    if (t.begin < pos) {
      throw new Error(
        `${source}: tensor "${t.name}" overlaps ${prev} (data_offsets ${t.begin - dataStart} < ${
          pos - dataStart
        })`,
      );
    }
    if (t.begin > pos) {
      throw new Error(
        `${source}: gap of ${t.begin - pos} bytes before tensor "${t.name}" (after ${prev})`,
      );
    }
    pos = t.end;
    prev = `tensor "${t.name}"`;
  }
  if (pos !== fileSize) {
    throw new Error(
      `${source}: ${fileSize - pos} bytes after the last tensor are not described by the header`,
    );
  }
  return { metadata, tensors };
}

/**
 * Throws an error naming `source`, the tensor and the first offending index when `data` holds a
 * NaN or an infinity (a checkpoint with such weights is corrupt, and would poison every output).
 *
 * @example
 * ```ts
 * import { assertFinite } from "./safetensors.ts";
 * assertFinite(new Float32Array([1, 2]), "m.safetensors", "w"); // passes
 * ```
 */
export function assertFinite(
  data: Float32Array,
  source: string,
  name: string,
  indexOffset = 0,
): void {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    // x - x is NaN for NaN and ±Infinity, 0 for every finite value: one compare per element.
    if (x - x !== 0) {
      throw new RangeError(
        `${source}: tensor "${name}" holds ${x} at flat index ${indexOffset + i}; ` +
          `the checkpoint is corrupt (non-finite weights)`,
      );
    }
  }
}

/** Converts raw little-endian bytes of `dtype` to f32. */
function toF32(raw: Uint8Array, dtype: SafetensorsDType): Float32Array {
  const buf = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength
    ? raw.buffer as ArrayBuffer
    : raw.slice().buffer as ArrayBuffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F16":
      return Float32Array.from(new Float16Array(buf));
    case "BF16": {
      const bits = new Uint16Array(buf);
      const out = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
      return new Float32Array(out.buffer);
    }
    case "I32":
      return Float32Array.from(new Int32Array(buf));
    case "I64":
      return Float32Array.from(new BigInt64Array(buf), (v) => Number(v));
    case "U8":
      return Float32Array.from(raw);
  }
}

/**
 * One open safetensors file. Reads are serialised on the file handle, so concurrent calls are
 * safe.
 *
 * @example
 * ```ts
 * import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";
 * const path = `${await Deno.makeTempDir()}/m.safetensors`;
 * await writeSafetensors(path, [{ name: "w", data: new Float32Array([1, 2]), shape: [2] }]);
 * const f = await SafetensorsFile.open(path);
 * console.log(await f.readF32("w")); // Float32Array [1, 2]
 * f.close();
 * ```
 */
export class SafetensorsFile {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    readonly size: number,
    readonly metadata: Record<string, string>,
    readonly tensors: Map<string, TensorInfo>,
  ) {}

  /** Opens `path` and validates its header (the tensor data is not read). */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true }).catch((e) => {
      throw new Error(`${path}: cannot open safetensors file: ${e.message}`);
    });
    try {
      const size = (await file.stat()).size;
      if (size < 8) {
        throw new Error(`${path}: file is ${size} bytes, shorter than the 8-byte header length`);
      }
      const lenBytes = await readExactly(file, 0, 8, path);
      const headerLength = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw new Error(
          `${path}: header length ${headerLength} is absurd (limit ${MAX_HEADER_BYTES} bytes)`,
        );
      }
      if (Number(headerLength) + 8 > size) {
        throw new Error(
          `${path}: header length ${headerLength} runs past the end of the ${size}-byte file`,
        );
      }
      const header = await readExactly(file, 8, Number(headerLength), path);
      const { metadata, tensors } = parseSafetensorsHeader(header, size, path);
      return new SafetensorsFile(path, file, size, metadata, tensors);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The entry for `name`; throws naming the file when there is none. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** The raw little-endian bytes of one tensor. */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return await this.read(t.begin, t.end - t.begin);
  }

  /** One tensor as f32 (F16/BF16 widened exactly, integers converted). */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.info(name);
    return toF32(await this.read(t.begin, t.end - t.begin), t.dtype);
  }

  /**
   * Rows `[rowStart, rowStart + rowCount)` of a tensor along its first dimension as f32; a row is
   * the product of the remaining dimensions. For uploading big tables in chunks.
   */
  async readF32Rows(name: string, rowStart: number, rowCount: number): Promise<Float32Array> {
    const t = this.info(name);
    const { begin, bytes } = rowRange(t, rowStart, rowCount, this.path);
    return toF32(await this.read(begin, bytes), t.dtype);
  }

  /** An integer tensor (I32, I64 within int32 range, U8) as Int32Array. */
  async readI32(name: string): Promise<Int32Array> {
    const t = this.info(name);
    const raw = await this.read(t.begin, t.end - t.begin);
    switch (t.dtype) {
      case "I32":
        return new Int32Array(raw.buffer as ArrayBuffer);
      case "U8":
        return Int32Array.from(raw);
      case "I64": {
        const big = new BigInt64Array(raw.buffer as ArrayBuffer);
        const out = new Int32Array(big.length);
        for (let i = 0; i < big.length; i++) {
          if (big[i] < -2147483648n || big[i] > 2147483647n) {
            throw new RangeError(
              `${this.path}: tensor "${name}" [${i}] = ${big[i]} is outside int32`,
            );
          }
          out[i] = Number(big[i]);
        }
        return out;
      }
      default:
        throw new TypeError(`${this.path}: tensor "${name}" is ${t.dtype}, not an integer type`);
    }
  }

  /** Closes the file handle; later reads fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }

  private read(offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new Error(`${this.path}: file is closed`));
    const run = this.queue.then(() => readExactly(this.file, offset, length, this.path));
    this.queue = run.catch(() => {});
    return run;
  }
}

/** Byte range of rows `[rowStart, rowStart + rowCount)` of `t`, validated. */
function rowRange(
  t: TensorInfo,
  rowStart: number,
  rowCount: number,
  source: string,
): { begin: number; bytes: number } {
  if (t.shape.length === 0) {
    throw new RangeError(`${source}: tensor "${t.name}" is a scalar and has no rows`);
  }
  const rows = t.shape[0];
  if (
    !Number.isSafeInteger(rowStart) || !Number.isSafeInteger(rowCount) || rowStart < 0 ||
    rowCount < 0 || rowStart + rowCount > rows
  ) {
    throw new RangeError(
      `${source}: tensor "${t.name}" rows [${rowStart}, ${
        rowStart + rowCount
      }) outside [0, ${rows})`,
    );
  }
  const rowBytes = numel(t.shape.slice(1)) * DTYPE_BYTES[t.dtype];
  return { begin: t.begin + rowStart * rowBytes, bytes: rowCount * rowBytes };
}

/** Reads exactly `length` bytes at `offset` into a fresh buffer. */
async function readExactly(
  file: Deno.FsFile,
  offset: number,
  length: number,
  source: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(out.subarray(done));
    if (n === null || n === 0) {
      throw new Error(`${source}: unexpected end of file at byte ${offset + done}`);
    }
    done += n;
  }
  return out;
}

/**
 * A checkpoint directory: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"weight_map": {name: file}}`). A path to a single
 * `.safetensors` file is accepted too.
 *
 * @example
 * ```ts
 * import { Checkpoint, writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/model.safetensors`, [
 *   { name: "b", data: new Float32Array([0.5]), shape: [1] },
 * ]);
 * const ckpt = await Checkpoint.open(dir);
 * console.log(ckpt.names(), await ckpt.readF32("b"));
 * ckpt.close();
 * ```
 */
export class Checkpoint {
  private constructor(
    readonly source: string,
    readonly files: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
    readonly metadata: Record<string, string>,
  ) {}

  /** Opens a checkpoint directory (or one `.safetensors` file) and validates every header. */
  static async open(path: string): Promise<Checkpoint> {
    const stat = await Deno.stat(path).catch((e) => {
      throw new Error(`${path}: cannot open checkpoint: ${e.message}`);
    });
    if (stat.isFile) {
      const f = await SafetensorsFile.open(path);
      return new Checkpoint(path, [f], new Map([...f.tensors.keys()].map((n) => [n, f])), {
        ...f.metadata,
      });
    }
    const single = `${path}/model.safetensors`;
    const indexPath = `${path}/model.safetensors.index.json`;
    if (await exists(indexPath)) return await Checkpoint.openSharded(path, indexPath);
    if (await exists(single)) return await Checkpoint.open(single).then((c) => c.renamed(path));
    throw new Error(`${path}: no model.safetensors or model.safetensors.index.json`);
  }

  private renamed(source: string): Checkpoint {
    return new Checkpoint(source, this.files, this.where, this.metadata);
  }

  private static async openSharded(dir: string, indexPath: string): Promise<Checkpoint> {
    let index: unknown;
    try {
      index = JSON.parse(await Deno.readTextFile(indexPath));
    } catch (e) {
      throw new Error(`${indexPath}: not valid JSON: ${(e as Error).message}`);
    }
    const map = (index as { weight_map?: unknown })?.weight_map;
    if (map === null || typeof map !== "object" || Array.isArray(map)) {
      throw new Error(`${indexPath}: weight_map must be an object {tensor name: file name}`);
    }
    const metadata: Record<string, string> = {};
    const meta = (index as { metadata?: unknown }).metadata;
    if (meta && typeof meta === "object") {
      for (const [k, v] of Object.entries(meta)) metadata[k] = String(v);
    }
    const opened = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
        if (
          typeof file !== "string" || file === "" || file.startsWith("/") ||
          file.split("/").includes("..")
        ) {
          throw new Error(`${indexPath}: weight_map["${name}"] must be a file name inside ${dir}`);
        }
        let f = opened.get(file);
        if (!f) {
          f = await SafetensorsFile.open(`${dir}/${file}`);
          opened.set(file, f);
        }
        if (!f.tensors.has(name)) {
          throw new Error(`${indexPath}: weight_map says "${name}" is in ${file}, but it is not`);
        }
        where.set(name, f);
      }
    } catch (e) {
      for (const f of opened.values()) f.close();
      throw e;
    }
    return new Checkpoint(dir, [...opened.values()], where, metadata);
  }

  /** Tensor names in file (or index) order. */
  names(): string[] {
    return [...this.where.keys()];
  }

  /** Whether the checkpoint holds `name`. */
  has(name: string): boolean {
    return this.where.has(name);
  }

  /** The entry for `name` (offsets are within its own shard). */
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  /** One tensor as f32. */
  async readF32(name: string): Promise<Float32Array> {
    return await this.file(name).readF32(name);
  }

  /** Rows of a tensor along its first dimension as f32 (see {@link SafetensorsFile.readF32Rows}). */
  async readF32Rows(name: string, rowStart: number, rowCount: number): Promise<Float32Array> {
    return await this.file(name).readF32Rows(name, rowStart, rowCount);
  }

  /** An integer tensor as Int32Array. */
  async readI32(name: string): Promise<Int32Array> {
    return await this.file(name).readI32(name);
  }

  /** The raw bytes of a tensor. */
  async readRaw(name: string): Promise<Uint8Array> {
    return await this.file(name).readRaw(name);
  }

  /** Closes every shard. */
  close(): void {
    for (const f of this.files) f.close();
  }

  private file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.source}: checkpoint has no tensor named "${name}"`);
    return f;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** A tensor to write: f32 (stored as F32, F16 or BF16), raw 16-bit float bits, or int32. */
export interface TensorToWrite {
  name: string;
  data: Float32Array | Int32Array | Uint16Array;
  shape: number[];
  dtype?: "F32" | "F16" | "BF16" | "I32";
}

/** Rounds f32 values to bf16 bits, nearest-even, keeping NaN a NaN. */
function f32ToBf16Bits(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Little-endian bytes of a chunk of `t` in its stored dtype. */
function encodeChunk(
  data: Float32Array | Int32Array | Uint16Array,
  dtype: "F32" | "F16" | "BF16" | "I32",
): Uint8Array {
  if (data instanceof Float32Array && dtype === "F16") {
    return new Uint8Array(Float16Array.from(data).buffer);
  }
  if (data instanceof Float32Array && dtype === "BF16") {
    return new Uint8Array(f32ToBf16Bits(data).buffer);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Writes a safetensors file atomically (temporary file, fsync, rename). The header is padded with
 * spaces to a multiple of 8 bytes and the tensors follow in the order given, with no gaps — the
 * layout PyTorch's safetensors reads and writes. A `Float32Array` may be stored as F32 (default),
 * F16 or BF16; a `Uint16Array` holds raw F16/BF16 bits (dtype required); an `Int32Array` is I32.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors.ts";
 * const path = `${await Deno.makeTempDir()}/m.safetensors`;
 * await writeSafetensors(path, [
 *   { name: "w", data: new Float32Array([1, 2, 3, 4]), shape: [2, 2], dtype: "BF16" },
 *   { name: "ids", data: new Int32Array([7]), shape: [1] },
 * ], { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`writeSafetensors ${path}: metadata "${k}" must be a string`);
      }
    }
    header.__metadata__ = metadata;
  }
  const plan: { data: TensorToWrite["data"]; dtype: "F32" | "F16" | "BF16" | "I32" }[] = [];
  let offset = 0;
  for (const t of tensors) {
    const where = `writeSafetensors ${path}: tensor "${t.name}"`;
    if (typeof t.name !== "string" || t.name === "" || t.name === "__metadata__") {
      throw new TypeError(
        `writeSafetensors ${path}: invalid tensor name ${JSON.stringify(t.name)}`,
      );
    }
    if (Object.hasOwn(header, t.name)) throw new TypeError(`${where}: duplicate name`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(
        `${where}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`,
      );
    }
    if (numel(t.shape) !== t.data.length) {
      throw new RangeError(
        `${where}: shape [${t.shape}] has ${numel(t.shape)} elements, data has ${t.data.length}`,
      );
    }
    const dtype = t.dtype ?? (t.data instanceof Int32Array ? "I32" : "F32");
    const ok = t.data instanceof Float32Array
      ? dtype !== "I32"
      : t.data instanceof Uint16Array
      ? dtype === "F16" || dtype === "BF16"
      : t.data instanceof Int32Array && dtype === "I32";
    if (!ok) {
      throw new TypeError(
        `${where}: cannot store ${t.data.constructor.name} as ${dtype}${
          t.data instanceof Uint16Array ? " (Uint16Array holds F16 or BF16 bits: give dtype)" : ""
        }`,
      );
    }
    const bytes = t.data.length * DTYPE_BYTES[dtype];
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
    plan.push({ data: t.data, dtype });
  }
  let json = JSON.stringify(header);
  let headerBytes = new TextEncoder().encode(json);
  const pad = (8 - (headerBytes.length % 8)) % 8;
  if (pad > 0) {
    json += " ".repeat(pad);
    headerBytes = new TextEncoder().encode(json);
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  const CHUNK = 1 << 22; // elements per conversion chunk: bounds the extra memory of F16/BF16
  await writeFileAtomic(path, async (file) => {
    await writeAll(file, prefix);
    await writeAll(file, headerBytes);
    for (const { data, dtype } of plan) {
      for (let i = 0; i < data.length; i += CHUNK) {
        await writeAll(file, encodeChunk(data.subarray(i, i + CHUNK), dtype));
      }
    }
  });
}
