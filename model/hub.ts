/**
 * Hugging Face Hub model ids (`ORG/NAME[@REVISION]`) resolved to local snapshot folders in the
 * standard Hugging Face cache, so Python tools and this engine share one cache.
 *
 * The protocol goes through the field's own client, `@huggingface/hub` (`modelInfo` for the commit
 * and file list, `pathsInfo` for sizes and LFS sha256, `fileDownloadInfo` for the resolved URL and
 * ETag, the cache path helpers). Around it, this module adds what that client leaves to its caller:
 * `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE=1`, downloads resumed with `Range` from
 * `blobs/<etag>.incomplete`, sha256 (LFS) / git blob sha1 (other files) verification before a blob
 * is published, progress, only the files this engine reads (never `pytorch_model.bin`), and errors
 * that name the repo and the file.
 *
 * Cache layout (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`):
 * `models--ORG--NAME/{blobs/<etag>, refs/<revision>, snapshots/<commit>/<path> → ../../blobs/<etag>}`.
 * @module
 */
import { dirname, join, relative } from "node:path";
import { createHash } from "node:crypto";
import {
  fileDownloadInfo,
  getHFHubCachePath,
  getRepoFolderName,
  HubApiError,
  modelInfo,
  pathsInfo,
} from "@huggingface/hub";

/** Where a model came from: a local folder, or a Hub repo at a revision (resolved to a commit). */
export interface ModelSource {
  /** The folder the loaders read (for a Hub id: its snapshot folder in the cache). */
  dir: string;
  /** What the user gave (`path` or `ORG/NAME[@REV]`). */
  spec: string;
  kind: "local" | "hub";
  /** Hub only. */
  repo?: string;
  revision?: string;
  commit?: string;
  endpoint?: string;
  /** Hub only: the snapshot came from the cache without asking the Hub (offline or unreachable). */
  fromCache?: boolean;
}

/** Options of {@linkcode resolveModel}; every field defaults from the environment. */
export interface HubOptions {
  /** `HF_ENDPOINT`, default `https://huggingface.co`. */
  endpoint?: string;
  /** `HF_TOKEN` (also `HUGGING_FACE_HUB_TOKEN`). */
  token?: string;
  /** `HF_HUB_OFFLINE=1`: cache only. */
  offline?: boolean;
  /** `$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`. */
  cacheDir?: string;
  /** Which files: a whole model (default) or only the tokenizer files. */
  files?: "model" | "tokenizer";
  /** No progress output. */
  quiet?: boolean;
  /** Progress of one file: bytes done of total, and bytes per second. */
  onProgress?: (p: DownloadProgress) => void;
  /** fetch to use (tests, proxies). */
  fetch?: typeof fetch;
}

/** Progress of one download. */
export interface DownloadProgress {
  repo: string;
  file: string;
  done: number;
  total: number;
  bytesPerSecond: number;
  finished: boolean;
}

/** An error naming the repo (and file) that could not be resolved. */
export class HubError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = "HubError";
  }
}

const DEFAULT_ENDPOINT = "https://huggingface.co";
const COMMIT = /^[0-9a-f]{40}$/;
const TOKENIZER_FILES = [
  "tokenizer.json",
  "sentencepiece.bpe.model",
  "vocab.txt", // WordPiece repos that ship no tokenizer.json (older BERTs)
  "tokenizer_config.json",
  "special_tokens_map.json",
];
/** Small files of a sentence-transformers folder (pooling and prompts), when the repo has them. */
const ST_FILES = [
  "modules.json",
  "config_sentence_transformers.json",
  "sentence_bert_config.json",
  "1_Pooling/config.json",
];

/**
 * Parses `ORG/NAME` or `ORG/NAME@REVISION`; null when `spec` cannot be a Hub id (a path starting
 * with `.`, `/` or `~`, more than one `/`, characters a repo name cannot hold).
 *
 * @example
 * ```ts
 * import { parseHubId } from "./hub.ts";
 * console.log(parseHubId("FacebookAI/xlm-roberta-base@main")); // { repo: "FacebookAI/xlm-roberta-base", revision: "main" }
 * console.log(parseHubId("./runs/x")); // null
 * ```
 */
