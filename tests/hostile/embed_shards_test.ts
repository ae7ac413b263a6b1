/**
 * `embed` over corpora larger than one machine, through real `cli.ts embed` subprocesses:
 * `--shard I/N` parts joined equal one process's output (within float32 noise: batch shapes
 * change kernel choices), a job longer than `--part-lines` writes resumable parts, SIGINT keeps
 * the finished parts and writes no output, and a restart continues from them.
 */
import { equal, match, ok } from "node:assert/strict";
import { FIXTURES, ROOT, runCli } from "./_cli.ts";
import { seededTest } from "../_helpers.ts";
import { SafetensorsFile } from "../../model/safetensors.ts";

async function readEmbeddings(path: string) {
  const f = await SafetensorsFile.open(path);
  const data = await f.readF32("embeddings");
  const shape = f.tensors.get("embeddings")!.shape;
  const metadata = f.metadata;
  f.close();
  return { data, shape, metadata };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

seededTest(
  "embed --shard I/N parts join to one process's output; long jobs resume from their parts",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "embed_shards_" });
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
    const texts: string[] = [];
    for (const line of (await Deno.readTextFile(`${FIXTURES}xlmr-tiny/pairs.jsonl`)).split("\n")) {
      if (!line.trim()) continue;
      const item = JSON.parse(line);
      for (const t of [...Object.values(item.question), ...Object.values(item.answer)]) {
        texts.push(t as string);
      }
    }
    const lines = texts.slice(0, 500);
    await Deno.writeTextFile(
      `${dir}/in.jsonl`,
      lines.map((text) => JSON.stringify({ text })).join("\n") + "\n",
    );
    const embed = (out: string, ...extra: string[]) =>
      runCli([
        "embed",
        "--model",
        `${dir}/model`,
        "--input",
        `${dir}/in.jsonl`,
        "--out",
        out,
        "--max-length",
        "32",
        "--batch-size",
        "16",
        "--pooling",
        "mean",
        ...extra,
      ]);
    const whole = await embed(`${dir}/all.safetensors`);
    equal(whole.code, 0, whole.stderr);
    const all = await readEmbeddings(`${dir}/all.safetensors`);
    const H = all.shape[1];
    equal(all.shape[0], lines.length);

    // Three shards: contiguous, in order, covering every line once.
    const joined = new Float32Array(all.data.length);
    let next = 0;
    for (let i = 0; i < 3; i++) {
      const r = await embed(`${dir}/s${i}.safetensors`, "--shard", `${i}/3`);
      equal(r.code, 0, r.stderr);
      const s = await readEmbeddings(`${dir}/s${i}.safetensors`);
      equal(Number(s.metadata.first_line), next, `shard ${i} starts where ${i - 1} ended`);
      equal(s.metadata.shard, `${i}/3`);
      equal(s.metadata.lines_total, String(lines.length));
      joined.set(s.data, next * H);
      next += s.shape[0];
    }
    equal(next, lines.length);
    const shardDiff = maxAbsDiff(joined, all.data);
    ok(shardDiff <= 5e-6, `shards joined differ from one process by ${shardDiff}`);

    // A long job in parts of 64 lines: same vectors, and the parts folder is gone at the end.
    const parts = await embed(`${dir}/parts.safetensors`, "--part-lines", "64");
    equal(parts.code, 0, parts.stderr);
    match(parts.stderr, /part 8\/8: lines 448\.\.499/);
    ok(!(await exists(`${dir}/parts.safetensors.parts`)), "parts removed after the output");
    const partsDiff = maxAbsDiff((await readEmbeddings(`${dir}/parts.safetensors`)).data, all.data);
    ok(partsDiff <= 5e-6, `parts differ by ${partsDiff}`);

    // SIGINT after the first part: exit 130, no output, finished parts kept; a restart resumes.
    const out = `${dir}/resumed.safetensors`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cli.ts`,
        "embed",
        "--model",
        `${dir}/model`,
        "--input",
        `${dir}/in.jsonl`,
        "--out",
        out,
        "--max-length",
        "32",
        "--batch-size",
        "16",
        "--pooling",
        "mean",
        "--part-lines",
        "16",
      ],
      cwd: ROOT,
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    while (!exited && !(await exists(`${out}.parts/part-000000.safetensors`))) {
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!exited) child.kill("SIGINT");
    const st = await status;
    const err = await stderr;
    equal(st.code, 130, err);
    match(err, /stopped \(SIGINT\): finished parts are in .*\.parts; run the same command again/);
    ok(!(await exists(out)), "no output after a stop");
    const done = [...Deno.readDirSync(`${out}.parts`)].filter((e) => e.name.startsWith("part-"));
    ok(done.length >= 1 && done.length < 32, `${done.length} parts kept`);
    const again = await embed(out, "--part-lines", "16");
    equal(again.code, 0, again.stderr);
    match(again.stderr, new RegExp(`${done.length} of 32 parts were already done \\(resumed\\)`));
    const resumedDiff = maxAbsDiff((await readEmbeddings(out)).data, all.data);
    ok(resumedDiff <= 5e-6, `resumed output differs by ${resumedDiff}`);
    console.log(
      `max |Δ| vs one process: shards ${shardDiff}, parts ${partsDiff}, resumed ${resumedDiff}; ` +
        `stopped after ${done.length}/32 parts`,
    );

    // Bad shard specs are usage errors naming the flag.
    for (const bad of ["3/3", "1", "-1/2", "a/b"]) {
      const r = await embed(`${dir}/bad.safetensors`, `--shard=${bad}`);
      equal(r.code, 2, `--shard ${bad}: ${r.stderr}`);
      match(r.stderr, /--shard: expected I\/N/);
    }
    ok(!(await exists(`${dir}/bad.safetensors`)));
    await Deno.remove(dir, { recursive: true });
  },
);
