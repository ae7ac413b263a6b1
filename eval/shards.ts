/**
 * Corpora larger than one machine: deterministic shards of an embedding job and resumable parts.
 *
 * - {@linkcode parseShard} / {@linkcode shardRange}: `--shard I/N` selects the I-th of N contiguous,
 *   nearly equal parts of a list (any job scheduler's array index can drive it).
 * - {@linkcode embedInParts}: a long embedding job writes its rows in parts of a fixed number of
 *   lines next to the output (atomic files plus a manifest of the job), so a restart continues
 *   where it stopped and a graceful stop keeps every finished part.
 * - {@linkcode ShardRecorder} / {@linkcode ShardReader}: an evaluation's embedding calls (questions
 *   and candidates, with prefixes and pairs) embedded by N processes, then ranked from the shards.
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { exists, writeJsonAtomic } from "../model/atomic_write.ts";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import type { EmbedFn } from "./retrieval.ts";
import { ensureFreeSpace } from "../util/disk.ts";

/** One part of N: `index` in [0, count). */
export interface Shard {
  index: number;
  count: number;
}

/**
 * Parses `I/N` (0 ≤ I < N). Throws a `RangeError` naming the flag otherwise.
 *
 * @example
 * ```ts
 * import { parseShard } from "./shards.ts";
 * console.log(parseShard("1/4")); // { index: 1, count: 4 }
 * ```
 */
export function parseShard(spec: string, flag = "--shard"): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1) || !(index < count)) {
    throw new RangeError(`${flag}: expected I/N with 0 ≤ I < N (e.g. 0/4), got "${spec}"`);
  }
  return { index, count };
}

/**
 * The half-open range [start, end) of `n` items that shard `index` of `count` holds: contiguous,
 * in order, sizes differing by at most one, together covering every item exactly once.
 *
 * @example
 * ```ts
 * import { shardRange } from "./shards.ts";
 * console.log(shardRange(10, 2, 3)); // [6, 10]
 * ```
 */
export function shardRange(n: number, index: number, count: number): [number, number] {
  return [Math.floor(index * n / count), Math.floor((index + 1) * n / count)];
}

