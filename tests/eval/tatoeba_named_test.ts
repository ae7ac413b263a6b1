/**
 * `--dataset tatoeba` against a static local server standing in for LASER's `data/tatoeba/v1/`
 * (copies of the fixture subset, with an injected hash table): download, pinned sha256, cache,
 * licence once, offline, a tampered file refused with nothing written, a local folder winning,
 * and `eval --dataset tatoeba` through `TATOEBA_BASE_URL`.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import {
  resolveTatoeba,
  TATOEBA_BASE_URL,
  TATOEBA_COMMIT,
  TATOEBA_SHA256,
} from "../../eval/tatoeba_named.ts";
import { loadTatoeba } from "../../eval/tatoeba.ts";
import { staticServer } from "../_static_server.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TATOEBA = join(FIXTURES, "tatoeba");
const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const LANGS = ["ara", "cmn", "deu", "rus"];

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** A mirror folder holding copies of the fixture files; their hashes as a pinned table. */
async function mirror(): Promise<{ root: string; table: Record<string, [string, string]> }> {
  const root = await Deno.makeTempDir({ prefix: "tatoeba_mirror_" });
  const table: Record<string, [string, string]> = {};
  const hash = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  for (const l of LANGS) {
    const h: string[] = [];
    for (const side of [l, "eng"]) {
      const bytes = await Deno.readFile(join(TATOEBA, `tatoeba.${l}-eng.${side}`));
      await Deno.writeFile(join(root, `tatoeba.${l}-eng.${side}`), bytes);
      h.push(hash(bytes));
    }
    table[l] = [h[0], h[1]];
  }
  return { root, table };
}

Deno.test("the pinned Tatoeba table: 112 languages, two files each, at one LASER commit", () => {
  equal(TATOEBA_COMMIT, "74bc6ae7ffb7cba670fe0f428d0ede9f666fb821");
  match(TATOEBA_BASE_URL, /facebookresearch\/LASER\/74bc6ae7[0-9a-f]{32}\/data\/tatoeba\/v1$/);
  equal(Object.keys(TATOEBA_SHA256).length, 112);
  ok(["cmn", "deu", "swh", "zsm"].every((l) => l in TATOEBA_SHA256));
  // From the team's SHA256SUMS of the original files.
  deepEqual(TATOEBA_SHA256.afr, [
    "7bb9e073ad8422d6bfdec7c9ebdcef8ac486e72b237200e447923a8b921a0a56",
    "0b700c125efb4030b4cc50d9d765d5884afc24f39296f29b028a1b2a8512034f",
  ]);
  const all = Object.values(TATOEBA_SHA256).flat();
  for (const h of all) match(h, /^[0-9a-f]{64}$/);
  equal(new Set(all).size, 224);
});

Deno.test("tatoeba by name downloads, verifies, caches, prints its licence once, works offline", async () => {
  const { root, table } = await mirror();
  const cache = await Deno.makeTempDir({ prefix: "tatoeba_cache_" });
  const server = staticServer(root);
  const msgs: string[] = [];
  const o = {
    baseUrl: server.url,
    cacheDir: cache,
    sha256: table,
    log: (m: string) => msgs.push(m),
  };
  const dir = join(cache, TATOEBA_COMMIT, "tatoeba");
  try {
    const src = await resolveTatoeba("tatoeba", { ...o, offline: false });
    equal(src?.kind, "named");
    equal(src?.dir, dir);
    equal(src?.commit, TATOEBA_COMMIT);
    equal(Object.keys(src!.sha256!).length, 8);
    equal(src!.sha256!["tatoeba.deu-eng.eng"], table.deu[1]);
    deepEqual(
      server.log.sort(),
      LANGS.flatMap((l) => [`/tatoeba.${l}-eng.${l}`, `/tatoeba.${l}-eng.eng`]).sort(),
    );
    equal(
      msgs.filter((m) => m.startsWith("licence: Tatoeba") && m.includes("CC BY 2.0 FR")).length,
      1,
    );
    const set = await loadTatoeba(src!.dir);
    deepEqual(set.languages, LANGS);
    deepEqual(set.byLanguage.deu, {
      ...(await loadTatoeba(TATOEBA, { langs: ["deu"] })).byLanguage.deu,
      files: set.byLanguage.deu.files,
    });
    // Cached: no request, no licence again.
    const n = server.log.length;
    msgs.length = 0;
    await resolveTatoeba("tatoeba", { ...o, langs: ["deu"], offline: false });
    equal(server.log.length, n);
    equal(msgs.length, 0);
  } finally {
    await server.close();
  }
  equal((await resolveTatoeba("tatoeba", { ...o, offline: true }))?.dir, dir);
  await rejects(
    resolveTatoeba("tatoeba", { ...o, cacheDir: join(cache, "empty"), offline: true }),
    /HF_HUB_OFFLINE=1: --dataset tatoeba is not fully cached: .*tatoeba\.ara-eng\.ara/,
  );
  await rejects(
    resolveTatoeba("tatoeba", { ...o, langs: ["xxx"], offline: true }),
    /--dataset tatoeba: no language xxx; available: ara, cmn, deu, rus/,
  );
  // Not Tatoeba: left to the other loaders.
  equal(await resolveTatoeba("xquad-r", o), null);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(cache, { recursive: true });
});

