/**
 * Hub ids resolved against a local stand-in of the Hub (tests/_hub_server.ts): the standard cache
 * layout, only the needed files, offline mode, resumed downloads, checksum refusal, and errors that
 * name the repo and the file.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseHubId, resolveModel } from "../../model/hub.ts";
import { gitBlobSha1, readRepoFiles, sha256Hex, startHub } from "../_hub_server.ts";
import { SafetensorsFile, writeSafetensors } from "../../model/safetensors.ts";
import { readSentenceTransformers } from "../../model/sentence_transformers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const REPO = "test-org/xlmr-tiny";

async function repoFiles(): Promise<Record<string, Uint8Array>> {
  const files = await readRepoFiles(join(FIXTURES, "xlmr-tiny/model"), join(FIXTURES, "tokenizer"));
  delete files["golden_subset.jsonl"];
  // Files the engine must never fetch.
  files["pytorch_model.bin"] = new Uint8Array(1000).fill(7);
  files["README.md"] = new TextEncoder().encode("# tiny\n");
  return files;
}

const quiet = { quiet: true };

Deno.test("parseHubId: ORG/NAME[@REV], never a path", () => {
  deepEqual(parseHubId("FacebookAI/xlm-roberta-base"), {
    repo: "FacebookAI/xlm-roberta-base",
    revision: "main",
  });
  deepEqual(parseHubId(`a/b@${COMMIT}`), { repo: "a/b", revision: COMMIT });
  for (const s of ["./a/b", "/a/b", "a/b/c", "../a", "a", "a/..", "~/x", "a/b@"]) {
    equal(parseHubId(s), null, s);
  }
});

Deno.test("a Hub id downloads only the needed files into the standard cache layout", async () => {
  const files = await repoFiles();
  const hub = startHub({ [REPO]: { commit: COMMIT, files } });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  try {
    const src = await resolveModel(REPO, { endpoint: hub.url, cacheDir: cache, ...quiet });
    const storage = join(cache, "models--test-org--xlmr-tiny");
    equal(src.kind, "hub");
    equal(src.commit, COMMIT);
    equal(src.dir, join(storage, "snapshots", COMMIT));
    equal((await Deno.readTextFile(join(storage, "refs", "main"))).trim(), COMMIT);
    const got = (await Array.fromAsync(Deno.readDir(src.dir))).map((e) => e.name).sort();
    deepEqual(got, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    // Snapshot files are relative links to blobs named by sha256 (LFS) or git sha1 (others).
    const st = files["model.safetensors"];
    equal(
      await Deno.readLink(join(src.dir, "model.safetensors")),
      `../../blobs/${sha256Hex(st)}`,
    );
    equal(
      await Deno.readLink(join(src.dir, "config.json")),
      `../../blobs/${gitBlobSha1(files["config.json"])}`,
    );
    deepEqual(await Deno.readFile(join(src.dir, "model.safetensors")), st);
    ok(!hub.log.some((r) => r.path.endsWith("pytorch_model.bin")), "pytorch_model.bin not fetched");
    // The protocol calls the client makes.
    ok(hub.log.some((r) => r.method === "POST" && r.path.includes("/paths-info/")));
    ok(hub.log.some((r) => r.path === `/api/models/${REPO}/revision/main`));

    // Second time: nothing downloaded again.
    const n = hub.log.filter((r) => r.path.includes("/resolve/")).length;
    await resolveModel(REPO, { endpoint: hub.url, cacheDir: cache, ...quiet });
    equal(hub.log.filter((r) => r.path.includes("/resolve/")).length, n, "no new download");

    // A pinned commit with a complete snapshot needs no request at all.
    const before = hub.log.length;
    const pinned = await resolveModel(`${REPO}@${COMMIT}`, {
      endpoint: hub.url,
      cacheDir: cache,
      ...quiet,
    });
    equal(pinned.dir, src.dir);
    equal(hub.log.length, before);

    // Tokenizer only (init --tokenizer).
    const cache2 = await Deno.makeTempDir({ prefix: "hf_cache_" });
    const tok = await resolveModel(REPO, {
      endpoint: hub.url,
      cacheDir: cache2,
      files: "tokenizer",
      ...quiet,
    });
    deepEqual(
      (await Array.fromAsync(Deno.readDir(tok.dir))).map((e) => e.name).sort(),
      ["tokenizer.json", "tokenizer_config.json"],
    );
    await Deno.remove(cache2, { recursive: true });
  } finally {
    await hub.close();
  }
  // Offline: the cache alone serves, with the server gone.
  const off = await resolveModel(REPO, { endpoint: hub.url, cacheDir: cache, offline: true });
  equal(off.commit, COMMIT);
  equal(off.fromCache, true);
  // Hub unreachable but cached: falls back to the cache.
  const down = await resolveModel(REPO, { endpoint: hub.url, cacheDir: cache, ...quiet });
  equal(down.commit, COMMIT);
  // Offline without a cache: a clear error naming what is missing.
  await rejects(
    resolveModel("test-org/other", { endpoint: hub.url, cacheDir: cache, offline: true }),
    (e: Error) => {
      match(e.message, /HF_HUB_OFFLINE=1: test-org\/other@main is not in the cache/);
      match(e.message, /refs\/main missing/);
      return true;
    },
  );
  await Deno.remove(cache, { recursive: true });
});

Deno.test("errors name the repo and the file: missing repo, no safetensors, auth, network", async () => {
  const files = await repoFiles();
  const binOnly = { ...files };
  delete binOnly["model.safetensors"];
  const hub = startHub({
    [REPO]: { commit: COMMIT, files },
    "test-org/bin-only": { commit: COMMIT, files: binOnly },
    "test-org/private": { commit: COMMIT, files, token: "hf_secret" },
  });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  const o = { endpoint: hub.url, cacheDir: cache, ...quiet };
  try {
    await rejects(
      resolveModel("test-org/nope", o),
      /test-org\/nope: no such model repo on http:.*set HF_TOKEN/,
    );
    await rejects(
      resolveModel("test-org/bin-only", o),
      /test-org\/bin-only@main: no model\.safetensors .*pytorch_model\.bin; this engine reads safetensors only/,
    );
    await rejects(resolveModel("test-org/private", o), /test-org\/private.*set HF_TOKEN/);
    const ok1 = await resolveModel("test-org/private", { ...o, token: "hf_secret" });
    equal(ok1.commit, COMMIT);
    ok(
      hub.log.filter((r) => r.path.includes("test-org/private")).length > 0,
      "the token reached the server",
    );
    await rejects(resolveModel(`${REPO}@v9`, o), /test-org\/xlmr-tiny: no revision "v9"/);
    await rejects(
      resolveModel("test-org/never-cached", { ...o, endpoint: "http://127.0.0.1:9" }),
      /test-org\/never-cached@main: cannot reach http:\/\/127\.0\.0\.1:9/,
    );
    // Not a Hub id and not there: left to the loaders, which name the missing file.
    equal((await resolveModel("./no/such/path", o)).kind, "local");
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("an interrupted download resumes with Range; a tampered one is refused", async () => {
  const files = await repoFiles();
  const hub = startHub({ [REPO]: { commit: COMMIT, files } });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  const o = { endpoint: hub.url, cacheDir: cache, ...quiet };
  const st = files["model.safetensors"];
  const blob = join(cache, "models--test-org--xlmr-tiny", "blobs", sha256Hex(st));
  try {
    // Tampered bytes (same size, metadata unchanged): refused, nothing kept.
    const bad = st.slice();
    bad[bad.length - 5] ^= 1;
    hub.tamper.set(`${REPO}/model.safetensors`, bad);
    await rejects(
      resolveModel(REPO, o),
      /test-org\/xlmr-tiny@main: model\.safetensors: the downloaded file's sha256 [0-9a-f]{64} differs from the Hub's/,
    );
    await Deno.stat(blob).then(() => ok(false, "blob kept"), () => {});
    await Deno.stat(`${blob}.incomplete`).then(() => ok(false, "partial kept"), () => {});
    hub.tamper.clear();

    // Dropped connection after 1 MiB: the partial file stays, the next run asks for the rest.
    const cut = 1 << 20;
    hub.cutAfter.set(`${REPO}/model.safetensors`, cut);
    await rejects(
      resolveModel(REPO, o),
      /model\.safetensors: download interrupted .*run again to resume/,
    );
    equal((await Deno.stat(`${blob}.incomplete`)).size, cut);
    const src = await resolveModel(REPO, o);
    const gets = hub.log.filter((r) => r.method === "GET" && r.path.endsWith("model.safetensors"));
    equal(gets.at(-1)?.range, `bytes=${cut}-`, "resumed with Range");
    deepEqual(await Deno.readFile(join(src.dir, "model.safetensors")), st);
    await Deno.stat(`${blob}.incomplete`).then(() => ok(false, "partial left"), () => {});
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a local folder of the same name wins over the Hub", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    await Deno.mkdir(join(dir, "test-org/xlmr-tiny"), { recursive: true });
    Deno.chdir(dir);
    const src = await resolveModel(REPO, { endpoint: "http://127.0.0.1:9", offline: false });
    equal(src.kind, "local");
    equal(src.dir, REPO);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sharded safetensors: the index and every shard it names, offline too", async () => {
  const tmp = await Deno.makeTempDir();
  const st = await SafetensorsFile.open(join(FIXTURES, "xlmr-tiny/model/model.safetensors"));
  const names = [...st.tensors.keys()].sort();
  const half = Math.ceil(names.length / 2);
  const weightMap: Record<string, string> = {};
  for (const [k, part] of [names.slice(0, half), names.slice(half)].entries()) {
    const file = `model-0000${k + 1}-of-00002.safetensors`;
    const tensors = [];
    for (const n of part) {
      tensors.push({ name: n, shape: [...st.tensors.get(n)!.shape], data: await st.readF32(n) });
      weightMap[n] = file;
    }
    await writeSafetensors(join(tmp, file), tensors);
  }
  st.close();
  const files: Record<string, Uint8Array> = {
    "config.json": await Deno.readFile(join(FIXTURES, "xlmr-tiny/model/config.json")),
    "tokenizer.json": await Deno.readFile(join(FIXTURES, "tokenizer/tokenizer.json")),
    "model.safetensors.index.json": new TextEncoder().encode(
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    ),
  };
  for (const f of new Set(Object.values(weightMap))) files[f] = await Deno.readFile(join(tmp, f));
  const hub = startHub({ "test-org/sharded": { commit: COMMIT, files } });
  const cache = join(tmp, "cache");
  try {
    const src = await resolveModel("test-org/sharded", {
      endpoint: hub.url,
      cacheDir: cache,
      ...quiet,
    });
    for (const f of Object.keys(files)) {
      deepEqual(await Deno.readFile(join(src.dir, f)), files[f], f);
    }
  } finally {
    await hub.close();
  }
  const off = await resolveModel("test-org/sharded", { cacheDir: cache, offline: true });
  equal(off.commit, COMMIT);
  // A missing shard is named offline.
  await Deno.remove(join(off.dir, "model-00002-of-00002.safetensors"));
  await rejects(
    resolveModel("test-org/sharded", { cacheDir: cache, offline: true }),
    /model-00002-of-00002\.safetensors missing/,
  );
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("a sentence-transformers repo: every module's files, the transformer in a subfolder too", async () => {
  const real = await readRepoFiles(join(FIXTURES, "bert-tiny/st-model"));
  // As found on the Hub today (transformer at the root) and in older repos (0_Transformer/).
  const moved: Record<string, Uint8Array> = {};
  const modules = JSON.parse(new TextDecoder().decode(real["modules.json"])) as {
    path: string;
    type: string;
  }[];
  for (const [p, b] of Object.entries(real)) {
    moved[
      p.includes("/") || p === "modules.json" || p.startsWith("config_sentence")
        ? p
        : `0_Transformer/${p}`
    ] = b;
  }
  modules[0].path = "0_Transformer";
  moved["modules.json"] = new TextEncoder().encode(JSON.stringify(modules));
  moved["0_Transformer/pytorch_model.bin"] = new Uint8Array(10);
  const hub = startHub({
    "test-org/st": { commit: COMMIT, files: real },
    "test-org/st-old": { commit: COMMIT, files: moved },
  });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  try {
    for (const [repo, files] of [["test-org/st", real], ["test-org/st-old", moved]] as const) {
      const src = await resolveModel(repo, { endpoint: hub.url, cacheDir: cache, ...quiet });
      for (const f of Object.keys(files)) {
        if (f.endsWith(".bin")) continue;
        deepEqual(await Deno.readFile(join(src.dir, f)), files[f], `${repo}: ${f}`);
      }
      const st = await readSentenceTransformers(src.dir);
      equal(st?.dense.length, 1, repo);
      equal(st?.normalize, true, repo);
      const off = await resolveModel(repo, { cacheDir: cache, offline: true });
      equal(off.dir, src.dir);
    }
    ok(!hub.log.some((r) => r.path.endsWith(".bin")), "no .bin fetched");
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("gated repos and bad tokens: errors say what to do", async () => {
  const files = await repoFiles();
  const hub = startHub({ "test-org/gated": { commit: COMMIT, files, gatedToken: "hf_ok" } });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  const o = { endpoint: hub.url, cacheDir: cache, ...quiet };
  try {
    await rejects(
      resolveModel("test-org/gated", o),
      /test-org\/gated@main: config\.json: access denied \(HTTP 403 GatedRepo\): the repo is private or gated: set HF_TOKEN/,
    );
    await rejects(
      resolveModel("test-org/gated", { ...o, token: "hf_other" }),
      /access denied .*HF_TOKEN has no access to this repo/,
    );
    await rejects(resolveModel("test-org/gated", { ...o, token: "abc" }), /HF_TOKEN: .*hf_/);
    equal((await resolveModel("test-org/gated", { ...o, token: "hf_ok" })).commit, COMMIT);
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("one download per blob: concurrent resolves wait for it, a dead holder's lock is taken over", async () => {
  const files = await repoFiles();
  const hub = startHub({ [REPO]: { commit: COMMIT, files } });
  const cache = await Deno.makeTempDir({ prefix: "hf_cache_" });
  const o = { endpoint: hub.url, cacheDir: cache, ...quiet };
  try {
    // A lock left by a process that is gone.
    const child = new Deno.Command("sleep", { args: ["0"] }).spawn();
    await child.status;
    const blobs = join(cache, "models--test-org--xlmr-tiny", "blobs");
    await Deno.mkdir(blobs, { recursive: true });
    const st = sha256Hex(files["model.safetensors"]);
    await Deno.writeTextFile(join(blobs, `${st}.lock`), JSON.stringify({ pid: child.pid }));
    const [a, b] = await Promise.all([resolveModel(REPO, o), resolveModel(REPO, o)]);
    equal(a.dir, b.dir);
    const full = hub.log.filter((r) =>
      r.method === "GET" && r.path.endsWith("/model.safetensors") && r.range !== "bytes=0-0"
    );
    equal(full.length, 1, "the weights were downloaded once");
    deepEqual(await Deno.readFile(join(a.dir, "model.safetensors")), files["model.safetensors"]);
    const left = (await Array.fromAsync(Deno.readDir(blobs))).filter((e) =>
      e.name.endsWith(".lock")
    );
    deepEqual(left, [], "no lock left");
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});
