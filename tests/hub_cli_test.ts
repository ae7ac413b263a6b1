/**
 * The researcher's path on the command line, against local stand-ins for the Hub and for the
 * LAReQA repository: `eval --model ORG/NAME` gives the numbers of the local copies, again offline
 * with the server stopped, records its provenance; `init --tokenizer ORG/NAME`; a named dataset
 * whose files do not match the pinned sha256 is refused with nothing written.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { readRepoFiles, startHub } from "./_hub_server.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("fixtures/", import.meta.url));
const COMMIT = "89abcdef0123456789abcdef0123456789abcdef";
const REPO = "test-org/xlmr-tiny";

/** Deno's own cache, kept when a test moves XDG_CACHE_HOME (Deno's default cache lives there). */
const DENO_DIR = Deno.env.get("DENO_DIR") ?? JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stderr: "null" }).output())
      .stdout,
  ),
).denoDir as string;

async function cli(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      NO_COLOR: "1",
      DENO_DIR,
      ...env,
    },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const sha = async (p: string) => createHash("sha256").update(await Deno.readFile(p)).digest("hex");

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });

test("eval --model ORG/NAME equals the local copies, online and offline, with provenance", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hub_cli_" });
  const files = await readRepoFiles(join(FIXTURES, "xlmr-tiny/model"), join(FIXTURES, "tokenizer"));
  delete files["golden_subset.jsonl"];
  const hub = startHub({ [REPO]: { commit: COMMIT, files } });
  const env = {
    HF_ENDPOINT: hub.url,
    HF_HUB_CACHE: join(dir, "hf"),
    XDG_CACHE_HOME: join(dir, "xdg"),
  };
  const evalArgs = [
    "--dataset",
    join(FIXTURES, "xquad-r"),
    "--langs",
    "en,de",
    "--limit-questions",
    "12",
    "--max-length",
    "48",
    "--pooling",
    "mean",
  ];
  let viaHub, local;
  try {
    const r = await cli(env, "eval", "--model", REPO, ...evalArgs, "--out", join(dir, "hub.json"));
    equal(r.code, 0, r.stderr);
    // Progress (not a terminal: plain lines): the download and the embedding phases.
    match(r.stderr, /test-org\/xlmr-tiny model\.safetensors: .* \(100%\)/);
    match(r.stderr, /candidates: \d+\/\d+ texts \(100%\) [\d.]+ texts\/s/);
    viaHub = JSON.parse(await Deno.readTextFile(join(dir, "hub.json")));
    const l = await cli(
      env,
      "eval",
      "--model",
      join(FIXTURES, "xlmr-tiny/model"),
      "--tokenizer",
      join(FIXTURES, "tokenizer"),
      ...evalArgs,
      "--out",
      join(dir, "local.json"),
    );
    equal(l.code, 0, l.stderr);
    local = JSON.parse(await Deno.readTextFile(join(dir, "local.json")));

    // init --tokenizer ORG/NAME copies the repo's tokenizer into a fresh model.
    const init = await cli(
      env,
      "init",
      "--out",
      join(dir, "init"),
      "--config",
      "tiny",
      "--tokenizer",
      REPO,
    );
    equal(init.code, 0, init.stderr);
    equal(
      await sha(join(dir, "init", "tokenizer.json")),
      await sha(join(FIXTURES, "tokenizer", "tokenizer.json")),
    );
  } finally {
    await hub.close();
  }
  deepEqual(viaHub.map, local.map, "same mAP through the Hub as from the local folders");
  deepEqual(viaHub.recall, local.recall);

  // Offline, server stopped: the cache serves the same model.
  const off = await cli(
    { ...env, HF_HUB_OFFLINE: "1" },
    "eval",
    "--model",
    REPO,
    ...evalArgs,
    "--out",
    join(dir, "off.json"),
    "--quiet",
  );
  equal(off.code, 0, off.stderr);
  ok(!/texts\/s|embedding en/.test(off.stderr), `--quiet: ${off.stderr}`);
  const offline = JSON.parse(await Deno.readTextFile(join(dir, "off.json")));
  deepEqual(offline.map, local.map);

  // Provenance: Hub id, revision, commit, weights sha256, dataset files, engine, adapter, options.
  const p = viaHub.provenance;
  equal(p.model.hub_id, REPO);
  equal(p.model.revision, "main");
  equal(p.model.commit, COMMIT);
  equal(p.model.safetensors_sha256, await sha(join(FIXTURES, "xlmr-tiny/model/model.safetensors")));
  equal(p.dataset.name, "xquad-r");
  equal(p.dataset.sha256["en.json"], await sha(join(FIXTURES, "xquad-r/en.json")));
  equal(p.engine.name, "@xlmr-webgpu/engine");
  match(p.engine.version, /^\d+\.\d+\.\d+/);
  ok(typeof p.adapter === "string" && p.adapter.length > 0);
  equal(p.options.pooling, "mean");
  equal(p.options.max_length, 48);
  equal(p.options.query_prefix, "");
  equal(local.provenance.model.path, join(FIXTURES, "xlmr-tiny/model"));

  // Offline and never cached: exit 1 naming the repo and what is missing.
  const miss = await cli(
    { ...env, HF_HUB_OFFLINE: "1" },
    "eval",
    "--model",
    "test-org/absent",
    ...evalArgs,
    "--out",
    join(dir, "absent.json"),
  );
  equal(miss.code, 1);
  match(miss.stderr, /HF_HUB_OFFLINE=1: test-org\/absent@main is not in the cache/);
  await Deno.stat(join(dir, "absent.json")).then(() => ok(false, "written"), () => {});
  await Deno.remove(dir, { recursive: true });
});

