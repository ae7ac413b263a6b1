/**
 * Tiles tuned per adapter: the cache file `cli.ts bench tune` writes and {@linkcode Gpu.create}
 * reads when asked to (`Gpu.create({ tune: true })` or `XLMR_WEBGPU_TUNE=on`).
 *
 * The file lives at `$XDG_CACHE_HOME/xlmr-webgpu/tune-<key>.json` (default `~/.cache`), where the
 * key names the adapter (vendor, architecture, device, description: the driver as WebGPU reports
 * it) and the engine version, so another GPU, driver or engine release never reads it. It maps a
 * product's shape and form (`batch×M×N×K`, transposes, operand types) to the tiles and K split
 * that won; shapes not in it keep the hand-written table of kernels/matmul.ts.
 *
 * Opt-in, not automatic: the tiles alone (WX, WY, BK, TM4, TN4) leave every output's summation
 * order unchanged (each thread adds 4-term dot products in K order whatever the tile), but the K
 * split does not (split-K sums per-range partial products), so a tuned plan may change results in
 * their last bits. Runs that must reproduce bit for bit elsewhere (resume on another machine,
 * kernel hashes, the test suite) therefore never depend on a file left on one machine: the cache
 * is read only when asked for, and never by a `poison` Gpu (every test's).
 * @module
 */
import type { MatmulTiles } from "./options.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The engine version the cache key carries (deno.json's `version`). */
export const ENGINE_VERSION: string = denoJson.version;

/** One product's tuned plan. */
export interface TunedPlan {
  tiles: MatmulTiles;
  /** K ranges (1: no split-K). */
  splits: number;
}

/** The cache file's contents. */
export interface TuneCache {
  /** Format version of the file. */
  format: 1;
  /** The adapter and engine the file was tuned for (the key's source text). */
  adapter: string;
  engine: string;
  created: string;
  /** Tuned products by {@linkcode matmulShapeKey}. */
  matmul: Record<string, TunedPlan>;
  /** Tuned fused-attention work splits by {@linkcode attentionShapeKey} (forward kernel). */
  attention?: Record<string, TunedAttention>;
}

/** A fused-attention work split: query rows per invocation and workgroup size (powers of two). */
export interface TunedAttention {
  rows: number;
  wg: number;
}

/** The key of one attention call in {@linkcode TuneCache.attention}: `batch×seq×heads×headDim`. */
export function attentionShapeKey(
  d: { batch: number; seq: number; heads: number; headDim: number },
): string {
  return `${d.batch}x${d.seq}x${d.heads}x${d.headDim}`;
}

/** A product's form: what a tuned plan is keyed by besides its shape. */
export interface MatmulForm {
  transA: boolean;
  transB: boolean;
  /** Operand storage types, e.g. "f32" / "f16". */
  aType: string;
  bType: string;
}

/**
 * The key of one product in {@linkcode TuneCache.matmul}.
 *
 * @example
 * ```ts
 * import { matmulShapeKey } from "./tune.ts";
 * const form = { transA: false, transB: true, aType: "f32", bType: "f32" };
 * console.log(matmulShapeKey(256, 64, 64, 1, form)); // "1x256x64x64:NT:f32.f32"
 * ```
 */
export function matmulShapeKey(
  m: number,
  n: number,
  k: number,
  batch: number,
  f: MatmulForm,
): string {
  return `${batch}x${m}x${n}x${k}:${f.transA ? "T" : "N"}${
    f.transB ? "T" : "N"
  }:${f.aType}.${f.bType}`;
}

/** What names an adapter in the cache key (`GPUAdapterInfo`'s fields). */
export interface AdapterIdentity {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}

/** The source text of the cache key: adapter fields and engine version. */
export function adapterKeyText(info: AdapterIdentity, engine = ENGINE_VERSION): string {
  return [info.vendor, info.architecture, info.device, info.description]
    .map((s) => s ?? "").join("|") + `|engine ${engine}`;
}

/** FNV-1a 32-bit hash, hex. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * The cache file's name: a readable slug of the adapter plus a hash of the whole key text.
 *
 * @example
 * ```ts
 * import { tuneFileName } from "./tune.ts";
 * console.log(tuneFileName({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }, "0.1.0"));
 * ```
 */
export function tuneFileName(info: AdapterIdentity, engine = ENGINE_VERSION): string {
  const text = adapterKeyText(info, engine);
  const slug = (info.description || info.device || info.vendor || "adapter")
    .toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
  return `tune-${slug}-${engine.replace(/[^0-9a-z.]+/gi, "_")}-${fnv1a(text)}.json`;
}

