/**
 * WordPiece against Hugging Face: the in-repo golden subset (2,205 of 26,104 lines chosen by
 * tests/fixtures/_build_bert.ts) for the cased and the uncased tokenizer, each from tokenizer.json
 * and from vocab.txt + tokenizer_config.json; then each rule on hand-made text, and the errors.
 * `deno task test:full` checks all 26,104 lines (tests/extended/wordpiece_golden_full.ts).
 */
import { deepEqual, equal, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { bertNormalize, bertPreTokenize, WordPieceTokenizer } from "../../model/wordpiece.ts";
import { loadTokenizer } from "../../model/text_tokenizer.ts";
import { assertGolden, readGolden } from "./_golden.ts";

const FIX = new URL("../fixtures/bert-tiny/", import.meta.url).pathname;

for (const kind of ["cased", "uncased"]) {
  Deno.test(`WordPiece ${kind}: tokenizer.json and vocab.txt match the golden subset`, async () => {
    const lines = await readGolden(join(FIX, `golden_subset_${kind}.jsonl`));
    equal(lines.length, 2205);
    const dir = join(FIX, `tokenizer-${kind}`);
    const json = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json")));
    assertGolden(WordPieceTokenizer.fromTokenizerJson(json, "tokenizer.json"), lines, "json");
    assertGolden(await WordPieceTokenizer.fromVocabTxt(dir), lines, "vocab.txt");
    // A folder with only vocab.txt + tokenizer_config.json loads through loadTokenizer too.
    const only = await Deno.makeTempDir();
    for (const f of ["vocab.txt", "tokenizer_config.json"]) {
      await Deno.copyFile(join(dir, f), join(only, f));
    }
    const tok = await loadTokenizer(only);
    equal(tok.kind, "wordpiece");
    assertGolden(tok, lines.slice(0, 300), "vocab.txt via loadTokenizer");
  });
}

Deno.test("WordPiece: a BertProcessing post-processor gives the same ids as TemplateProcessing", async () => {
  const json = JSON.parse(
    await Deno.readTextFile(join(FIX, "tokenizer-cased/tokenizer.json")),
  );
  const lines = (await readGolden(join(FIX, "golden_subset_cased.jsonl"))).slice(0, 200);
  const bp = { type: "BertProcessing", sep: ["[SEP]", 3], cls: ["[CLS]", 2] };
  const tok = WordPieceTokenizer.fromTokenizerJson({ ...json, post_processor: bp }, "bp.json");
  assertGolden(tok, lines, "BertProcessing");
  deepEqual(tok.encodePairWithTypes("a", "b").typeIds, [0, 0, 0, 1, 1]);
});

const CASED = { cleanText: true, handleChineseChars: true, stripAccents: null, lowercase: false };
const UNCASED = { ...CASED, lowercase: true };

Deno.test("BertNormalizer: clean_text, CJK spacing, NFD accent stripping, per-character lowercase", () => {
  // NUL, U+FFFD and category C (here U+200B, Cf; U+0007, Cc) go; \t \n \r and U+00A0 become spaces.
  equal(bertNormalize("a\u0000b\ufffdc\u200bd\te\u0007f\u00a0g\r\nh", CASED), "abcd ef g  h");
  equal(bertNormalize("中文ab㐀", CASED), " 中  文 ab 㐀 ");
  // Hiragana and Hangul are not in the CJK ideograph blocks.
  equal(bertNormalize("ひら한", CASED), "ひら한");
  // strip_accents follows lowercase when null; İ → I + U+0307 (Mn, dropped) → i.
  equal(bertNormalize("Ἑλλάς Café İ", UNCASED), "ελλας cafe i");
  equal(bertNormalize("Ἑλλάς Café", CASED), "Ἑλλάς Café");
  equal(bertNormalize("Café", { ...UNCASED, stripAccents: false }), "café");
  equal(bertNormalize("Café", { ...CASED, stripAccents: true }), "Cafe");
  // Rust's char::to_lowercase has no final-sigma rule.
  equal(bertNormalize("ΟΔΟΣ", { ...UNCASED, stripAccents: false }), "οδοσ");
});

Deno.test("BertPreTokenizer: whitespace splits, ASCII symbols and Unicode punctuation isolated", () => {
  deepEqual(bertPreTokenize("a$b, c¿d «e» f\u3000g"), [
    "a",
    "$",
    "b",
    ",",
    "c",
    "¿",
    "d",
    "«",
    "e",
    "»",
    "f",
    "g",
  ]);
  // Category S outside ASCII (€, ©) is not punctuation.
  deepEqual(bertPreTokenize("5€ ©x"), ["5€", "©x"]);
});

const VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "ab", "##c", "x", "."];