export function parseHubId(spec: string): { repo: string; revision: string } | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([^\s@]+))?$/.exec(spec);
  if (!m || m[1].includes("..") || m[1].endsWith(".")) return null;
  return { repo: m[1], revision: m[2] ?? "main" };
}

/** Hub options from `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE` (and the cache variables). */
export function hubOptionsFromEnv(): HubOptions {
  const env = (k: string) => {
    try {
      return Deno.env.get(k);
    } catch {
      return undefined;
    }
  };
  const offline = (env("HF_HUB_OFFLINE") ?? "").trim().toLowerCase();
  return {
    endpoint: env("HF_ENDPOINT")?.replace(/\/+$/, "") || undefined,
    token: env("HF_TOKEN") || env("HUGGING_FACE_HUB_TOKEN") || undefined,
    offline: ["1", "true", "yes", "on"].includes(offline),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The folder to read a model from: `spec` itself when such a path exists (a local folder always
 * wins), else the snapshot folder of the Hub id `ORG/NAME[@REVISION]`, downloading what is missing
 * (config, safetensors or its index and shards, tokenizer files, sentence-transformers configs).
 * Options not given come from the environment ({@linkcode hubOptionsFromEnv}).
 */
export async function resolveModel(spec: string, opts: HubOptions = {}): Promise<ModelSource> {
  const id = parseHubId(spec);
  // A local folder always wins; what is not a Hub id stays a path for the loaders to report on.
  if (!id || await exists(spec)) return { dir: spec, spec, kind: "local" };
  const o = { ...hubOptionsFromEnv(), ...definedOnly(opts) };
  return await new HubResolver(id.repo, id.revision, o).resolve(spec);
}

/** {@linkcode resolveModel} that returns only the folder. */
export async function resolveModelDir(spec: string, opts: HubOptions = {}): Promise<string> {
  return (await resolveModel(spec, opts)).dir;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Formats bytes as B/KB/MB/GB (decimal, as the Hub shows sizes). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n, u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** A default progress printer: a \r-updated line on a terminal, sparse lines otherwise. */
export function progressPrinter(): (p: DownloadProgress) => void {
  const tty = (() => {
    try {
      return Deno.stderr.isTerminal();
    } catch {
      return false;
    }
  })();
  const enc = new TextEncoder();
  let lastFile = "", lastPrint = 0, lastQuarter = -1;
  return (p) => {
    const now = performance.now();
    if (p.file !== lastFile) {
      lastFile = p.file;
      lastQuarter = -1;
      lastPrint = 0;
    }
    const pct = p.total > 0 ? Math.floor(100 * p.done / p.total) : 100;
    const eta = p.bytesPerSecond > 0 ? (p.total - p.done) / p.bytesPerSecond : 0;
    const line = `${p.repo} ${p.file}: ${formatBytes(p.done)} / ${formatBytes(p.total)} ` +
      `(${pct}%) ${formatBytes(p.bytesPerSecond)}/s` +
      (p.finished ? "" : ` ETA ${eta.toFixed(0)} s`);
    if (tty) {
      if (!p.finished && now - lastPrint < 100) return;
      lastPrint = now;
      Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}${p.finished ? "\n" : ""}`));
    } else {
      const quarter = Math.floor(pct / 25);
      if (!p.finished && quarter === lastQuarter) return;
      lastQuarter = quarter;
      console.error(line);
    }
  };
}

interface FileMeta {
  path: string;
  size: number;
  /** sha256 (LFS) or git blob sha1: the blob's name in the cache. */
  etag: string;
  lfs: boolean;
}

class HubResolver {
  readonly endpoint: string;
  readonly cacheDir: string;
  readonly storage: string;
  /** X-Error-Code of the last response (the client's errors do not carry headers). */
  lastErrorCode: string | null = null;
  readonly fetch: typeof fetch;
  readonly progress: ((p: DownloadProgress) => void) | undefined;

  constructor(readonly repo: string, readonly revision: string, readonly o: HubOptions) {
    this.endpoint = o.endpoint ?? DEFAULT_ENDPOINT;
    this.cacheDir = o.cacheDir ?? getHFHubCachePath();
    this.storage = join(this.cacheDir, getRepoFolderName({ type: "model", name: repo }));
    const base = o.fetch ?? fetch;
    this.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const r = await base(input, init);
      this.lastErrorCode = r.headers.get("X-Error-Code");
      return r;
    }) as typeof fetch;
    this.progress = o.quiet ? o.onProgress : (o.onProgress ?? progressPrinter());
  }

  get where(): string {
    return `${this.repo}@${this.revision}`;
  }

  get common() {
    return {
      hubUrl: this.endpoint,
      accessToken: this.o.token,
      fetch: this.fetch,
    };
  }

  async resolve(spec: string): Promise<ModelSource> {
    const base = {
      spec,
      kind: "hub" as const,
      repo: this.repo,
      revision: this.revision,
      endpoint: this.endpoint,
    };
    if (this.o.offline) {
      const cached = await this.cachedSnapshot();
      if (cached.missing.length) {
        throw new HubError(
          `HF_HUB_OFFLINE=1: ${this.where} is not in the cache ${this.storage}: ` +
            `${cached.missing.join(", ")} missing. Run once online (unset HF_HUB_OFFLINE) to ` +
            `download it, or give a local folder`,
          "OfflineCacheMiss",
        );
      }
      return { ...base, dir: cached.dir, commit: cached.commit, fromCache: true };
    }
    // A commit hash whose snapshot is complete needs no request.
    if (COMMIT.test(this.revision)) {
      const cached = await this.cachedSnapshot();
      if (!cached.missing.length) {
        return { ...base, dir: cached.dir, commit: cached.commit, fromCache: true };
      }
    }
    let info: { sha?: string; filePaths: string[] };
    try {
      info = await modelInfo({
        name: this.repo,
        revision: this.revision,
        additionalFields: ["sha", "filePaths"],
        ...this.common,
      }) as unknown as { sha?: string; filePaths: string[] };
    } catch (e) {
      if (isNetworkError(e)) {
        // As huggingface_hub does: the Hub cannot be reached, a complete cached snapshot serves.
        const cached = await this.cachedSnapshot();
        if (!cached.missing.length) {
          console.error(
            `warning: ${this.endpoint} unreachable (${(e as Error).message}); using the cached ` +
              `snapshot ${cached.commit} of ${this.where}`,
          );
          return { ...base, dir: cached.dir, commit: cached.commit, fromCache: true };
        }
      }
      throw this.explain(e);
    }
    const commit = info.sha;
    if (!commit || !COMMIT.test(commit)) {
      throw new HubError(`${this.where}: the Hub gave no commit sha for this revision`);
    }
    const files = new Set(info.filePaths ?? []);
    const snapshot = join(this.storage, "snapshots", commit);
    // A sentence-transformers repo: modules.json says where the transformer and the other
    // modules' files are (the transformer may live in a subfolder such as 0_Transformer).
    let layout: StLayout = { transformer: "", modules: [] };
    if (this.o.files !== "tokenizer" && files.has("modules.json")) {
      for (const m of await this.meta(["modules.json"], commit)) {
        await this.ensureFile(m, commit, snapshot);
      }
      layout = await stLayout(join(snapshot, "modules.json"), this.where);
    }
    const wanted = this.chooseFiles(files, commit, layout);
    const metas = await this.meta(wanted, commit);
    for (const m of metas) await this.ensureFile(m, commit, snapshot);
    const tp = layout.transformer ? `${layout.transformer}/` : "";
    if (this.o.files !== "tokenizer" && files.has(`${tp}model.safetensors.index.json`)) {
      // Shards come from the index, which is now in the snapshot.
      const shards = (await shardNames(
        join(snapshot, `${tp}model.safetensors.index.json`),
        this.where,
      )).map((s) => tp + s);
      const missing = shards.filter((s) => !files.has(s));
      if (missing.length) {
        throw new HubError(
          `${this.where}: ${tp}model.safetensors.index.json names ${missing.join(", ")}, ` +
            `not in the repo`,
          "EntryNotFound",
        );
      }
      for (const m of await this.meta(shards, commit)) await this.ensureFile(m, commit, snapshot);
    }
    if (this.revision !== commit) {
      const ref = join(this.storage, "refs", this.revision);
      await Deno.mkdir(dirname(ref), { recursive: true });
      const tmp = `${ref}.tmp-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.writeTextFile(tmp, commit);
      await Deno.rename(tmp, ref);
    }
    return { ...base, dir: snapshot, commit, fromCache: false };
  }

  /** The files to fetch, in order (index first so its shards can be read). */
  chooseFiles(
    files: Set<string>,
    commit: string,
    layout: StLayout = { transformer: "", modules: [] },
  ): string[] {
    const out: string[] = [];
    const tp = layout.transformer ? `${layout.transformer}/` : "";
    const tokenizer = TOKENIZER_FILES.map((f) => tp + f).filter((f) => files.has(f));
    if (this.o.files === "tokenizer") {
      const known = ["tokenizer.json", "sentencepiece.bpe.model", "vocab.txt"].map((f) => tp + f);
      if (!tokenizer.some((f) => known.includes(f))) {
        throw new HubError(
          `${this.where} (commit ${commit}): no tokenizer.json, vocab.txt or ` +
            `sentencepiece.bpe.model in the repo`,
          "EntryNotFound",
        );
      }
      return tokenizer;
    }
    if (!files.has(`${tp}config.json`)) {
      throw new HubError(`${this.where}: the repo has no ${tp}config.json`, "EntryNotFound");
    }
    out.push(`${tp}config.json`);
    if (files.has(`${tp}model.safetensors`)) out.push(`${tp}model.safetensors`);
    else if (files.has(`${tp}model.safetensors.index.json`)) {
      out.push(`${tp}model.safetensors.index.json`);
    } else {
      const other = [...files].filter((f) => /\.(bin|pt|h5|msgpack|onnx)$/.test(f));
      throw new HubError(
        `${this.where}: no ${tp}model.safetensors or ${tp}model.safetensors.index.json in the ` +
          `repo` +
          (other.length ? ` (it has ${other.join(", ")}; this engine reads safetensors only)` : ""),
        "EntryNotFound",
      );
    }
    out.push(...tokenizer, ...ST_FILES.filter((f) => files.has(f)));
    if (tp && files.has(`${tp}sentence_bert_config.json`)) {
      out.push(`${tp}sentence_bert_config.json`);
    }
    // The other modules' folders: their config and (Dense) weights.
    for (const m of layout.modules) {
      for (const f of ["config.json", "model.safetensors"]) {
        const p = `${m}/${f}`;
        if (files.has(p) && !out.includes(p)) out.push(p);
      }
    }
    return out;
  }

  /** Sizes and blob names from paths-info. */
  async meta(paths: string[], commit: string): Promise<FileMeta[]> {
    if (paths.length === 0) return [];
    let infos;
    try {
      infos = await pathsInfo({
        repo: { type: "model", name: this.repo },
        paths,
        revision: commit,
        ...this.common,
      });
    } catch (e) {
      throw this.explain(e);
    }
    return paths.map((p) => {
      const i = infos.find((x) => x.path === p);
      if (!i || i.type !== "file") {
        throw new HubError(`${this.where}: ${p} not found in the repo`, "EntryNotFound");
      }
      const etag = i.lfs?.oid ?? i.oid;
      if (!etag) throw new HubError(`${this.where}: ${p}: paths-info gave no oid`);
      return { path: p, size: i.lfs?.size ?? i.size, etag, lfs: !!i.lfs };
    });
  }

  /** Makes `snapshot/<path>` a link to a complete, verified blob. */
  async ensureFile(m: FileMeta, commit: string, snapshot: string): Promise<void> {
    const pointer = join(snapshot, m.path);
    const blob = join(this.storage, "blobs", m.etag);
    if ((await fileSize(blob)) !== m.size) {
      // One process downloads a blob at a time (another engine or a second run of this one).
      const release = await lockBlob(blob, `${this.where}: ${m.path}`, this.o.quiet);
      try {
        const size = await fileSize(blob); // it may have arrived while we waited
        if (size !== m.size) {
          if (size !== null) await Deno.remove(blob); // a blob of the wrong size is not that blob
          await this.download(m, commit, blob);
        }
      } finally {
        await release();
      }
    }
    const target = relative(dirname(pointer), blob);
    try {
      if (await Deno.readLink(pointer) === target) return;
    } catch {
      // no link yet (or a copied file, replaced below)
    }
    await Deno.mkdir(dirname(pointer), { recursive: true });
    // Made under a temporary name and renamed into place, so concurrent resolves never see (or
    // write through) a half-made pointer.
    const tmp = `${pointer}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.symlink(target, tmp);
    } catch {
      await Deno.copyFile(blob, tmp); // file systems without symlinks
    }
    await Deno.rename(tmp, pointer);
  }

  /** Downloads a blob to `<blob>.incomplete` (resuming it), verifies it and renames it. */
  async download(m: FileMeta, commit: string, blob: string): Promise<void> {
    let info;
    try {
      info = await fileDownloadInfo({
        repo: { type: "model", name: this.repo },
        path: m.path,
        revision: commit,
        ...this.common,
      });
    } catch (e) {
      throw this.explain(e, m.path);
    }
    if (!info) {
      throw new HubError(`${this.where}: ${m.path} not found in the repo`, "EntryNotFound");
    }
    // The size must agree; the content itself is checked against paths-info's hash below (a
    // resolve ETag can name a storage-side hash, so it is not compared).
    if (info.size !== m.size) {
      throw new HubError(
        `${this.where}: ${m.path}: the download's size (${info.size} B) differs from ` +
          `paths-info (${m.size} B)`,
      );
    }
    await Deno.mkdir(dirname(blob), { recursive: true });
    const partial = `${blob}.incomplete`;
    const hash = createHash(m.lfs ? "sha256" : "sha1");
    if (!m.lfs) hash.update(`blob ${m.size}\0`);
    let have = (await fileSize(partial)) ?? 0;
    if (have > m.size) {
      await Deno.remove(partial);
      have = 0;
    }
    // Rehash what an interrupted download left, then ask for the rest.
    if (have > 0) await hashFile(partial, hash, have);
    const headers: Record<string, string> = {};
    if (this.o.token) headers.Authorization = `Bearer ${this.o.token}`;
    if (have > 0 && have < m.size) headers.Range = `bytes=${have}-`;
    let file: Deno.FsFile | null = null;
    const t0 = performance.now();
    try {
      if (have < m.size) {
        let resp: Response;
        try {
          resp = await this.fetch(info.url, { headers });
        } catch (e) {
          throw this.explain(e, m.path);
        }
        if (!resp.ok) {
          await resp.body?.cancel();
          throw this.explain(new HubApiError(info.url, resp.status), m.path);
        }
        if (have > 0 && resp.status !== 206) {
          // The server ignored Range: start again.
          return await this.restart(m, commit, blob, partial, resp);
        }
        if (have > 0) this.note(`resuming ${this.repo} ${m.path} at ${formatBytes(have)}`);
        file = await Deno.open(partial, {
          write: true,
          create: true,
          append: have > 0,
          truncate: have === 0,
        });
        await this.pump(resp, file, hash, m, have, t0);
        file.close();
        file = null;
      }
      await this.verifyAndPublish(m, partial, blob, hash.digest("hex"));
    } finally {
      file?.close();
    }
  }

  private async restart(
    m: FileMeta,
    _commit: string,
    blob: string,
    partial: string,
    resp: Response,
  ): Promise<void> {
    const hash = createHash(m.lfs ? "sha256" : "sha1");
    if (!m.lfs) hash.update(`blob ${m.size}\0`);
    const file = await Deno.open(partial, { write: true, create: true, truncate: true });
    try {
      await this.pump(resp, file, hash, m, 0, performance.now());
    } finally {
      file.close();
    }
    await this.verifyAndPublish(m, partial, blob, hash.digest("hex"));
  }

  private async pump(
    resp: Response,
    file: Deno.FsFile,
    hash: ReturnType<typeof createHash>,
    m: FileMeta,
    start: number,
    t0: number,
  ): Promise<void> {
    let done = start;
    const report = (finished: boolean) => {
      const secs = Math.max(1e-3, (performance.now() - t0) / 1000);
      this.progress?.({
        repo: this.repo,
        file: m.path,
        done,
        total: m.size,
        bytesPerSecond: (done - start) / secs,
        finished,
      });
    };
    if (!resp.body) throw new HubError(`${this.where}: ${m.path}: empty response`);
    try {
      for await (const chunk of resp.body) {
        if (done + chunk.length > m.size) {
          throw new HubError(
            `${this.where}: ${m.path}: the server sent more than the ${m.size} bytes announced`,
          );
        }
        let off = 0;
        while (off < chunk.length) off += await file.write(chunk.subarray(off));
        hash.update(chunk);
        done += chunk.length;
        report(false);
      }
    } catch (e) {
      if (e instanceof HubError) throw e;
      throw new HubError(
        `${this.where}: ${m.path}: download interrupted at ${formatBytes(done)} of ` +
          `${formatBytes(m.size)} (${(e as Error).message}); run again to resume`,
        "Interrupted",
      );
    }
    if (done !== m.size) {
      throw new HubError(
        `${this.where}: ${m.path}: download interrupted at ${formatBytes(done)} of ` +
          `${formatBytes(m.size)}; run again to resume`,
        "Interrupted",
      );
    }
    report(true);
  }

  private async verifyAndPublish(
    m: FileMeta,
    partial: string,
    blob: string,
    digest: string,
  ): Promise<void> {
    if (digest !== m.etag) {
      await Deno.remove(partial).catch(() => {});
      throw new HubError(
        `${this.where}: ${m.path}: the downloaded file's ${m.lfs ? "sha256" : "git sha1"} ` +
          `${digest} differs from the Hub's ${m.etag}; nothing kept`,
        "ChecksumMismatch",
      );
    }
    await Deno.rename(partial, blob);
  }

  private note(msg: string): void {
    if (!this.o.quiet) console.error(msg);
  }

  /** The snapshot of `revision` in the cache, and what it lacks. */
  async cachedSnapshot(): Promise<{ dir: string; commit: string; missing: string[] }> {
    let commit = this.revision;
    if (!COMMIT.test(commit)) {
      const ref = join(this.storage, "refs", this.revision);
      try {
        commit = (await Deno.readTextFile(ref)).trim();
      } catch {
        return { dir: "", commit: "", missing: [`refs/${this.revision}`] };
      }
    }
    const dir = join(this.storage, "snapshots", commit);
    const missing: string[] = [];
    const has = (f: string) => exists(join(dir, f));
    if (this.o.files === "tokenizer") {
      if (!(await has("tokenizer.json")) && !(await has("sentencepiece.bpe.model"))) {
        missing.push(`snapshots/${commit}/tokenizer.json (or sentencepiece.bpe.model)`);
      }
      return { dir, commit, missing };
    }
    const layout = await has("modules.json")
      ? await stLayout(join(dir, "modules.json"), this.where)
      : { transformer: "", modules: [] };
    const tp = layout.transformer ? `${layout.transformer}/` : "";
    if (!(await has(`${tp}config.json`))) missing.push(`snapshots/${commit}/${tp}config.json`);
    if (await has(`${tp}model.safetensors`)) {
      // complete
    } else if (await has(`${tp}model.safetensors.index.json`)) {
      const index = join(dir, `${tp}model.safetensors.index.json`);
      for (const s of await shardNames(index, this.where)) {
        if (!(await has(tp + s))) missing.push(`snapshots/${commit}/${tp}${s}`);
      }
    } else {
      missing.push(`snapshots/${commit}/${tp}model.safetensors`);
    }
    return { dir, commit, missing };
  }

  /** A client or network error turned into one naming the repo, revision and file. */
  explain(e: unknown, file?: string): Error {
    if (e instanceof HubError) return e;
    const what = file ? `${this.where}: ${file}` : this.where;
    if (isNetworkError(e)) {
      return new HubError(
        `${what}: cannot reach ${this.endpoint} (${(e as Error).message}). Check the network or ` +
          `HF_ENDPOINT; with HF_HUB_OFFLINE=1 only the cache is used`,
        "Network",
      );
    }
    if (e instanceof TypeError && /access token/.test(e.message)) {
      return new HubError(`HF_TOKEN: ${e.message}`, "BadToken");
    }
    if (e instanceof HubApiError) {
      const code = this.lastErrorCode ?? "";
      const status = e.statusCode;
      if (code === "RepoNotFound" || code === "RepositoryNotFound") {
        return new HubError(
          `${this.repo}: no such model repo on ${this.endpoint}` +
            (this.o.token ? "" : " (or it is private or gated: set HF_TOKEN)"),
          "RepositoryNotFound",
        );
      }
      if (code === "RevisionNotFound") {
        return new HubError(`${this.repo}: no revision "${this.revision}"`, "RevisionNotFound");
      }
      if (code === "EntryNotFound") {
        return new HubError(`${what} not found in the repo`, "EntryNotFound");
      }
      if (code === "GatedRepo" || status === 401 || status === 403) {
        return new HubError(
          `${what}: access denied (HTTP ${status}${code ? ` ${code}` : ""}): ` +
            (this.o.token
              ? "HF_TOKEN has no access to this repo (gated: accept its terms on the Hub)"
              : "the repo is private or gated: set HF_TOKEN"),
          "Auth",
        );
      }
      if (status === 404) return new HubError(`${what}: not found (HTTP 404)`, "NotFound");
      return new HubError(`${what}: the Hub answered HTTP ${status}: ${e.message}`, "Http");
    }
    return new HubError(`${what}: ${(e as Error).message ?? e}`);
  }
}

