/**
 * Disk pressure: check the free space of a file system before a large write, so that a full disk
 * refuses up front with the bytes needed and where instead of failing halfway.
 * @module
 */
import { statfsSync } from "node:fs";

/**
 * Free bytes for this user on the file system that holds `dir`; null when it cannot be told.
 *
 * @example
 * ```ts
 * import { freeBytes } from "./disk.ts";
 * console.log(freeBytes(".") !== 0);
 * ```
 */
export function freeBytes(dir: string): number | null {
  return freeSpaceProbe.read(dir);
}

function statfsFreeBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/**
 * Where {@linkcode freeBytes} reads free space (`statfs`). Tests on a machine that may not mount a
 * small file system replace `read` to play one that fills up, and put `statfs` back after.
 */
export const freeSpaceProbe: {
  read: (dir: string) => number | null;
  readonly statfs: typeof statfsFreeBytes;
} = {
  read: statfsFreeBytes,
  statfs: statfsFreeBytes,
};

/**
 * Throws when the file system holding `dir` has fewer than `bytes` free: "no space left for
 * `what`: it needs N bytes (… MiB) in `dir`, but only M bytes (… MiB) are free`hint`".
 *
 * @example
 * ```ts
 * import { ensureFreeSpace } from "./disk.ts";
 * ensureFreeSpace(".", 1024, "a small file");
 * ```
 */
export function ensureFreeSpace(dir: string, bytes: number, what: string, hint = ""): void {
  const free = freeBytes(dir);
  if (free !== null && free < bytes) {
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new Error(
      `no space left for ${what}: it needs ${bytes} bytes (${mib(bytes)}) in ${dir}, but only ` +
        `${free} bytes (${mib(free)}) are free${hint}`,
    );
  }
}
