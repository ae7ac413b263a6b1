/**
 * `--dataset xquad-r` / `mlqa-r` against a static local server standing in for the LAReQA
 * repository: download, pinned sha256, cache, offline, tampered files refused with nothing written.
 */
import { deepEqual, equal, match, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import {
  LAREQA_COMMIT,
  NAMED_DATASETS,
  type NamedDataset,
  resolveDataset,
} from "../../eval/named_datasets.ts";
import { loadLareqa } from "../../eval/lareqa.ts";

import { staticServer } from "../_static_server.ts";

const XQUAD = fileURLToPath(new URL("../fixtures/xquad-r/", import.meta.url));
const LANGS = ["ar", "de", "en", "hi", "tr", "zh"];

/** A mirror folder holding `xquad-r/<lang>.json` copies of the fixtures; their hashes. */
async function mirror(): Promise<{ root: string; table: Record<string, NamedDataset> }> {
  const root = await Deno.makeTempDir({ prefix: "lareqa_mirror_" });
  await Deno.mkdir(join(root, "xquad-r"));
  const sha256: Record<string, string> = {};
  for (const l of LANGS) {
    const bytes = await Deno.readFile(join(XQUAD, `${l}.json`));
    await Deno.writeFile(join(root, "xquad-r", `${l}.json`), bytes);
    sha256[l] = createHash("sha256").update(bytes).digest("hex");
  }
  return {
    root,
    table: { "xquad-r": { name: "xquad-r", sha256, licence: "CC BY-SA 4.0 (test)" } },
  };
}

Deno.test("the pinned table: 11 XQuAD-R and 7 MLQA-R files at one commit", () => {
  equal(LAREQA_COMMIT, "354d67d1cd066854cdfbf5ad0e6105528976141d");
  deepEqual(
    Object.keys(NAMED_DATASETS["xquad-r"].sha256).sort(),
    ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"],
  );
  deepEqual(Object.keys(NAMED_DATASETS["mlqa-r"].sha256).sort(), [
    "ar",
    "de",
    "en",
    "es",
    "hi",
    "vi",
    "zh",
  ]);
  equal(
    NAMED_DATASETS["mlqa-r"].sha256.en,
    "fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4",
  );
  for (const d of Object.values(NAMED_DATASETS)) {
    for (const h of Object.values(d.sha256)) match(h, /^[0-9a-f]{64}$/);
  }
});

Deno.test("a named dataset downloads, verifies, caches, prints its licence once, works offline", async () => {
  const { root, table } = await mirror();
  const cache = await Deno.makeTempDir({ prefix: "lareqa_cache_" });
  const server = staticServer(root);
  const msgs: string[] = [];
  const o = {
    baseUrl: server.url,
    cacheDir: cache,
    datasets: table,
    log: (m: string) => msgs.push(m),
  };
  try {
    const src = await resolveDataset("xquad-r", { ...o, offline: false });
    equal(src.kind, "named");
    equal(src.dir, join(cache, LAREQA_COMMIT, "xquad-r"));
    deepEqual(src.sha256, table["xquad-r"].sha256);
    deepEqual(server.log.sort(), LANGS.map((l) => `/xquad-r/${l}.json`));
    equal(msgs.filter((m) => m.startsWith("licence: CC BY-SA 4.0")).length, 1);
    const set = await loadLareqa(src.dir, { langs: ["en", "de"] });
    const local = await loadLareqa(XQUAD, { langs: ["en", "de"] });
    deepEqual(set.byLanguage.en.questions, local.byLanguage.en.questions);
    // Cached: no request, no licence again.
    const n = server.log.length;
    msgs.length = 0;
    await resolveDataset("xquad-r", { ...o, offline: false });
    equal(server.log.length, n);
    equal(msgs.length, 0);
  } finally {
    await server.close();
  }
  // Offline with the server gone: the verified cache serves.
  const off = await resolveDataset("xquad-r", { ...o, offline: true });
  equal(off.dir, join(cache, LAREQA_COMMIT, "xquad-r"));
  // Offline and not cached: names what is missing.
  await rejects(
    resolveDataset("xquad-r", { ...o, cacheDir: join(cache, "empty"), offline: true }),
    /HF_HUB_OFFLINE=1: --dataset xquad-r is not fully cached: .*ar\.json/,
  );
  await rejects(
    resolveDataset("xquad-r", { ...o, langs: ["xx"], offline: true }),
    /--dataset xquad-r: no language xx; available: ar, de, en, hi, tr, zh/,
  );
  await rejects(
    resolveDataset("nope-r", o),
    /--dataset nope-r: no such folder, and not a named dataset/,
  );
  await Deno.remove(root, { recursive: true });
  await Deno.remove(cache, { recursive: true });
});

Deno.test("a tampered file is refused: the hash differs, nothing is written", async () => {
  const { root, table } = await mirror();
  const cache = await Deno.makeTempDir({ prefix: "lareqa_cache_" });
  // One byte changed in de.json.
  const de = join(root, "xquad-r", "de.json");
  const bytes = await Deno.readFile(de);
  bytes[100] ^= 1;
  await Deno.writeFile(de, bytes);
  const server = staticServer(root);
  try {
    await rejects(
      resolveDataset("xquad-r", {
        baseUrl: server.url,
        cacheDir: cache,
        datasets: table,
        langs: ["de"],
        offline: false,
        log: () => {},
      }),
      /\/xquad-r\/de\.json: sha256 [0-9a-f]{64} differs from the pinned [0-9a-f]{64} .*nothing was written/,
    );
    deepEqual(await Array.fromAsync(Deno.readDir(cache)), [], "nothing written");
    // The product's own table refuses the re-serialised fixtures too (their hashes differ from the
    // pinned originals), again writing nothing.
    await rejects(
      resolveDataset("xquad-r", {
        baseUrl: server.url,
        cacheDir: cache,
        langs: ["en"],
        offline: false,
        log: () => {},
      }),
      /en\.json: sha256 .* differs from the pinned 7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe/,
    );
    deepEqual(await Array.fromAsync(Deno.readDir(cache)), [], "nothing written");
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a local folder named like the dataset wins", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    await Deno.mkdir(join(dir, "xquad-r"));
    Deno.chdir(dir);
    const src = await resolveDataset("xquad-r", { baseUrl: "http://127.0.0.1:9", offline: false });
    equal(src.kind, "local");
    equal(src.dir, "xquad-r");
    equal(src.sha256, undefined);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});
