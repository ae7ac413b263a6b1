import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { XlmrTokenizer } from "../../model/tokenizer.ts";
import { tokenizeCommand } from "../../cli/tokenize.ts";
import { rng } from "../_helpers.ts";
import { assertGolden, type Golden, readGolden } from "./_golden.ts";

const FIXTURE = new URL("../fixtures/tokenizer/", import.meta.url).pathname;

let golden: Golden[] | null = null;
/** The in-repo subset of the golden lines (see tests/fixtures/README.md for how it was chosen). */
async function goldenLines(): Promise<Golden[]> {
  golden ??= await readGolden(`${FIXTURE}golden_subset.jsonl`);
  equal(golden.length, 2760, "golden_subset.jsonl line count");
  return golden;
}

async function fixtureJson(): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(`${FIXTURE}tokenizer.json`));
}

/** A minimal protobuf writer for hand-made SentencePiece models. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function field(num: number, bytes: number[]): number[] {
  return [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
}
function spmPiece(piece: string, score: number, type?: number): number[] {
  const f = new Uint8Array(new Float32Array([score]).buffer);
  const body = [...field(1, [...new TextEncoder().encode(piece)]), (2 << 3) | 5, ...f];
  if (type !== undefined) body.push(3 << 3, type);
  return field(1, body);
}
function spmModel(pieces: number[][], trainer: number[] = []): Uint8Array {
  return Uint8Array.from([...pieces.flat(), ...(trainer.length ? field(2, trainer) : [])]);
}
const LAYOUT = [spmPiece("<unk>", 0, 2), spmPiece("<s>", 0, 3), spmPiece("</s>", 0, 3)];

Deno.test("tokenizer.json reproduces the golden XQuAD-R subset of real SentencePiece", async () => {
  const tok = XlmrTokenizer.fromTokenizerJson(await fixtureJson(), "tokenizer.json");
  deepEqual(
    [tok.vocabSize, tok.bosId, tok.padId, tok.eosId, tok.unkId, tok.maskId],
    [16002, 0, 1, 2, 3, 16001],
  );
  assertGolden(tok, await goldenLines(), "tokenizer.json");
});

Deno.test("sentencepiece .model reproduces the golden XQuAD-R subset with the fairseq id shift", async () => {
  const bytes = await Deno.readFile(`${FIXTURE}xlmr_style_16k.model`);
  const tok = XlmrTokenizer.fromSentencePieceModel(bytes, "xlmr_style_16k.model");
  deepEqual(
    [tok.vocabSize, tok.bosId, tok.padId, tok.eosId, tok.unkId, tok.maskId],
    [16002, 0, 1, 2, 3, 16001],
  );
  equal(tok.idToPiece(4), "\u2581");
  equal(tok.idToPiece(16001), "<mask>");
  assertGolden(tok, await goldenLines(), "xlmr_style_16k.model");
});

Deno.test("the .model and tokenizer.json give the identical Hugging Face tokenizer.json", async () => {
  const fixture = await fixtureJson();
  const fromJson = XlmrTokenizer.fromTokenizerJson(fixture, "tokenizer.json");
  const fromModel = XlmrTokenizer.fromSentencePieceModel(
    await Deno.readFile(`${FIXTURE}xlmr_style_16k.model`),
    "model",
  );
  deepEqual(fromJson.toJson(), fixture);
  deepEqual(fromModel.toJson(), fixture);
});

Deno.test("toJson is read back by fromTokenizerJson to a tokenizer with the same ids", async () => {
  const tok = XlmrTokenizer.fromTokenizerJson(await fixtureJson(), "tokenizer.json");
  const again = XlmrTokenizer.fromTokenizerJson(JSON.parse(JSON.stringify(tok.toJson())), "rt");
  deepEqual(again.toJson(), tok.toJson());
  assertGolden(again, await goldenLines(), "round trip", 7);
  const small = XlmrTokenizer.fromVocab([["▁ab", -1.5], ["a", -2], ["b", -2.25], ["▁", -3]]);
  const back = XlmrTokenizer.fromTokenizerJson(small.toJson(), "small");
  deepEqual(back.toJson(), small.toJson());
  equal((small.toJson() as { normalizer: unknown }).normalizer, null);
  for (const t of ["ab", "ba ab", " ab", "a  b ", "", "abc"]) {
    deepEqual(back.encode(t), small.encode(t));
  }
});

Deno.test("fromDir loads tokenizer.json, or else sentencepiece.bpe.model", async () => {
  const a = await XlmrTokenizer.fromDir(FIXTURE);
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(`${FIXTURE}xlmr_style_16k.model`, `${dir}/sentencepiece.bpe.model`);
  const b = await XlmrTokenizer.fromDir(dir);
  const text = "  Wie  heißt ﬁ  Ｔｏｋｙｏ ? ";
  deepEqual(a.encode(text), b.encode(text));
  await rejects(
    XlmrTokenizer.fromDir(`${dir}/none`),
    /no tokenizer.json or sentencepiece.bpe.model/,
  );
  await Deno.writeTextFile(`${dir}/tokenizer.json`, "{");
  await rejects(XlmrTokenizer.fromDir(dir), /tokenizer.json: not valid JSON/);
});

Deno.test("normalisation trims, folds whitespace, applies NFKC and adds the dummy prefix", async () => {
  const tok = XlmrTokenizer.fromTokenizerJson(await fixtureJson(), "tokenizer.json");
  equal(tok.normalize("  hello   world  "), "\u2581hello\u2581world");
  equal(tok.normalize("ﬁ Ａ①"), "\u2581fi\u2581A1");
  equal(tok.normalize("a\tb\u3000c"), "\u2581a\u2581b\u2581c");
  equal(tok.normalize(""), "");
  equal(tok.normalize("   "), "");
  deepEqual(tok.encode("   "), [0, 2]);
  deepEqual(tok.encode("Hello? "), tok.encode("Hello?"));
});

Deno.test("encode truncates to maxLength and keeps the closing </s>", async () => {
  const tok = XlmrTokenizer.fromTokenizerJson(await fixtureJson(), "tokenizer.json");
  const text = (await goldenLines())[0].text;
  const full = tok.encode(text);
  ok(full.length > 20);
  for (const max of [2, 3, 10, 20, full.length, full.length + 5]) {
    const cut = tok.encode(text, max);
    equal(cut.length, Math.min(max, full.length));
    equal(cut[0], 0);
    equal(cut[cut.length - 1], 2);
    deepEqual(cut.slice(0, -1), full.slice(0, cut.length - 1));
  }
  throws(() => tok.encode(text, 1), RangeError);
  throws(() => tok.encode(text, 2.5), /maxLength/);
});

Deno.test("encodePair wraps as <s> A </s></s> B </s> and truncates the longer side first", () => {
  const tok = XlmrTokenizer.fromVocab([["▁a", -1], ["▁b", -1]]);
  const A = 4, B = 5;
  const words = (w: string, n: number) => Array(n).fill(w).join(" ");
  const pair = (na: number, nb: number) => [0, ...Array(na).fill(A), 2, 2, ...Array(nb).fill(B), 2];
  deepEqual(tok.encodePair("a a", "b"), pair(2, 1));
  // Hugging Face longest_first with budget = maxLength − 4.
  deepEqual(tok.encodePair(words("a", 10), words("b", 3), 12), pair(5, 3));
  deepEqual(tok.encodePair(words("a", 10), words("b", 10), 11), pair(3, 4));
  deepEqual(tok.encodePair(words("a", 12), words("b", 9), 11), pair(4, 3));
  deepEqual(tok.encodePair(words("a", 2), words("b", 9), 11), pair(2, 5));
  deepEqual(tok.encodePair(words("a", 2), words("b", 2), 11), pair(2, 2));
  deepEqual(tok.encodePair(words("a", 5), words("b", 5), 4), pair(0, 0));
  throws(() => tok.encodePair("a", "b", 3), /encodePair: maxLength must be an integer ≥ 4/);
});

Deno.test("unsupported tokenizer models fail with a clear error", async () => {
  const fixture = await fixtureJson();
  const bpe = { ...fixture, model: { type: "BPE", vocab: {}, merges: [] } };
  throws(() => XlmrTokenizer.fromTokenizerJson(bpe, "bpe.json"), /bpe.json: model.type "BPE"/);
  throws(
    () => XlmrTokenizer.fromTokenizerJson({ ...fixture, normalizer: { type: "NFKC" } }, "n.json"),
    /n.json: normalizer\[0\]: normalizer type "NFKC" is not supported/,
  );
  throws(
    () =>
      XlmrTokenizer.fromTokenizerJson({ ...fixture, pre_tokenizer: { type: "ByteLevel" } }, "p"),
    /p: pre_tokenizer: must be Metaspace/,
  );
  throws(() => XlmrTokenizer.fromTokenizerJson([], "arr"), /arr: tokenizer.json must be/);
  const model = fixture.model as Record<string, unknown>;
  throws(
    () => XlmrTokenizer.fromTokenizerJson({ ...fixture, model: { ...model, unk_id: 99999 } }, "u"),
    /u: model.unk_id 99999/,
  );
  const bpeModel = spmModel([...LAYOUT, spmPiece("\u2581a", -1)], [3 << 3, 2]);
  throws(() => XlmrTokenizer.fromSentencePieceModel(bpeModel, "bpe.model"), /bpe.model: .*BPE/);
  const wrongLayout = spmModel([spmPiece("<s>", 0, 3), spmPiece("<unk>", 0, 2)]);
  throws(() => XlmrTokenizer.fromSentencePieceModel(wrongLayout, "w.model"), /w.model: piece 0/);
  throws(
    () => XlmrTokenizer.fromSentencePieceModel(new Uint8Array([0x0a, 0x50, 1]), "trunc.model"),
    /trunc.model: malformed SentencePiece model/,
  );
});

Deno.test("a hand-made .model follows SentencePiece's defaults: dummy prefix, whitespace folding", () => {
  const bytes = spmModel([
    ...LAYOUT,
    spmPiece("\u2581a", -1),
    spmPiece("b", -2),
    spmPiece("\u2581", -3),
    spmPiece("unused", -0.5, 5),
  ]);
  const tok = XlmrTokenizer.fromSentencePieceModel(bytes, "hand.model");
  deepEqual([tok.vocabSize, tok.maskId, tok.pieceToId("\u2581a"), tok.pieceToId("b")], [
    9,
    8,
    4,
    5,
  ]);
  deepEqual(tok.encode("  a   ab  "), [0, 4, 4, 5, 2]);
  // "unused" pieces never match; unknown characters in a run become one <unk>.
  deepEqual(tok.tokenize("unused"), [6, 3]);
  deepEqual(tok.tokenize("bxyz b"), [6, 5, 3, 6, 5]);
});

Deno.test("Viterbi finds the best segmentation, as exhaustive search over all splits does", () => {
  const r = rng(1234);
  const alphabet = ["a", "b", "c", "é", "中", "\u2581"];
  const pieces = new Map<string, number>();
  while (pieces.size < 25) {
    const len = 1 + Math.floor(r() * 3);
    let p = "";
    for (let i = 0; i < len; i++) p += alphabet[Math.floor(r() * alphabet.length)];
    if (!pieces.has(p)) pieces.set(p, -1 - 9 * r());
  }
  pieces.delete("c"); // "c" alone is unknown unless inside a longer piece
  const list = [...pieces.entries()];
  const tok = XlmrTokenizer.fromVocab(list);
  const idOf = new Map(list.map(([p], i) => [p, i + 4]));
  const unk = Math.min(...list.map(([, s]) => s)) - 10;
  // Best split of `s` (array of chars) by exhaustive recursion, scored in float64.
  const best = (s: string[]): { score: number; ids: number[] } => {
    if (s.length === 0) return { score: 0, ids: [] };
    let top = { score: -Infinity, ids: [] as number[] };
    for (let k = 1; k <= s.length; k++) {
      const head = s.slice(0, k).join("");
      const id = idOf.get(head) ?? (k === 1 && ![...idOf.keys()].includes(head) ? 3 : -1);
      if (id < 0) continue;
      const rest = best(s.slice(k));
      const score = (id === 3 ? unk : pieces.get(head)!) + rest.score;
      if (score > top.score) top = { score, ids: [id, ...rest.ids] };
    }
    return top;
  };
  for (let t = 0; t < 300; t++) {
    const n = 1 + Math.floor(r() * 9);
    let text = "";
    for (let i = 0; i < n; i++) text += alphabet[Math.floor(r() * (alphabet.length - 1))];
    const want = best(["\u2581", ...text]).ids.filter((id, i, a) => !(id === 3 && a[i - 1] === 3));
    deepEqual(tok.tokenize(text), want, `text ${JSON.stringify(text)}`);
  }
});

Deno.test("fromVocab rejects reserved and duplicate pieces", () => {
  throws(() => XlmrTokenizer.fromVocab([["<s>", -1]]), /reserved/);
  throws(() => XlmrTokenizer.fromVocab([["", -1]]), /reserved/);
  throws(() => XlmrTokenizer.fromVocab([["x", -1], ["x", -2]]), /appears twice/);
  throws(() => XlmrTokenizer.fromVocab([["x", NaN]]), /score NaN/);
  const folded = XlmrTokenizer.fromVocab([["\u2581a", -1]], { foldWhitespace: true });
  deepEqual(folded.encode("  a    a "), [0, 4, 4, 2]);
  equal(folded.decode(folded.encode(" a  a")), "a a");
});

Deno.test("the tokenize command writes input_ids per line, atomically, and names bad lines", async () => {
  const dir = await Deno.makeTempDir();
  const lines = (await goldenLines()).slice(100, 110);
  await Deno.writeTextFile(
    `${dir}/in.jsonl`,
    lines.map((l) => JSON.stringify({ text: l.text, id: 1 })).join("\n") + "\n",
  );
  const out = `${dir}/out.jsonl`;
  await tokenizeCommand(["--tokenizer", FIXTURE, "--input", `${dir}/in.jsonl`, "--out", out]);
  const got = (await Deno.readTextFile(out)).trimEnd().split("\n").map((l) => JSON.parse(l));
  deepEqual(got, lines.map((l) => ({ input_ids: l.input_ids })));
  await tokenizeCommand([
    "--tokenizer",
    FIXTURE,
    "--input",
    `${dir}/in.jsonl`,
    "--out",
    out,
    "--max-length",
    "8",
  ]);
  const cut = (await Deno.readTextFile(out)).trimEnd().split("\n").map((l) => JSON.parse(l));
  cut.forEach((c, i) => deepEqual(c.input_ids, [...lines[i].input_ids.slice(0, 7), 2]));
  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text": "ok"}\n{"txt": 3}\n');
  await rejects(
    tokenizeCommand(["--tokenizer", FIXTURE, "--input", `${dir}/bad.jsonl`, "--out", out]),
    new RegExp(`${dir}/bad.jsonl:2: expected \\{"text": string\\}`),
  );
  await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"text": "ok"}\n\n{nope\n');
  await rejects(
    tokenizeCommand(["--tokenizer", FIXTURE, "--input", `${dir}/bad.jsonl`, "--out", out]),
    /bad.jsonl:3: not valid JSON/,
  );
  // The failed runs left the last good output in place and no temporary file.
  deepEqual((await Deno.readTextFile(out)).trimEnd().split("\n").map((l) => JSON.parse(l)), cut);
  deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "bad.jsonl",
    "in.jsonl",
    "out.jsonl",
  ]);
  await rejects(tokenizeCommand(["--tokenizer", FIXTURE]), /--input and --out are required/);
  await rejects(tokenizeCommand(["--bogus"]), /tokenize: .*bogus/);
  await rejects(
    tokenizeCommand(["--tokenizer", FIXTURE, "--input", "x", "--out", out, "--max-length", "1"]),
    /--max-length must be an integer ≥ 2/,
  );
});

// SentencePiece's Viterbi (unigram_model.cc, EncodeOptimized) visits start positions left to
// right and replaces a node's best path only on a strictly greater score, so among equal-scoring
// segmentations the one whose last piece starts earliest wins. Scores here are sums of small
// integers: exact in float32, so these are true ties.
Deno.test("equal-score segmentations: the path reaching the end first wins (one long piece)", () => {
  const tok = XlmrTokenizer.fromVocab([["▁ab", -2], ["▁a", -1], ["b", -1]]);
  // "▁ab" (−2) ties "▁a" + "b" (−1 − 1); "▁ab" reaches the end from start 0, first.
  deepEqual(tok.tokenize("ab").map((id) => tok.idToPiece(id)), ["▁ab"]);
});

Deno.test("equal-score segmentations: the earlier-starting last piece wins, not the longer one", () => {
  const tok = XlmrTokenizer.fromVocab([["▁a", -1], ["bc", -1], ["▁ab", -1], ["c", -1]]);
  // "▁a" + "bc" and "▁ab" + "c" both score −2; "bc" starts before "c", so it is found first.
  deepEqual(tok.tokenize("abc").map((id) => tok.idToPiece(id)), ["▁a", "bc"]);
  // With "▁ab" + "c" made strictly better by a hair, the other path wins: the tie was real.
  const nudged = XlmrTokenizer.fromVocab([["▁a", -1], ["bc", -1], ["▁ab", -0.99], ["c", -1]]);
  deepEqual(nudged.tokenize("abc").map((id) => nudged.idToPiece(id)), ["▁ab", "c"]);
});

Deno.test("equal-score segmentations inside a longer text and between words", () => {
  const tok = XlmrTokenizer.fromVocab([
    ["▁x", -1],
    ["▁a", -1],
    ["bc", -1],
    ["▁ab", -1],
    ["c", -1],
    ["▁", -5],
  ]);
  deepEqual(
    tok.tokenize("x abc x abc").map((id) => tok.idToPiece(id)),
    ["▁x", "▁a", "bc", "▁x", "▁a", "bc"],
  );
});

Deno.test("SentencePiece's float32 tie lines (scores rounded to float32 on every node) stay exact", async () => {
  // The three golden lines whose answer changes if path scores are kept in float64: equal paths
  // in float32 that differ in double. tests/fixtures/_build.ts found them over all 26,104 lines.
  const lines = (await goldenLines()).filter((g) => (g as { why?: string }).why === "no fround");
  equal(lines.length, 3, "float32 tie lines in golden_subset.jsonl");
  const tok = XlmrTokenizer.fromTokenizerJson(await fixtureJson(), "tokenizer.json");
  for (const g of lines) deepEqual(tok.encode(g.text), g.input_ids, `line ${g.line}: ${g.text}`);
});
