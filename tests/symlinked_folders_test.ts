/**
 * Folders made of symlinks, as a Hugging Face cache snapshot is (every file a link to a blob):
 * training data, Tatoeba and dataset provenance read the files behind the links.
 */
import { deepEqual, equal } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { folderProvenance } from "../cli/provenance.ts";
import { loadTatoeba } from "../eval/tatoeba.ts";
import { loadQaData } from "../training/data.ts";
import { sha256File } from "../model/hub.ts";

const FIXTURES = fileURLToPath(new URL("fixtures/", import.meta.url));

/** A folder whose entries are symlinks to `files` of `from` (and a linked subfolder). */
async function linked(from: string, files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const f of files) await Deno.symlink(join(from, f), join(dir, f));
  return dir;
}

Deno.test("training data, Tatoeba and provenance read folders of symlinks", async () => {
  const xquad = join(FIXTURES, "xquad-r");
  const qa = await linked(xquad, ["de.json", "en.json"]);
  const viaLinks = await loadQaData(qa, { langs: ["de", "en"] });
  const direct = await loadQaData(xquad, { langs: ["de", "en"] });
  deepEqual(viaLinks.items, direct.items);

  const tatoeba = join(FIXTURES, "tatoeba");
  const tt = await linked(tatoeba, ["tatoeba.deu-eng.deu", "tatoeba.deu-eng.eng"]);
  const [viaLink, real] = [await loadTatoeba(tt), await loadTatoeba(tatoeba)];
  deepEqual(viaLink.languages, ["deu"]);
  deepEqual(viaLink.byLanguage.deu.src, real.byLanguage.deu.src);
  deepEqual(viaLink.byLanguage.deu.eng, real.byLanguage.deu.eng);

  await Deno.symlink(tatoeba, join(qa, "sub")); // a linked folder is walked too
  const p = (await folderProvenance(qa)).sha256 as Record<string, string>;
  equal(p["de.json"], await sha256File(join(xquad, "de.json")));
  equal(p["sub/tatoeba.deu-eng.deu"], await sha256File(join(tatoeba, "tatoeba.deu-eng.deu")));
  for (const d of [qa, tt]) await Deno.remove(d, { recursive: true });
});
