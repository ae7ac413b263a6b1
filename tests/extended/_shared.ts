/**
 * Where the extended checks find the team's full fixtures: `$XLMR_SHARED`, or else `../shared`
 * beside the checkout. Missing means failure, never a skip: run these only where the folder exists.
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the shared folder; throws naming both places it looked. */
export function sharedDir(): string {
  const env = Deno.env.get("XLMR_SHARED");
  const dir = env ?? fileURLToPath(new URL("../../../shared/", import.meta.url));
  if (!existsSync(join(dir, "fixtures")) || !existsSync(join(dir, "data"))) {
    throw new Error(
      `deno task test:full needs the full fixtures folder (fixtures/ and data/), looked in ${dir}` +
        (env ? " (from XLMR_SHARED)" : " (../shared beside the checkout; set XLMR_SHARED=DIR)") +
        ". The default suite (deno task test) does not need it.",
    );
  }
  return dir;
}

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
let denoDir: string | undefined;

/**
 * Runs `cli.ts` in a subprocess with `env` added; returns the exit code and stderr. The child
 * shares this process's DENO_DIR, so npm packages are not fetched again.
 */
export async function runCli(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stderr: string }> {
  denoDir ??= Deno.env.get("DENO_DIR") ?? JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" })
        .output()).stdout,
    ),
  ).denoDir as string;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      NO_COLOR: "1",
      DENO_DIR: denoDir,
      ...env,
    },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}
