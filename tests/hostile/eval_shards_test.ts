/**
 * `eval --shard I/N --save-embeddings DIR` in N processes, then `eval --embeddings DIR`: the same
 * metrics as one process (within float32 noise), through real `cli.ts eval` subprocesses; a
 * missing shard or other options are refused naming the shard and the option.
 */
import { equal, match, ok } from "node:assert/strict";
import { FIXTURES, runCli } from "./_cli.ts";
import { seededTest } from "../_helpers.ts";

seededTest("eval sharded over 3 processes ranks to one process's metrics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eval_shards_" });
  const init = await runCli([
    "init",
    "--out",
    `${dir}/model`,
    "--config",
    "tiny",
    "--tokenizer",
    `${FIXTURES}tokenizer`,
    "--seed",
    "3",
  ]);
  equal(init.code, 0, init.stderr);
  const evalArgs = (out: string, ...extra: string[]) => [
    "eval",
    "--model",
    `${dir}/model`,
    "--dataset",
    `${FIXTURES}xquad-r`,
    "--langs",
    "de,en,zh",
    "--limit-questions",
    "40",
    "--candidate",
    "sentence+context",
    "--max-length",
    "32",
    "--pooling",
    "mean",
    "--query-prefix",
    "query: ",
    "--out",
    out,
    ...extra,
  ];
  const one = await runCli(evalArgs(`${dir}/one.json`));
  equal(one.code, 0, one.stderr);
  for (let i = 0; i < 3; i++) {
    const r = await runCli(
      evalArgs(`${dir}/shard${i}.json`, "--shard", `${i}/3`, "--save-embeddings", `${dir}/emb`),
    );
    equal(r.code, 0, r.stderr);
    match(r.stdout, new RegExp(`shard ${i}/3: embeddings → .*shard-${i}-of-3`));
  }
  const ranked = await runCli(evalArgs(`${dir}/ranked.json`, "--embeddings", `${dir}/emb`));
  equal(ranked.code, 0, ranked.stderr);
  const a = JSON.parse(await Deno.readTextFile(`${dir}/one.json`));
  const b = JSON.parse(await Deno.readTextFile(`${dir}/ranked.json`));
  let worst = 0;
  for (const k of ["monolingual", "crosslingual", "multilingual"]) {
    worst = Math.max(worst, Math.abs(a.map[k] - b.map[k]));
  }
  console.log(`mAP one process vs 3 shards: max |Δ| ${worst} (${JSON.stringify(b.map)})`);
  ok(worst <= 1e-9, `mAP differs by ${worst}`);

  // Other options than the shards were made with, and a missing shard, are refused.
  const other = await runCli(
    evalArgs(`${dir}/x.json`, "--embeddings", `${dir}/emb`).map((a) => a === "32" ? "24" : a),
  );
  equal(other.code, 1, other.stderr);
  match(other.stderr, /shard 0\/3 was made with max_length 32, this run has 24/);
  const fewer = await runCli(
    evalArgs(`${dir}/x.json`, "--limit-questions", "20", "--embeddings", `${dir}/emb`),
  );
  equal(fewer.code, 1, fewer.stderr);
  match(fewer.stderr, /holds other items than this evaluation's call 0/);
  await Deno.remove(`${dir}/emb/shard-2-of-3`, { recursive: true });
  const missing = await runCli(evalArgs(`${dir}/x.json`, "--embeddings", `${dir}/emb`));
  equal(missing.code, 1, missing.stderr);
  match(missing.stderr, /shard 2\/3 is missing or unfinished/);
  const usage = await runCli(evalArgs(`${dir}/x.json`, "--shard", "0/2"));
  equal(usage.code, 2, usage.stderr);
  match(usage.stderr, /--shard I\/N and --save-embeddings DIR go together/);
  await Deno.remove(dir, { recursive: true });
});
