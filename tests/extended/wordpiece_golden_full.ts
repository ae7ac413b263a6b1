/**
 * Extended check: WordPiece on all 26,104 golden lines, cased and uncased, from tokenizer.json and
 * from vocab.txt + tokenizer_config.json (the default suite runs the 2,205-line in-repo subset),
 * and the in-repo bert-tiny fixtures byte for byte against the shared originals.
 */
import { equal } from "node:assert/strict";
import { join } from "node:path";
import { WordPieceTokenizer } from "../../model/wordpiece.ts";
import { assertGolden, readGolden } from "../model/_golden.ts";
import { sharedDir } from "./_shared.ts";

const dir = join(sharedDir(), "fixtures/bert-tiny");
const mine = new URL("../fixtures/bert-tiny/", import.meta.url).pathname;

for (const kind of ["cased", "uncased"]) {
  const lines = await readGolden(join(dir, `xquad_r_golden_${kind}.jsonl`));
  Deno.test(`full goldens: WordPiece ${kind} tokenizer.json on all 26,104 lines`, async () => {
    equal(lines.length, 26104);
    const tokDir = join(dir, `tokenizer-${kind}`);
    const json = JSON.parse(await Deno.readTextFile(join(tokDir, "tokenizer.json")));
    assertGolden(WordPieceTokenizer.fromTokenizerJson(json, "tokenizer.json"), lines, kind);
  });
  Deno.test(`full goldens: WordPiece ${kind} vocab.txt on all 26,104 lines`, async () => {
    assertGolden(
      await WordPieceTokenizer.fromVocabTxt(join(dir, `tokenizer-${kind}`)),
      lines,
      kind,
    );
  });
  Deno.test(`the in-repo ${kind} golden subset is an exact copy of its lines`, async () => {
    for (const g of await readGolden(join(mine, `golden_subset_${kind}.jsonl`))) {
      const full = lines[g.line! - 1];
      equal(JSON.stringify([g.text, g.input_ids]), JSON.stringify([full.text, full.input_ids]));
    }
  });
}

Deno.test("the in-repo bert-tiny fixtures are exact copies of the shared ones", async () => {
  const files: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(mine, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else if (!e.name.startsWith("golden_subset_")) files.push(p);
    }
  };
  await walk("");
  equal(files.length >= 25, true, `only ${files.length} files in ${mine}`);
  for (const f of files) {
    const a = await Deno.readFile(join(mine, f));
    const b = await Deno.readFile(join(dir, f));
    equal(a.length, b.length, f);
    equal(a.every((v, i) => v === b[i]), true, f);
  }
});
