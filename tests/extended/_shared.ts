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
