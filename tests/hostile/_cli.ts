/**
 * Helpers for the hostile-input tests: run `cli.ts` as a subprocess, snapshot a directory to
 * prove that a failing command created or changed nothing.
 * @module
 */
import { mulberry32 } from "../../model/init.ts";

/** Repository root (where cli.ts lives). */
export const ROOT = new URL("../../", import.meta.url).pathname;
/** Shared fixtures (tests may read them; the product never does). */
export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

/** Result of one `deno run -A cli.ts …`. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A cli.ts ...args` from the repository root and waits for it. */
export async function runCli(args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, ...args],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts `deno run -A cli.ts ...args` without waiting (for kill tests). */
export function spawnCli(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, ...args],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Every file under `dir` with its size and modification time (empty when `dir` is missing). */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else {
        const st = await Deno.stat(p);
        out.set(p, `${st.size}@${st.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return out;
}

/** Small deterministic PRNG (mulberry32) for the fuzz loops; the seed is printed on failure. */
export const prng: (seed: number) => () => number = mulberry32;
