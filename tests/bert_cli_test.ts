/**
 * BERT-family models through the command line, as a user runs it (subprocesses): `init --config
 * bert-tiny` with a WordPiece tokenizer, and `embed` on a sentence-transformers folder without
 * --pooling/--max-length computing what SentenceTransformer(dir).encode computes.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../model/safetensors.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIX = fileURLToPath(new URL("fixtures/bert-tiny/", import.meta.url));

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

async function readEmbeddings(path: string) {
  const f = await SafetensorsFile.open(path);
  try {
    return { info: f.info("embeddings"), data: await f.readF32("embeddings"), meta: f.metadata };
  } finally {
    f.close();
  }
}

test("init --config bert-tiny with a WordPiece tokenizer writes a BertModel that embeds text", async () => {
  const dir = await Deno.makeTempDir();
  const model = join(dir, "model");
  let r = await cli(
    "init",
    "--out",
    model,
    "--config",
    "bert-tiny",
    "--tokenizer",
    join(FIX, "tokenizer-uncased"),
  );
  equal(r.code, 0, r.stderr);
  const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
  equal(config.model_type, "bert");
  deepEqual(config.architectures, ["BertModel"]);
  equal(config.vocab_size, 8000);
  equal(config.type_vocab_size, 2);
  for (const f of ["vocab.txt", "tokenizer.json", "tokenizer_config.json"]) {
    ok((await Deno.stat(join(model, f))).isFile, `${f} copied`);
  }
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(input, '{"text": "Wo ist der Fluss?"}\n{"text": "Ἑλλάς"}\n');
  const out = join(dir, "e.safetensors");
  r = await cli("embed", "--model", model, "--input", input, "--out", out);
  equal(r.code, 0, r.stderr);
  const { info, meta } = await readEmbeddings(out);
  deepEqual(info.shape, [2, 64]);
  equal(meta.pooling, "cls");
  equal(meta.max_length, "512");
  await Deno.remove(dir, { recursive: true });
});

test("embed on a sentence-transformers folder without --pooling gives SentenceTransformer's vectors", async () => {
  const dir = await Deno.makeTempDir();
  const texts: string[] = JSON.parse(await Deno.readTextFile(join(FIX, "st_texts.json")));
  const want: number[][] = JSON.parse(await Deno.readTextFile(join(FIX, "st_expected.json")));
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(input, texts.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const out = join(dir, "e.safetensors");
  let r = await cli("embed", "--model", join(FIX, "st-model"), "--input", input, "--out", out);
  equal(r.code, 0, r.stderr);
  const { info, data, meta } = await readEmbeddings(out);
  deepEqual(info.shape, [texts.length, 64]);
  equal(meta.pooling, "sentence-transformers");
  equal(meta.max_length, "100"); // the folder's limit (some texts are longer)
  let worst = 0;
  want.forEach((row, i) =>
    row.forEach((v, k) => worst = Math.max(worst, Math.abs(data[i * 64 + k] - v)))
  );
  // The same 1e-5 bar as tests/model/sentence_transformers_test.ts (measured 2.1e-7).
  ok(worst <= 1e-5, `worst absolute error ${worst}`);
  // An explicit --pooling keeps its meaning: the transformer's cls output, not unit length.
  r = await cli(
    "embed",
    "--model",
    join(FIX, "st-model"),
    "--input",
    input,
    "--out",
    out,
    "--pooling",
    "cls",
  );
  equal(r.code, 0, r.stderr);
  const raw = await readEmbeddings(out);
  equal(raw.meta.pooling, "cls");
  ok(Math.abs(Math.hypot(...raw.data.subarray(0, 64)) - 1) > 0.1);
  await Deno.remove(dir, { recursive: true });
});

test("tokenize reads a WordPiece folder (vocab.txt only) and matches the golden ids", async () => {
  const dir = await Deno.makeTempDir();
  for (const f of ["vocab.txt", "tokenizer_config.json"]) {
    await Deno.copyFile(join(FIX, "tokenizer-uncased", f), join(dir, f));
  }
  const golden = (await Deno.readTextFile(join(FIX, "golden_subset_uncased.jsonl"))).split("\n")
    .filter((l) => l).slice(0, 50).map((l) =>
      JSON.parse(l) as { text: string; input_ids: number[] }
    );
  const input = join(dir, "in.jsonl");
  await Deno.writeTextFile(input, golden.map((g) => JSON.stringify({ text: g.text })).join("\n"));
  const out = join(dir, "out.jsonl");
  const r = await cli("tokenize", "--tokenizer", dir, "--input", input, "--out", out);
  equal(r.code, 0, r.stderr);
  const got = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l).input_ids);
  deepEqual(got, golden.map((g) => g.input_ids));
  await Deno.remove(dir, { recursive: true });
});

test("a Hub BERT repo with only vocab.txt (no tokenizer.json) downloads and tokenizes", async () => {
  const { startHub } = await import("./_hub_server.ts");
  const { resolveModel } = await import("../model/hub.ts");
  const { loadTokenizer } = await import("../model/text_tokenizer.ts");
  const read = (p: string) => Deno.readFile(join(FIX, p));
  const files: Record<string, Uint8Array> = {
    "config.json": await read("model/config.json"),
    "model.safetensors": await read("model/model.safetensors"),
    "vocab.txt": await read("tokenizer-cased/vocab.txt"),
    "tokenizer_config.json": await read("tokenizer-cased/tokenizer_config.json"),
  };
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const hub = startHub({ "test-org/bert-vocab-only": { commit, files } });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  try {
    for (const what of ["model", "tokenizer"] as const) {
      const src = await resolveModel("test-org/bert-vocab-only", {
        endpoint: hub.url,
        cacheDir: cache,
        files: what,
        quiet: true,
      });
      const tok = await loadTokenizer(src.dir);
      equal(tok.kind, "wordpiece");
      const golden = (await Deno.readTextFile(join(FIX, "golden_subset_cased.jsonl"))).split("\n")
        .filter((l) => l).slice(0, 20).map((l) => JSON.parse(l));
      for (const g of golden) deepEqual(tok.encode(g.text), g.input_ids);
    }
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});
