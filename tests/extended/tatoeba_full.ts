/**
 * Extended check: `--dataset tatoeba` against a static stand-in for LASER's `data/tatoeba/v1/`
 * that serves the team's original files, so all 224 sha256 values pinned in
 * eval/tatoeba_named.ts are checked for real; `eval --dataset tatoeba` through
 * `TATOEBA_BASE_URL` then gives the numbers of the local folder, again offline from the cache.
 */
import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveTatoeba, TATOEBA_SHA256 } from "../../eval/tatoeba_named.ts";
import { runCli as cli, sharedDir } from "./_shared.ts";
import { staticServer as serve } from "../_static_server.ts";

const DATA = join(sharedDir(), "data", "tatoeba");
const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

Deno.test({
  name: "tatoeba: the 224 pinned sha256 match the originals; eval by name equals the local folder",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "tatoeba_full_" });
    const server = serve(DATA);
    const env = { TATOEBA_BASE_URL: server.url, XDG_CACHE_HOME: join(tmp, "xdg") };
    const args = [
      "eval",
      "--model",
      join(FIXTURES, "xlmr-tiny/model"),
      "--tokenizer",
      join(FIXTURES, "tokenizer"),
      "--langs",
      "deu,swh,cmn",
      "--limit-questions",
      "20",
      "--max-length",
      "32",
    ];
    let named;
    try {
      const msgs: string[] = [];
      const src = await resolveTatoeba("tatoeba", {
        baseUrl: server.url,
        cacheDir: join(tmp, "lib"),
        offline: false,
        log: (m) => msgs.push(m),
      });
      const want: Record<string, string> = {};
      for (const [l, [a, b]] of Object.entries(TATOEBA_SHA256)) {
        want[`tatoeba.${l}-eng.${l}`] = a;
        want[`tatoeba.${l}-eng.eng`] = b;
      }
      equal(Object.keys(src!.sha256!).length, 224);
      deepEqual(src!.sha256, want);
      equal(msgs.filter((m) => m.startsWith("licence:")).length, 1);
      const r = await cli(env, ...args, "--dataset", "tatoeba", "--out", join(tmp, "named.json"));
      equal(r.code, 0, r.stderr);
      named = JSON.parse(await Deno.readTextFile(join(tmp, "named.json")));
    } finally {
      await server.close();
    }
    const l = await cli({}, ...args, "--dataset", DATA, "--out", join(tmp, "l.json"));
    equal(l.code, 0, l.stderr);
    const local = JSON.parse(await Deno.readTextFile(join(tmp, "l.json")));
    deepEqual(named.accuracy, local.accuracy);
    deepEqual(named.provenance.dataset.sha256, local.provenance.dataset.sha256);
    const off = await cli(
      { ...env, HF_HUB_OFFLINE: "1" },
      ...args,
      "--dataset",
      "tatoeba",
      "--out",
      join(tmp, "off.json"),
    );
    equal(off.code, 0, off.stderr);
    deepEqual(JSON.parse(await Deno.readTextFile(join(tmp, "off.json"))).accuracy, local.accuracy);
    await Deno.remove(tmp, { recursive: true });
  },
});