/** SHA-256 (hex) of a JSON-able value: ties parts and shards to the exact inputs they embed. */
export function digest(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

/** Options of {@linkcode embedInParts}. */
export interface PartsOptions {
  /** Where the parts live (created; removed by the caller after the output is written). */
  dir: string;
  /** Lines per part. */
  partLines: number;
  /** Embedding width. */
  dim: number;
  /** Identifies the job (inputs digest, model, options): parts of another job are discarded. */
  job: Record<string, unknown>;
  /** Checked after each part: when aborted, the function returns null (parts kept). */
  signal?: AbortSignal;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * Embeds `count` rows in parts of `partLines`, each written atomically to `dir` as soon as it is
 * done; parts already there from an interrupted run of the same job are read instead of
 * recomputed. Returns all rows, or null when `signal` stopped it (the finished parts stay).
 */
export async function embedInParts(
  count: number,
  embedRange: (start: number, end: number) => Promise<Float32Array>,
  opts: PartsOptions,
): Promise<Float32Array | null> {
  const { dir, partLines, dim } = opts;
  const manifestPath = join(dir, "job.json");
  const job = { ...opts.job, lines: count, part_lines: partLines, dim };
  let reuse = false;
  if (await exists(manifestPath)) {
    try {
      reuse = JSON.stringify(JSON.parse(await Deno.readTextFile(manifestPath))) ===
        JSON.stringify(job);
    } catch { /* unreadable: start over */ }
    if (!reuse) {
      opts.log?.(`${dir}: parts of another job (inputs or options changed): starting over`);
      await Deno.remove(dir, { recursive: true });
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  if (!reuse) await writeJsonAtomic(manifestPath, job);
  const parts = Math.ceil(count / partLines);
  const out = new Float32Array(count * dim);
  let reused = 0;
  for (let p = 0; p < parts; p++) {
    const start = p * partLines, end = Math.min(count, start + partLines);
    const path = join(dir, `part-${String(p).padStart(6, "0")}.safetensors`);
    let rows: Float32Array | null = null;
    if (reuse && await exists(path)) {
      const f = await SafetensorsFile.open(path);
      try {
        rows = await f.readF32("embeddings");
      } finally {
        f.close();
      }
      if (rows.length !== (end - start) * dim) {
        throw new Error(`${path}: ${rows.length / dim} rows, expected ${end - start}`);
      }
      reused++;
    } else {
      rows = await embedRange(start, end);
      ensureFreeSpace(
        dir,
        rows.byteLength + 65536,
        `part ${p + 1}/${parts}`,
        ". The finished parts are kept: free some space and run the same command again",
      );
      await writeSafetensors(path, [{ name: "embeddings", shape: [end - start, dim], data: rows }]);
      opts.log?.(`part ${p + 1}/${parts}: lines ${start}..${end - 1} → ${path}`);
    }
    out.set(rows, start * dim);
    if (opts.signal?.aborted && p < parts - 1) return null;
  }
  if (reused) opts.log?.(`${reused} of ${parts} parts were already done (resumed)`);
  return out;
}

/** The options that must agree between the shards of one evaluation and the ranking run. */
export type ShardOptions = Record<string, unknown>;

const shardDir = (dir: string, s: Shard) => join(dir, `shard-${s.index}-of-${s.count}`);
const callFile = (k: number) => `call-${String(k).padStart(4, "0")}.safetensors`;

/**
 * Wraps an embedding function so that each call embeds only this shard's rows of its items and
 * writes them to `dir/shard-I-of-N/`. The wrapped function returns full-size arrays whose other
 * rows are a placeholder unit vector: the ranking that follows is meaningless and discarded;
 * {@linkcode ShardRecorder.finish} marks the shard complete.
 */
export class ShardRecorder {
  private calls = 0;
  private readonly dir: string;

  constructor(
    private readonly inner: EmbedFn,
    root: string,
    private readonly shard: Shard,
    private readonly dim: number,
    private readonly options: ShardOptions,
  ) {
    this.dir = shardDir(root, shard);
  }

  /** The embedding function to hand to the evaluation. */
  readonly embed: EmbedFn = async (items, role) => {
    if (this.calls === 0) {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
      await Deno.mkdir(this.dir, { recursive: true });
    }
    const k = this.calls++;
    const [start, end] = shardRange(items.length, this.shard.index, this.shard.count);
    const rows = end > start
      ? await this.inner(items.slice(start, end), role)
      : new Float32Array(0);
    await writeSafetensors(join(this.dir, callFile(k)), [{
      name: "embeddings",
      shape: [end - start, this.dim],
      data: rows,
    }], {
      items: String(items.length),
      start: String(start),
      end: String(end),
      role: role ?? "",
      digest: digest(items.map((x) => [x.text, x.pair ?? null])),
    });
    const full = new Float32Array(items.length * this.dim);
    for (let i = 0; i < items.length; i++) full[i * this.dim] = 1;
    return full;
  };

  /** Marks the shard complete (the number of calls and the options it was made with). */
  async finish(): Promise<string> {
    await writeJsonAtomic(join(this.dir, "done.json"), {
      shard: `${this.shard.index}/${this.shard.count}`,
      calls: this.calls,
      dim: this.dim,
      options: this.options,
    });
    return this.dir;
  }
}

/**
 * Reads the shards written by N {@linkcode ShardRecorder}s: its {@linkcode ShardReader.embed}
 * returns, for each call in order, the rows of all shards joined, after checking that every shard
 * is complete, made with the same options and for the same items.
 */
export class ShardReader {
  private calls = 0;

  private constructor(
    private readonly root: string,
    private readonly dirs: string[],
    readonly dim: number,
  ) {}

  /** Opens `root`, checking that it holds N complete shards made with `options`. */
  static async open(root: string, options: ShardOptions): Promise<ShardReader> {
    const found: { shard: Shard; dir: string }[] = [];
    try {
      for await (const e of Deno.readDir(root)) {
        const m = e.isDirectory ? /^shard-(\d+)-of-(\d+)$/.exec(e.name) : null;
        if (m) found.push({ shard: { index: +m[1], count: +m[2] }, dir: join(root, e.name) });
      }
    } catch (e) {
      throw new Error(`--embeddings ${root}: ${(e as Error).message}`);
    }
    if (found.length === 0) throw new Error(`--embeddings ${root}: no shard-I-of-N folders`);
    const n = found[0].shard.count;
    if (found.some((f) => f.shard.count !== n)) {
      throw new Error(`--embeddings ${root}: shards of different N (${found.map((f) => f.dir)})`);
    }
    const dirs: string[] = [];
    let calls = -1, dim = -1;
    for (let i = 0; i < n; i++) {
      const dir = shardDir(root, { index: i, count: n });
      let done: { calls: number; dim: number; options: ShardOptions };
      try {
        done = JSON.parse(await Deno.readTextFile(join(dir, "done.json")));
      } catch {
        throw new Error(
          `--embeddings ${root}: shard ${i}/${n} is missing or unfinished (no ${dir}/done.json); ` +
            `run eval --shard ${i}/${n} --save-embeddings ${root}`,
        );
      }
      for (const [k, v] of Object.entries(options)) {
        if (JSON.stringify(done.options?.[k]) !== JSON.stringify(v)) {
          throw new Error(
            `--embeddings ${root}: shard ${i}/${n} was made with ${k} ${
              JSON.stringify(done.options?.[k])
            }, this run has ${JSON.stringify(v)}`,
          );
        }
      }
      if (calls >= 0 && (done.calls !== calls || done.dim !== dim)) {
        throw new Error(`--embeddings ${root}: shard ${i}/${n} differs from shard 0/${n}`);
      }
      calls = done.calls;
      dim = done.dim;
      dirs.push(dir);
    }
    return new ShardReader(root, dirs, dim);
  }

  /** The embedding function to hand to the evaluation. */
  readonly embed: EmbedFn = async (items) => {
    const k = this.calls++;
    const want = digest(items.map((x) => [x.text, x.pair ?? null]));
    const out = new Float32Array(items.length * this.dim);
    const n = this.dirs.length;
    for (let i = 0; i < n; i++) {
      const path = join(this.dirs[i], callFile(k));
      let f: SafetensorsFile;
      try {
        f = await SafetensorsFile.open(path);
      } catch (e) {
        throw new Error(`--embeddings ${this.root}: ${(e as Error).message}`);
      }
      try {
        const m = f.metadata;
        const [start, end] = shardRange(items.length, i, n);
        if (m.digest !== want || Number(m.start) !== start || Number(m.end) !== end) {
          throw new Error(
            `--embeddings ${this.root}: ${path} holds other items than this evaluation's ` +
              `call ${k} (dataset, languages, --limit-questions or --candidate differ)`,
          );
        }
        out.set(await f.readF32("embeddings"), start * this.dim);
      } finally {
        f.close();
      }
    }
    return out;
  };
}
