/**
 * `train` into a finished run refuses (exit 2) and changes nothing; `--overwrite` replaces it; the
 * run records its prompts, which `eval` then applies by default.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("fixtures/", import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** path → sha256 of every file under `dir`. */
async function snapshot(dir: string, base = dir, out = new Map<string, string>()) {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) await snapshot(p, base, out);
    else {
      out.set(
        p.slice(base.length),
        createHash("sha256").update(await Deno.readFile(p)).digest("hex"),
      );
    }
  }
  return out;
}

Deno.test({
  name: "train into a finished run refuses and changes nothing; --overwrite replaces it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "run_guard_cli_" });
    const out = join(dir, "run");
    const args = [
      "train",
      "--model",
      join(FIXTURES, "xlmr-tiny/model"),
      "--tokenizer",
      join(FIXTURES, "tokenizer"),
      "--train",
      join(FIXTURES, "xlmr-tiny/pairs.jsonl"),
      "--out",
      out,
      "--steps",
      "2",
      "--batch-size",
      "4",
      "--max-length",
      "16",
      "--query-prefix",
      "Query: ",
      "--passage-prefix",
      "Passage: ",
    ];
    const first = await cli(...args);
    equal(first.code, 0, first.stderr);
    const before = await snapshot(out);
    ok(before.has("/model.safetensors") && before.has("/train_summary.json"));
    ok(!before.has("/.train.lock"), "lock released");
    const prov = JSON.parse(await Deno.readTextFile(join(out, "provenance.json")));
    equal(prov.base_model.path, join(FIXTURES, "xlmr-tiny/model"));
    // The run is a sentence-transformers folder with its pooling and prompts, and a model card.
    const st = JSON.parse(await Deno.readTextFile(join(out, "config_sentence_transformers.json")));
    deepEqual(st.prompts, { query: "Query: ", passage: "Passage: " });
    const pool = JSON.parse(await Deno.readTextFile(join(out, "1_Pooling/config.json")));
    equal(pool.pooling_mode_cls_token, true);
    ok(before.has("/modules.json") && before.has("/2_Normalize/config.json"));
    ok((await Deno.readTextFile(join(out, "README.md"))).includes("| steps | 2 "));
    ok(
      (await Deno.readTextFile(join(out, "training_curves.svg"))).includes("<polyline"),
      "training curves",
    );

    const again = await cli(...args, "--seed", "9");
    equal(again.code, 2, again.stderr);
    match(again.stderr, /--out .*run already holds a run .*--resume .*--overwrite/);
    deepEqual(await snapshot(out), before, "nothing touched");

    // --resume of another run does not make --out writable either.
    const other = join(dir, "other");
    const o2 = await cli(...args.map((a) => a === out ? other : a));
    equal(o2.code, 0, o2.stderr);
    const cross = await cli(...args, "--resume", other);
    equal(cross.code, 2, cross.stderr);
    match(cross.stderr, /already holds a run/);
    deepEqual(await snapshot(out), before, "nothing touched");

    const replaced = await cli(...args, "--seed", "9", "--overwrite");
    equal(replaced.code, 0, replaced.stderr);
    match(replaced.stdout, /--overwrite: removed the previous run's/);
    const after = await snapshot(out);
    ok(after.get("/model.safetensors") !== before.get("/model.safetensors"), "replaced");

    // eval applies the run's recorded prompts unless told otherwise.
    const ev = await cli(
      "eval",
      "--model",
      out,
      "--dataset",
      join(FIXTURES, "xquad-r"),
      "--langs",
      "en,de",
      "--limit-questions",
      "5",
      "--max-length",
      "16",
      "--out",
      join(dir, "e.json"),
    );
    equal(ev.code, 0, ev.stderr);
    const rep = JSON.parse(await Deno.readTextFile(join(dir, "e.json")));
    equal(rep.provenance.options.query_prefix, "Query: ");
    equal(rep.provenance.options.passage_prefix, "Passage: ");
    const plain = await cli(
      "eval",
      "--model",
      out,
      "--dataset",
      join(FIXTURES, "xquad-r"),
      "--langs",
      "en,de",
      "--limit-questions",
      "5",
      "--max-length",
      "16",
      "--query-prefix",
      "",
      "--passage-prefix",
      "",
      "--out",
      join(dir, "p.json"),
    );
    equal(plain.code, 0, plain.stderr);
    const p = JSON.parse(await Deno.readTextFile(join(dir, "p.json")));
    equal(p.provenance.options.query_prefix, "");
    ok(
      JSON.stringify(p.map) !== JSON.stringify(rep.map),
      "the prefixes change the scores (so they were applied)",
    );
    await Deno.remove(dir, { recursive: true });
  },
});
