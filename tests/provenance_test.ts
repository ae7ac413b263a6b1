/** What results record: the prompts of a model folder, the model's identity, the engine. */
import { deepEqual, equal, match } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  engineInfo,
  folderProvenance,
  modelProvenance,
  readRunPrompts,
} from "../cli/provenance.ts";
import { sha256File } from "../model/hub.ts";

const FIXTURES = fileURLToPath(new URL("fixtures/", import.meta.url));

Deno.test("readRunPrompts: sentence-transformers prompts (passage or document), else a run's prefixes", async () => {
  const dir = await Deno.makeTempDir();
  deepEqual(await readRunPrompts(dir), {});
  await Deno.writeTextFile(
    join(dir, "train_summary.json"),
    JSON.stringify({ options: { queryPrefix: "Q: ", passagePrefix: "P: " } }),
  );
  deepEqual(await readRunPrompts(dir), { query: "Q: ", passage: "P: " });
  const st = join(dir, "config_sentence_transformers.json");
  await Deno.writeTextFile(
    st,
    JSON.stringify({
      prompts: { query: "query: ", document: "passage: " },
      default_prompt_name: "query",
    }),
  );
  deepEqual(await readRunPrompts(dir), {
    query: "query: ",
    passage: "passage: ",
    defaultName: "query",
  });
  await Deno.writeTextFile(st, JSON.stringify({ prompts: { query: "A", passage: "B" } }));
  deepEqual(await readRunPrompts(dir), { query: "A", passage: "B", defaultName: undefined });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("modelProvenance: path and the weights' sha256; engineInfo: version and commit", async () => {
  const model = join(FIXTURES, "xlmr-tiny/model");
  const p = await modelProvenance({ dir: model, spec: model, kind: "local" });
  equal(p.path, model);
  equal(p.safetensors_sha256, await sha256File(join(model, "model.safetensors")));
  const e = await engineInfo();
  equal(e.name, "@xlmr-webgpu/engine");
  match(e.version, /^\d+\.\d+\.\d+/);
  if (e.commit !== undefined) match(e.commit, /^[0-9a-f]{40}$/);
});

Deno.test("folderProvenance: every file's sha256, subfolders included", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "corpus.jsonl"), '{"_id": "d1", "text": "x"}\n');
  await Deno.mkdir(join(dir, "qrels"));
  await Deno.writeTextFile(join(dir, "qrels", "test.tsv"), "query-id\tcorpus-id\tscore\n");
  const p = await folderProvenance(dir);
  deepEqual(Object.keys(p.sha256 as Record<string, string>), ["corpus.jsonl", "qrels/test.tsv"]);
  equal(
    (p.sha256 as Record<string, string>)["corpus.jsonl"],
    await sha256File(join(dir, "corpus.jsonl")),
  );
  await Deno.remove(dir, { recursive: true });
});
