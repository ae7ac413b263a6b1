/**
 * Extended check: `--dataset xquad-r` against a static stand-in for the LAReQA repository that
 * serves the team's original files, so the sha256 values pinned in eval/named_datasets.ts are
 * checked for real; the CLI then gives the numbers of the local folder, again offline.
 */
import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NAMED_DATASETS, resolveDataset } from "../../eval/named_datasets.ts";
import { runCli as cli, sharedDir } from "./_shared.ts";
import { staticServer as serve } from "../_static_server.ts";

const DATA = join(sharedDir(), "data");
const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

Deno.test({
  name:
    "xquad-r: the pinned sha256 of all 11 files match the originals; eval equals the local folder",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "named_full_" });
    const server = serve(DATA);
    const env = { LAREQA_BASE_URL: server.url, XDG_CACHE_HOME: join(tmp, "xdg") };
    const args = [
      "eval",
      "--model",
      join(FIXTURES, "xlmr-tiny/model"),
      "--tokenizer",
      join(FIXTURES, "tokenizer"),
      "--langs",
      "en,de,el",
      "--limit-questions",
      "10",
      "--max-length",
      "32",
    ];
    let named;
    try {
      const src = await resolveDataset("xquad-r", {
        baseUrl: server.url,
        cacheDir: join(tmp, "lib"),
        offline: false,
        log: () => {},
      });
      deepEqual(src.sha256, NAMED_DATASETS["xquad-r"].sha256);
      const r = await cli(env, ...args, "--dataset", "xquad-r", "--out", join(tmp, "named.json"));
      equal(r.code, 0, r.stderr);
      named = JSON.parse(await Deno.readTextFile(join(tmp, "named.json")));
    } finally {
      await server.close();
    }
    const l = await cli(
      {},
      ...args,
      "--dataset",
      join(DATA, "xquad-r"),
      "--out",
      join(tmp, "l.json"),
    );
    equal(l.code, 0, l.stderr);
    const local = JSON.parse(await Deno.readTextFile(join(tmp, "l.json")));
    deepEqual(named.map, local.map);
    deepEqual(named.provenance.dataset.sha256, local.provenance.dataset.sha256);
    const off = await cli(
      { ...env, HF_HUB_OFFLINE: "1" },
      ...args,
      "--dataset",
      "xquad-r",
      "--out",
      join(tmp, "off.json"),
    );
    equal(off.code, 0, off.stderr);
    deepEqual(JSON.parse(await Deno.readTextFile(join(tmp, "off.json"))).map, local.map);
    await Deno.remove(tmp, { recursive: true });
  },
});