/** `$XDG_CACHE_HOME/xlmr-webgpu` (default `~/.cache/xlmr-webgpu`); null without a home. */
export function tuneDir(): string | null {
  try {
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
    const base = xdg || (home ? `${home}/.cache` : null);
    return base ? `${base}/xlmr-webgpu` : null;
  } catch {
    return null; // no env permission
  }
}

/** The cache file path for an adapter (null when there is no cache folder). */
export function tunePath(info: AdapterIdentity, engine = ENGINE_VERSION): string | null {
  const dir = tuneDir();
  return dir ? `${dir}/${tuneFileName(info, engine)}` : null;
}

function validTiles(t: unknown): t is MatmulTiles {
  if (!t || typeof t !== "object") return false;
  const r = t as Record<string, unknown>;
  const int = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1;
  return ["WX", "WY", "BK", "TM4", "TN4"].every((f) => int(r[f])) &&
    (r.BK as number) % 4 === 0 && (r.WX as number) * (r.WY as number) <= 256 &&
    [1, 2, 4].includes(r.TM4 as number) && [1, 2, 4].includes(r.TN4 as number);
}

/** Throws an Error saying what is wrong when `v` is not a well-formed {@linkcode TuneCache}. */
export function checkTuneCache(v: unknown): TuneCache {
  if (!v || typeof v !== "object") throw new Error("not a JSON object");
  const c = v as Record<string, unknown>;
  if (c.format !== 1) throw new Error(`unknown format ${JSON.stringify(c.format)}`);
  if (!c.matmul || typeof c.matmul !== "object") throw new Error("no matmul table");
  for (const [k, p] of Object.entries(c.matmul as Record<string, unknown>)) {
    const plan = p as Record<string, unknown> | null;
    const s = plan?.splits;
    if (
      !plan || !validTiles(plan.tiles) ||
      !(typeof s === "number" && Number.isInteger(s) && s >= 1 && s <= 256)
    ) throw new Error(`bad plan for ${k}: ${JSON.stringify(p)}`);
  }
  if (c.attention !== undefined) {
    if (!c.attention || typeof c.attention !== "object") throw new Error("bad attention table");
    const pow2 = (v: unknown, max: number) =>
      typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= max && (v & (v - 1)) === 0;
    for (const [k, p] of Object.entries(c.attention as Record<string, unknown>)) {
      const a = p as Record<string, unknown> | null;
      if (!a || !pow2(a.rows, 64) || !pow2(a.wg, 256)) {
        throw new Error(`bad attention plan for ${k}: ${JSON.stringify(p)}`);
      }
    }
  }
  return v as TuneCache;
}

/**
 * Reads a cache file: null when it does not exist; a corrupt or malformed file is ignored with a
 * warning naming it (`warn`, default console.warn) and null.
 */
export function loadTuneCache(
  path: string,
  warn: (msg: string) => void = console.warn,
): TuneCache | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      warn(`tune cache ${path}: unreadable, ignored (${(e as Error).message})`);
    }
    return null;
  }
  try {
    return checkTuneCache(JSON.parse(text));
  } catch (e) {
    warn(
      `tune cache ${path}: corrupt, ignored; the hand-written tile table is used ` +
        `(${(e as Error).message}). Rerun \`cli.ts bench tune\` or delete the file.`,
    );
    return null;
  }
}

/** Writes a cache file atomically (a temporary file in the same folder, then a rename). */
export function saveTuneCache(path: string, cache: TuneCache): void {
  const dir = path.slice(0, Math.max(0, path.lastIndexOf("/"))) || ".";
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${Deno.pid}.${Date.now()}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(cache, null, 2) + "\n");
  Deno.renameSync(tmp, path);
}

/**
 * Which cache a new Gpu reads: `option` (GpuOptions.tune) true → the adapter's file, a string →
 * that file, false → none; undefined → `XLMR_WEBGPU_TUNE` (`on`/`1` → the adapter's file, another
 * non-empty value other than `off`/`0` → that path). A poisoned (test) Gpu never reads one.
 */
export function tuneSource(
  option: boolean | string | undefined,
  poison: boolean,
  info: AdapterIdentity,
): string | null {
  if (poison || option === false) return null;
  if (typeof option === "string") return option;
  if (option === true) return tunePath(info);
  let env: string | undefined;
  try {
    env = Deno.env.get("XLMR_WEBGPU_TUNE");
  } catch {
    return null;
  }
  if (!env || /^(off|0|false|no)$/i.test(env)) return null;
  return /^(on|1|true|yes)$/i.test(env) ? tunePath(info) : env;
}
