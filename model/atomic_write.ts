/**
 * Atomic file writes: the data goes to a temporary file in the same directory, is flushed to disk
 * with fsync, and is then renamed over the target. A reader sees the old file or the new one,
 * never half of either; a failed write leaves the old file as it was and no temporary behind.
 * @module
 */

/** Streams the body of a file into an open handle (used for files too big to build in memory). */
export type FileWriter = (file: Deno.FsFile) => Promise<void>;

/**
 * Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename).
 * `data` may be bytes, a string (written as UTF-8) or a function that streams into the file.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/hello.txt`, "hello\n");
 * await writeFileAtomic(`${dir}/big.bin`, async (file) => {
 *   await file.write(new Uint8Array(16));
 * });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | FileWriter,
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    if (typeof data === "function") await data(file);
    else await writeAll(file, typeof data === "string" ? new TextEncoder().encode(data) : data);
    await file.sync();
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`writeFileAtomic: cannot write ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  await syncDir(path);
}

/**
 * Writes `value` as pretty-printed JSON (2-space indent, trailing newline) atomically.
 *
 * @example
 * ```ts
 * import { writeJsonAtomic } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeJsonAtomic(`${dir}/report.json`, { map: 0.5 });
 * ```
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`writeJsonAtomic: ${path}: value is not JSON`);
  await writeFileAtomic(path, text + "\n");
}

/**
 * Writes every byte of `data` (a single `write` call may write fewer).
 *
 * @example
 * ```ts
 * import { writeAll } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * using file = await Deno.open(`${dir}/x.bin`, { write: true, create: true });
 * await writeAll(file, new Uint8Array([1, 2, 3]));
 * ```
 */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await file.write(data.subarray(done));
}

/** Makes the rename itself durable; some platforms cannot open a directory, which is harmless. */
async function syncDir(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch { /* best effort */ }
}

/**
 * Whether a file or directory exists at `path`.
 *
 * @example
 * ```ts
 * import { exists } from "./atomic_write.ts";
 * console.log(await exists("/nonexistent-path")); // false
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
