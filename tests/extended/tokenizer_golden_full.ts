/** Extended check: all 26,104 golden lines (the default suite runs the in-repo subset). */
import { equal } from "node:assert/strict";
import { join } from "node:path";
import { XlmrTokenizer } from "../../model/tokenizer.ts";
import { assertGolden, readGolden } from "../model/_golden.ts";
import { sharedDir } from "./_shared.ts";

const dir = join(sharedDir(), "fixtures/tokenizer");
const lines = await readGolden(join(dir, "xquad_r_golden.jsonl"));

Deno.test("full goldens: tokenizer.json matches real SentencePiece on all 26,104 lines", async () => {
  equal(lines.length, 26104);
  const json = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json")));
  assertGolden(XlmrTokenizer.fromTokenizerJson(json, "tokenizer.json"), lines, "tokenizer.json");
});

Deno.test("full goldens: the .model matches real SentencePiece on all 26,104 lines", async () => {
  const bytes = await Deno.readFile(join(dir, "xlmr_style_16k.model"));
  const tok = XlmrTokenizer.fromSentencePieceModel(bytes, "xlmr_style_16k.model");
  assertGolden(tok, lines, "xlmr_style_16k.model");
});

Deno.test("the in-repo fixtures are exact copies of the shared ones", async () => {
  const mine = new URL("../fixtures/", import.meta.url).pathname;
  const subset = await readGolden(join(mine, "tokenizer/golden_subset.jsonl"));
  for (const g of subset) {
    const full = lines[g.line! - 1];
    equal(JSON.stringify([g.text, g.input_ids]), JSON.stringify([full.text, full.input_ids]));
  }
  const files = [
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/xlmr_style_16k.model",
    "xlmr-tiny/model/model.safetensors",
    "xlmr-tiny/model/config.json",
    "xlmr-tiny/model_after.safetensors",
    "xlmr-tiny/embed_expected.json",
    "xlmr-tiny/train_expected.json",
    "xlmr-tiny/eval_expected.json",
    "xlmr-tiny/pairs.jsonl",
    "xlmr-tiny/batches.jsonl",
  ];
  for (const f of files) {
    const a = await Deno.readFile(join(mine, f));
    const b = await Deno.readFile(join(sharedDir(), "fixtures", f));
    equal(a.length, b.length, f);
    equal(a.every((v, i) => v === b[i]), true, f);
  }
});
