/**
 * The command-line contracts other tools rely on, run as a user runs them (subprocesses).
 */
import { deepEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../model/safetensors.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("fixtures/", import.meta.url));
const TOKENIZER = join(FIXTURES, "tokenizer");

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });

test("init, tokenize and embed produce a model, ids and [lines, hidden] embeddings", async () => {
  const dir = await Deno.makeTempDir();
  const config = join(dir, "config.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      hidden_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 64,
      vocab_size: 16002,
      max_position_embeddings: 40,
      type_vocab_size: 1,
      layer_norm_eps: 1e-5,
    }),
  );
  const model = join(dir, "model");
  let r = await cli("init", "--out", model, "--config", config, "--tokenizer", TOKENIZER);
  deepEqual(r.code, 0, r.stderr);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    ok((await Deno.stat(join(model, f))).isFile, `${f} written`);
  }
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(
    input,
    ['{"text": "Where is the river?"}', '{"text": "Wo ist der Fluss?  "}', '{"text": "x"}'].join(
      "\n",
    ),
  );
  r = await cli(
    "tokenize",
    "--tokenizer",
    model,
    "--input",
    input,
    "--out",
    join(dir, "ids.jsonl"),
  );
  deepEqual(r.code, 0, r.stderr);
  const ids = (await Deno.readTextFile(join(dir, "ids.jsonl"))).trim().split("\n").map((l) =>
    JSON.parse(l).input_ids as number[]
  );
  deepEqual(ids.length, 3);
  for (const s of ids) ok(s[0] === 0 && s.at(-1) === 2, "wrapped in <s> … </s>");

  const out = join(dir, "emb.safetensors");
  r = await cli("embed", "--model", model, "--input", input, "--out", out, "--pooling", "mean");
  deepEqual(r.code, 0, r.stderr);
  const st = await SafetensorsFile.open(out);
  deepEqual(st.tensors.get("embeddings")?.shape, [3, 32]);
  const emb = await st.readF32("embeddings");
  ok(emb.every(Number.isFinite), "finite embeddings");
  st.close();

  // Lines given as ids embed to the same vectors as their text.
  const idsInput = join(dir, "ids_in.jsonl");
  await Deno.writeTextFile(idsInput, ids.map((s) => JSON.stringify({ input_ids: s })).join("\n"));
  const out2 = join(dir, "emb2.safetensors");
  r = await cli("embed", "--model", model, "--input", idsInput, "--out", out2, "--pooling", "mean");
  deepEqual(r.code, 0, r.stderr);
  const st2 = await SafetensorsFile.open(out2);
  deepEqual(await st2.readF32("embeddings"), emb);
  st2.close();
  await Deno.remove(dir, { recursive: true });
});

test("embed refuses ids outside the vocabulary naming the line, and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const model = join(dir, "model");
  await Deno.writeTextFile(
    join(dir, "c.json"),
    JSON.stringify({
      hidden_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 32,
      vocab_size: 100,
      max_position_embeddings: 20,
      type_vocab_size: 1,
    }),
  );
  deepEqual((await cli("init", "--out", model, "--config", join(dir, "c.json"))).code, 0);
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(input, '{"input_ids": [0, 5, 2]}\n{"input_ids": [0, 100, 2]}\n');
  const out = join(dir, "emb.safetensors");
  const r = await cli("embed", "--model", model, "--input", input, "--out", out);
  deepEqual(r.code, 1);
  ok(r.stderr.includes("in.jsonl:2") && r.stderr.includes("100"), r.stderr);
  await Deno.stat(out).then(() => ok(false, "output written"), () => {});
  await Deno.remove(dir, { recursive: true });
});

test("unknown flags and bad values fail naming the flag", async () => {
  let r = await cli("train", "--model", "m", "--train", "t", "--out", "o", "--batch-size", "x");
  deepEqual(r.code, 2);
  ok(r.stderr.includes("--batch-size"), r.stderr);
  r = await cli("eval", "--bogus", "1");
  deepEqual(r.code, 2);
  ok(r.stderr.includes("bogus"), r.stderr);
  r = await cli("nonsense");
  deepEqual(r.code, 2);
});

test("--max-memory refuses a job that does not fit before touching the GPU", async () => {
  const dir = await Deno.makeTempDir();
  const model = join(dir, "model");
  const r0 = await cli("init", "--out", model, "--config", "tiny", "--vocab-size", "1000");
  deepEqual(r0.code, 0, r0.stderr);
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(input, '{"input_ids": [0, 5, 2]}\n');
  const out = join(dir, "emb.safetensors");
  const r = await cli(
    "embed",
    "--model",
    model,
    "--input",
    input,
    "--out",
    out,
    "--max-memory",
    "1MiB",
  );
  deepEqual(r.code, 2);
  ok(r.stderr.includes("--max-memory") && r.stderr.includes("needs about"), r.stderr);
  await Deno.stat(out).then(() => ok(false, "output written"), () => {});
  const ok2 = await cli(
    "embed",
    "--model",
    model,
    "--input",
    input,
    "--out",
    out,
    "--max-memory",
    "1GiB",
  );
  deepEqual(ok2.code, 0, ok2.stderr);
  await Deno.remove(dir, { recursive: true });
});