Deno.test("a tampered Tatoeba file is refused: the hash differs, nothing is written", async () => {
  const { root, table } = await mirror();
  const cache = await Deno.makeTempDir({ prefix: "tatoeba_cache_" });
  const f = join(root, "tatoeba.deu-eng.deu");
  const bytes = await Deno.readFile(f);
  bytes[10] ^= 1;
  await Deno.writeFile(f, bytes);
  const server = staticServer(root);
  const o = { baseUrl: server.url, cacheDir: cache, offline: false, log: () => {} };
  try {
    await rejects(
      resolveTatoeba("tatoeba", { ...o, sha256: table, langs: ["deu"] }),
      /\/tatoeba\.deu-eng\.deu: sha256 [0-9a-f]{64} differs from the pinned [0-9a-f]{64} \(LASER commit 74bc6ae7.*nothing was written/,
    );
    deepEqual(await Array.fromAsync(Deno.readDir(cache)), [], "nothing written");
    // The product's own table refuses the fixture subset (200 of the original lines).
    await rejects(
      resolveTatoeba("tatoeba", { ...o, langs: ["cmn"] }),
      new RegExp(
        `tatoeba\\.cmn-eng\\.cmn: sha256 .* differs from the pinned ${TATOEBA_SHA256.cmn[0]}`,
      ),
    );
    deepEqual(await Array.fromAsync(Deno.readDir(cache)), [], "nothing written");
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a local folder named tatoeba wins", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    await Deno.mkdir(join(dir, "tatoeba"));
    await Deno.copyFile(
      join(TATOEBA, "tatoeba.deu-eng.deu"),
      join(dir, "tatoeba/tatoeba.deu-eng.deu"),
    );
    await Deno.copyFile(
      join(TATOEBA, "tatoeba.deu-eng.eng"),
      join(dir, "tatoeba/tatoeba.deu-eng.eng"),
    );
    Deno.chdir(dir);
    const src = await resolveTatoeba("tatoeba", { baseUrl: "http://127.0.0.1:9", offline: false });
    equal(src?.kind, "local");
    equal(src?.dir, "tatoeba");
    equal(src?.sha256, undefined);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "eval --dataset tatoeba downloads from TATOEBA_BASE_URL and refuses files off the pins",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The served fixture subset differs from the pinned originals, so the CLI must refuse it
    // before touching the GPU, writing nothing (the originals pass in tests/extended/).
    const tmp = await Deno.makeTempDir({ prefix: "tatoeba_eval_" });
    const { root } = await mirror();
    const server = staticServer(root);
    try {
      const o = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLI,
          "eval",
          "--model",
          join(FIXTURES, "xlmr-tiny/model"),
          "--dataset",
          "tatoeba",
          "--out",
          join(tmp, "named.json"),
          "--langs",
          "deu",
        ],
        env: { TATOEBA_BASE_URL: server.url, XDG_CACHE_HOME: join(tmp, "xdg"), NO_COLOR: "1" },
        cwd: tmp,
      }).output();
      const stderr = new TextDecoder().decode(o.stderr);
      equal(o.code, 1, stderr);
      match(
        stderr,
        /tatoeba\.deu-eng\.deu: sha256 .* differs from the pinned .*nothing was written/,
      );
      deepEqual(server.log, ["/tatoeba.deu-eng.deu"]);
      // Nothing under the cache but the folders other tools may create: no dataset file.
      const written: string[] = [];
      for await (const e of Deno.readDir(tmp)) written.push(e.name);
      deepEqual(written.filter((n) => n !== "xdg"), []);
      ok(!(await exists(join(tmp, "xdg", "xlmr-webgpu", "tatoeba"))));
    } finally {
      await server.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
