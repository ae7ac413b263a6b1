/**
 * A finished run is never overwritten by accident: `train --out DIR` that already holds a run is
 * refused unless the run is continued (`--resume`) or replaced on purpose (`--overwrite`), and a
 * lock file (`DIR/.train.lock`, holding the writer's pid) refuses a second process writing the
 * same run. A lock whose process is gone (SIGKILL, power loss) is taken over, so kill-and-resume
 * keeps working.
 * @module
 */
import { join } from "node:path";
import { hostname } from "node:os";

/** `--out` holds a run and neither `--resume` nor `--overwrite` was given. */
export class RunExistsError extends Error {
  override name = "RunExistsError";
}

/** Another live process writes the same run folder. */
export class RunLockedError extends Error {
  override name = "RunLockedError";
}

/** The lock file's name inside a run folder. */
export const LOCK_FILE = ".train.lock";

const RUN_FILE =
  /^(train_summary\.json|metrics\.jsonl|batches\.jsonl|eval\.jsonl|model\.safetensors|checkpoint(-\d+)?(\.old)?|checkpoint\.tmp-.*)$/;

/** The entries of `out` that belong to a training run (empty when there is none). */
export async function runFilesIn(out: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(out)) if (RUN_FILE.test(e.name)) found.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return found.sort();
}

/** Whether process `pid` runs on this machine (Linux: /proc; elsewhere assumed alive). */
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return true; // no /proc: cannot tell, keep the lock
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** A held lock; `release()` removes it (and the run folder when this run created it empty). */
export interface RunLock {
  path: string;
  /** Entries removed by `overwrite`. */
  replaced: string[];
  release(): Promise<void>;
}

/**
 * Checks that `out` may be written and locks it.
 *
 * - `out` holds a run and neither `continues` (resume) nor `overwrite`: {@linkcode RunExistsError},
 *   nothing touched.
 * - another live process holds `out/.train.lock`: {@linkcode RunLockedError}, nothing touched.
 * - a lock left by a dead process is taken over.
 * - `overwrite`: the previous run's files are removed once the lock is held.
 */
export async function guardRunDir(
  out: string,
  opts: { continues?: boolean; overwrite?: boolean } = {},
): Promise<RunLock> {
  const existing = await runFilesIn(out);
  if (existing.length > 0 && !opts.continues && !opts.overwrite) {
    throw new RunExistsError(
      `--out ${out} already holds a run (${existing.join(", ")}): nothing was changed. ` +
        `Give --resume ${out} to continue it, --overwrite to replace it, or another --out`,
    );
  }
  let created = false;
  try {
    await Deno.stat(out);
  } catch {
    await Deno.mkdir(out, { recursive: true });
    created = true;
  }
  const path = join(out, LOCK_FILE);
  const token = crypto.randomUUID();
  const body = JSON.stringify({
    pid: Deno.pid,
    host: hostname(),
    token,
    started: new Date().toISOString(),
  }) + "\n";
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.writeTextFile(path, body, { createNew: true });
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists) || attempt > 3) throw e;
    }
    let holder: { pid?: number; host?: string } = {};
    try {
      holder = JSON.parse(await Deno.readTextFile(path));
    } catch {
      // unreadable or half-written lock: treated as stale below
    }
    const sameHost = !holder.host || holder.host === hostname();
    if (holder.pid !== undefined && (!sameHost || alive(holder.pid))) {
      if (created) await Deno.remove(out).catch(() => {});
      throw new RunLockedError(
        `--out ${out} is being written by process ${holder.pid}` +
          (sameHost ? "" : ` on ${holder.host}`) +
          ` (lock ${path}); wait for it to finish, or remove the lock if that process is gone`,
      );
    }
    // Stale: the writer is gone. Replace its lock atomically and check that ours won.
    const tmp = `${path}.tmp-${token.slice(0, 8)}`;
    await Deno.writeTextFile(tmp, body);
    await Deno.rename(tmp, path);
    try {
      if (JSON.parse(await Deno.readTextFile(path)).token === token) break;
    } catch {
      // another process is replacing it too: try again
    }
  }
  const replaced: string[] = [];
  if (opts.overwrite && !opts.continues) {
    for (const name of existing) {
      await Deno.remove(join(out, name), { recursive: true });
      replaced.push(name);
    }
  }
  return {
    path,
    replaced,
    release: async () => {
      try {
        if (JSON.parse(await Deno.readTextFile(path)).token === token) await Deno.remove(path);
      } catch {
        // already gone
      }
      if (created) {
        // A run that failed before writing anything leaves no empty folder behind.
        await Deno.remove(out).catch(() => {});
      }
    },
  };
}