/** Whether process `pid` runs on this machine (Linux: /proc; elsewhere assumed alive). */
function processAlive(pid: unknown): boolean {
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return true;
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes `<blob>.lock` (holding this pid): waits while a live process holds it, takes it over
 * from a dead one. Returns the release function.
 */
async function lockBlob(
  blob: string,
  what: string,
  quiet?: boolean,
): Promise<() => Promise<void>> {
  const path = `${blob}.lock`;
  await Deno.mkdir(dirname(path), { recursive: true });
  const token = crypto.randomUUID();
  const body = JSON.stringify({ pid: Deno.pid, token });
  let told = false;
  for (;;) {
    try {
      await Deno.writeTextFile(path, body, { createNew: true });
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let holder: { pid?: unknown } = {};
    try {
      holder = JSON.parse(await Deno.readTextFile(path));
    } catch {
      // being written, or gone: look again
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    if (processAlive(holder.pid)) {
      if (!told && !quiet) console.error(`${what}: waiting for process ${holder.pid} (${path})`);
      told = true;
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    await Deno.remove(path).catch(() => {}); // stale: its process is gone
  }
  return async () => {
    try {
      if (JSON.parse(await Deno.readTextFile(path)).token === token) await Deno.remove(path);
    } catch {
      // gone already
    }
  };
}

function isNetworkError(e: unknown): boolean {
  return e instanceof TypeError &&
    /fetch|connect|network|dns|refused|reset|error sending request/i.test(e.message) &&
    !/access token/.test(e.message);
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return null;
  }
}

async function hashFile(
  path: string,
  hash: ReturnType<typeof createHash>,
  bytes: number,
): Promise<void> {
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 22);
    let left = bytes;
    while (left > 0) {
      const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      left -= n;
    }
  } finally {
    file.close();
  }
}

/** Where a sentence-transformers repo keeps its transformer and its other modules' folders. */
interface StLayout {
  transformer: string;
  modules: string[];
}

const SAFE_PATH = /^[A-Za-z0-9_.-]+$/;

/** Reads modules.json: the transformer's folder ("" for the root) and the other module folders. */
async function stLayout(path: string, where: string): Promise<StLayout> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new HubError(`${where}: modules.json: ${(e as Error).message}`);
  }
  if (!Array.isArray(json)) throw new HubError(`${where}: modules.json: expected an array`);
  const layout: StLayout = { transformer: "", modules: [] };
  for (const m of json as { path?: unknown; type?: unknown }[]) {
    const p = typeof m?.path === "string" ? m.path.replace(/\/+$/, "") : "";
    if (p && (!SAFE_PATH.test(p) || p === "." || p === "..")) {
      throw new HubError(`${where}: modules.json: bad module path ${JSON.stringify(m.path)}`);
    }
    if (typeof m?.type === "string" && m.type.endsWith("Transformer")) layout.transformer = p;
    else if (p) layout.modules.push(p);
  }
  return layout;
}

/** The shard file names of a safetensors index, checked to stay inside the snapshot. */
async function shardNames(indexPath: string, where: string): Promise<string[]> {
  let json: { weight_map?: Record<string, string> };
  try {
    json = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (e) {
    throw new HubError(`${where}: model.safetensors.index.json: ${(e as Error).message}`);
  }
  const names = [...new Set(Object.values(json.weight_map ?? {}))];
  for (const n of names) {
    if (typeof n !== "string" || n.includes("..") || n.startsWith("/") || n.includes("\\")) {
      throw new HubError(`${where}: model.safetensors.index.json: bad shard name ${n}`);
    }
  }
  return names.sort();
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const size = (await Deno.stat(path)).size;
  await hashFile(path, hash, size);
  return hash.digest("hex");
}
