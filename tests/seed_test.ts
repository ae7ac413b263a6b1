/**
 * The reproducible-randomness convention of tests/_helpers.ts: a failing randomised test names
 * its seed, and `TEST_SEED=N` replays exactly the same random inputs.
 */
import { equal, match, notEqual } from "node:assert/strict";
import { join } from "node:path";

const HELPERS = new URL("./_helpers.ts", import.meta.url).href;

async function runFailing(dir: string, env: Record<string, string>): Promise<string> {
  const file = join(dir, "failing_test.ts");
  await Deno.writeTextFile(
    file,
    `import { freshSeed, rng, seededTest } from "${HELPERS}";
seededTest("a randomised test that fails", () => {
  const a = rng(freshSeed("input a"))(), b = rng(freshSeed("input b"))();
  throw new Error("values " + a + " " + b);
});
`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", file],
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  notEqual(out.code, 0, "the planted test must fail");
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test("a failing randomised test prints the TEST_SEED that replays its inputs", async () => {
  const dir = await Deno.makeTempDir();
  const first = await runFailing(dir, {});
  const seed = first.match(/randomised: input a, input b; replay with TEST_SEED=(\d+)/)?.[1];
  match(first, /replay with TEST_SEED=\d+/, `no seed in:\n${first}`);
  const values = (s: string) => s.match(/values ([\d.e-]+ [\d.e-]+)/)![1];
  const replay = await runFailing(dir, { TEST_SEED: seed! });
  equal(values(replay), values(first), "TEST_SEED replays the same inputs");
  match(replay, new RegExp(`TEST_SEED=${seed}\\b`));
  const other = await runFailing(dir, { TEST_SEED: String((Number(seed) + 1) % 2 ** 32) });
  notEqual(values(other), values(first), "another seed gives other inputs");
  await Deno.remove(dir, { recursive: true });
});
