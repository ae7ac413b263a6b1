/** Extended check: all eleven XQuAD-R languages (the default suite loads the six in the repo). */
import { equal } from "node:assert/strict";
import { join } from "node:path";
import { loadQaData } from "../../training/data.ts";
import { assertXquadR, XQUAD_R_CANDIDATES } from "../eval/_xquad_r.ts";
import { sharedDir } from "./_shared.ts";

const dir = join(sharedDir(), "data/xquad-r");

Deno.test("full XQuAD-R: 11 languages, 1190 questions each, the published candidate counts", async () => {
  await assertXquadR(dir, Object.keys(XQUAD_R_CANDIDATES));
});

Deno.test("full XQuAD-R: training items carry an answer in all 11 languages", async () => {
  const data = await loadQaData(dir);
  equal(data.items.length, 1190);
  for (const item of data.items) equal(Object.keys(item.answer).length, 11, item.id);
});

Deno.test("the in-repo XQuAD-R languages parse to exactly the shared originals", async () => {
  const mine = new URL("../fixtures/xquad-r/", import.meta.url).pathname;
  for await (const e of Deno.readDir(mine)) {
    if (!e.name.endsWith(".json")) continue;
    const a = await Deno.readTextFile(join(mine, e.name));
    const b = await Deno.readTextFile(join(dir, e.name));
    equal(JSON.stringify(JSON.parse(a)), JSON.stringify(JSON.parse(b)), e.name);
  }
});