test("eval --dataset xquad-r refuses files whose sha256 differs from the pinned ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lareqa_cli_" });
  // A mirror of re-serialised copies: same content, other bytes, so other hashes.
  await Deno.mkdir(join(dir, "mirror", "xquad-r"), { recursive: true });
  for (const l of ["en", "de"]) {
    await Deno.copyFile(
      join(FIXTURES, "xquad-r", `${l}.json`),
      join(dir, "mirror/xquad-r", `${l}.json`),
    );
  }
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    try {
      return new Response(await Deno.readFile(join(dir, "mirror", new URL(req.url).pathname)));
    } catch {
      return new Response("404", { status: 404 });
    }
  });
  try {
    const r = await cli(
      {
        LAREQA_BASE_URL: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
        XDG_CACHE_HOME: join(dir, "xdg"),
      },
      "eval",
      "--model",
      join(FIXTURES, "xlmr-tiny/model"),
      "--tokenizer",
      join(FIXTURES, "tokenizer"),
      "--dataset",
      "xquad-r",
      "--langs",
      "en,de",
      "--out",
      join(dir, "out.json"),
    );
    equal(r.code, 1);
    match(
      r.stderr,
      /--dataset xquad-r: .*\/xquad-r\/en\.json: sha256 [0-9a-f]{64} differs from the pinned/,
    );
    match(r.stderr, /nothing was written/);
    await Deno.stat(join(dir, "xdg")).then(() => ok(false, "cache written"), () => {});
    await Deno.stat(join(dir, "out.json")).then(() => ok(false, "output written"), () => {});
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

test("train --model ORG/NAME (CLI) and train() with a Hub id (library) record the Hub id", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hub_train_" });
  const files = await readRepoFiles(join(FIXTURES, "xlmr-tiny/model"), join(FIXTURES, "tokenizer"));
  delete files["golden_subset.jsonl"];
  const hub = startHub({ [REPO]: { commit: COMMIT, files } });
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(dir, "hf") };
  const common = ["--train", join(FIXTURES, "xlmr-tiny/pairs.jsonl"), "--steps", "2"];
  try {
    const r = await cli(
      env,
      "train",
      "--model",
      REPO,
      ...common,
      "--batch-size",
      "4",
      "--max-length",
      "16",
      "--out",
      join(dir, "run"),
    );
    equal(r.code, 0, r.stderr);
    const prov = JSON.parse(await Deno.readTextFile(join(dir, "run/provenance.json")));
    equal(prov.base_model.hub_id, REPO);
    equal(prov.base_model.commit, COMMIT);
    const card = await Deno.readTextFile(join(dir, "run/README.md"));
    ok(card.includes(`base_model: "${REPO}@${COMMIT}"`), card.slice(0, 300));

    // The library: train() resolves the id itself (through HF_ENDPOINT / HF_HUB_CACHE).
    const { train } = await import("../training/train.ts");
    const { Gpu } = await import("../kernels/runtime.ts");
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, Deno.env.get(k)]));
    for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
    try {
      const gpu = await Gpu.create();
      const res = await train(gpu, {
        model: REPO,
        train: join(FIXTURES, "xlmr-tiny/pairs.jsonl"),
        out: join(dir, "lib"),
        steps: 2,
        batchSize: 4,
        maxLength: 16,
        quiet: true,
      });
      equal(res.steps, 2);
      ok((await Deno.readTextFile(join(dir, "lib/README.md"))).includes(`${REPO}@${COMMIT}`));
      ok((await Deno.stat(join(dir, "lib/tokenizer.json"))).isFile, "tokenizer copied");
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) Deno.env.delete(k);
        else Deno.env.set(k, v);
      }
    }
  } finally {
    await hub.close();
  }
  await Deno.remove(dir, { recursive: true });
});
