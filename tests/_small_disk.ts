/**
 * A small disk for the full-disk tests: a real tmpfs where `mount` is permitted (root, as in CI),
 * otherwise a temporary folder whose free space `util/disk.ts` is told is `bytes` minus what the
 * folder holds, so the space checks see a disk that fills up either way. Only a real mount can
 * also fail a write that the check let through (`real`).
 * @module
 */
import { join } from "node:path";
import { freeSpaceProbe } from "../util/disk.ts";

/** A small disk at `dir`; `release` unmounts it (or ends the simulation) and removes it. */
export interface SmallDisk {
  dir: string;
  /** A real tmpfs (writes can fail with ENOSPC), not a simulated one. */
  real: boolean;
  release(): Promise<void>;
}

/** Bytes the files under `dir` occupy, in 4 KiB blocks as tmpfs counts them. */
function usedBytes(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) n += 4096 + usedBytes(path);
    else if (e.isFile) n += Math.ceil(Deno.statSync(path).size / 4096) * 4096;
  }
  return n;
}

/**
 * Mounts a tmpfs of `bytes` (with mount options `extra`, e.g. `,nr_inodes=64`), or simulates one
 * when mounting is not permitted here.
 */
export async function smallDisk(bytes: number, extra = ""): Promise<SmallDisk> {
  const dir = await Deno.makeTempDir({ prefix: "small_disk_" });
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${bytes}${extra}`, "tmpfs", dir],
    stdout: "null",
    stderr: "null",
  }).output().then((o) => o.success, () => false);
  if (mounted) {
    return {
      dir,
      real: true,
      release: async () => {
        await new Deno.Command("umount", { args: [dir] }).output();
        await Deno.remove(dir, { recursive: true });
      },
    };
  }
  freeSpaceProbe.read = (d) =>
    d === dir || d.startsWith(dir + "/")
      ? Math.max(0, bytes - usedBytes(dir))
      : freeSpaceProbe.statfs(d);
  return {
    dir,
    real: false,
    release: async () => {
      freeSpaceProbe.read = freeSpaceProbe.statfs;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