Deno.test("WordPiece: longest match first, whole word [UNK], 100-character limit, specials", () => {
  const tok = WordPieceTokenizer.fromVocab(VOCAB);
  deepEqual(tok.tokenize("abc"), [7, 8]);
  deepEqual(tok.tokenize("abbc"), [7, 6, 8]);
  deepEqual(tok.tokenize("abz x"), [1, 9]); // no piece for "z": the whole word is [UNK]
  deepEqual(tok.tokenize("a" + "b".repeat(99)), [7, ...new Array(98).fill(6)]); // 100 characters
  deepEqual(tok.tokenize("a" + "b".repeat(100) + "."), [1, 10]); // 101 characters
  // Special tokens written in the text are kept whole (matched before normalisation).
  deepEqual(tok.encode("a [SEP] x [MASK]"), [2, 5, 3, 9, 4, 3]);
  deepEqual(tok.encode("A [sep]"), [2, 5, 1, 1, 1, 3]);
  equal(tok.decode(tok.encode("abbc x")), "abbc x");
});

Deno.test("WordPiece pairs: [CLS] A [SEP] B [SEP] with type 1 for B, longest-first truncation", () => {
  const tok = WordPieceTokenizer.fromVocab(VOCAB);
  deepEqual(tok.encodePairWithTypes("a a", "x"), {
    ids: [2, 5, 5, 3, 9, 3],
    typeIds: [0, 0, 0, 0, 1, 1],
  });
  deepEqual(tok.encodePair("a a a a", "x x", 7), [2, 5, 5, 3, 9, 9, 3]);
  deepEqual(tok.encode("a a a", 4), [2, 5, 5, 3]);
  throws(() => tok.encodePair("a", "x", 2), /encodePair: maxLength must be an integer ≥ 3/);
});

Deno.test("WordPiece: bad files fail naming the file and the field", async () => {
  const good = JSON.parse(await Deno.readTextFile(join(FIX, "tokenizer-cased/tokenizer.json")));
  throws(
    () =>
      WordPieceTokenizer.fromTokenizerJson(
        { ...good, model: { ...good.model, type: "BPE" } },
        "t.json",
      ),
    /t.json: model.type "BPE" is not "WordPiece"/,
  );
  throws(
    () => WordPieceTokenizer.fromTokenizerJson({ ...good, normalizer: { type: "NFKC" } }, "t.json"),
    /t.json: normalizer "NFKC" is not supported/,
  );
  throws(
    () =>
      WordPieceTokenizer.fromTokenizerJson(
        { ...good, model: { ...good.model, unk_token: "<unk>" } },
        "t.json",
      ),
    /t.json: unk_token "<unk>" is not in the vocabulary/,
  );
  throws(
    () =>
      WordPieceTokenizer.fromTokenizerJson(
        { ...good, model: { ...good.model, vocab: { a: 0, b: 5 } } },
        "t.json",
      ),
    /t.json: model.vocab\["b"\] = 5 is not an id/,
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "vocab.txt"), new Uint8Array([0x61, 0xff, 0x0a]));
  await rejects(WordPieceTokenizer.fromVocabTxt(dir), /vocab.txt: not valid UTF-8/);
  await Deno.writeTextFile(join(dir, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "{oops");
  await rejects(WordPieceTokenizer.fromVocabTxt(dir), /tokenizer_config.json: not valid JSON/);
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), '{"do_lower_case": "yes"}');
  await rejects(WordPieceTokenizer.fromVocabTxt(dir), /tokenizer_config.json: do_lower_case must/);
  await Deno.writeTextFile(join(dir, "vocab.txt"), "[PAD]\n[CLS]\n[SEP]\n");
  await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "{}");
  await rejects(WordPieceTokenizer.fromVocabTxt(dir), /vocab.txt: unk_token "\[UNK\]" is not/);
  await rejects(loadTokenizer(join(dir, "none")), /no tokenizer.json, vocab.txt or sentencepiece/);
});
