/**
 * Flags of long runs through `cli.ts`: bad `--save-total-limit` / `--shard` values are usage
 * errors naming the flag (exit 2, nothing written), and `eval` interrupted by SIGINT exits 130
 * without leaving its output or a temporary file behind.
 */
import { equal, match, ok } from "node:assert/strict";
import { FIXTURES, ROOT, runCli, snapshot } from "./_cli.ts";
import { seededTest } from "../_helpers.ts";

seededTest("long-run flags: usage errors name the flag; SIGINT leaves no eval output", async () => {
  const dir = await Deno.makeTempDir({ prefix: "long_run_flags_" });
  const init = await runCli([
    "init",
    "--out",
    `${dir}/model`,
    "--config",
    "tiny",
    "--tokenizer",
    `${FIXTURES}tokenizer`,
  ]);
  equal(init.code, 0, init.stderr);
  const before = await snapshot(dir);
  const train = (...extra: string[]) =>
    runCli([
      "train",
      "--model",
      `${dir}/model`,
      "--train",
      `${FIXTURES}xlmr-tiny/pairs.jsonl`,
      "--out",
      `${dir}/run`,
      "--steps",
      "2",
      ...extra,
    ]);
  for (const bad of ["0", "-1", "1.5", "x"]) {
    const r = await train(`--save-total-limit=${bad}`);
    equal(r.code, 2, `--save-total-limit ${bad}: ${r.stderr}`);
    match(r.stderr, /--save-total-limit/);
  }
  const evalArgs = (out: string, ...extra: string[]) => [
    "eval",
    "--model",
    `${dir}/model`,
    "--dataset",
    `${FIXTURES}xquad-r`,
    "--out",
    out,
    ...extra,
  ];
  const r = await runCli(evalArgs(`${dir}/x.json`, "--embeddings", `${dir}/e`, "--shard", "0/2"));
  equal(r.code, 2, r.stderr);
  match(r.stderr, /--embeddings ranks from saved shards/);
  const after = await snapshot(dir);
  ok(after.size === before.size, "the refused commands wrote nothing");

  // SIGINT during an evaluation: status 130, no report, no temporary file.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, ...evalArgs(`${dir}/eval.json`, "--max-length", "64")],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  // Wait until it is embedding (its progress lines), then interrupt.
  await new Promise((r) => setTimeout(r, 3000));
  child.kill("SIGINT");
  const st = await child.status;
  const err = await stderr;
  if (st.code === 0) {
    console.log("eval finished before the signal: nothing to check");
  } else {
    equal(st.code, 130, err);
    const left = [...(await snapshot(dir)).keys()].filter((p) => p.includes("eval.json"));
    equal(left.length, 0, `no output or temporary file: ${left}`);
  }
  await Deno.remove(dir, { recursive: true });
});
