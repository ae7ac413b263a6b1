/**
 * Hostile config.json and tokenizer.json: wrong types, absurd sizes (refused with the computed
 * byte size before anything is allocated), unsupported models, empty vocabularies and broken
 * precompiled_charsmap blobs. Errors name the file and the field.
 */
import { ok, rejects, throws } from "node:assert/strict";
import { loadConfig, parseConfig } from "../../model/config.ts";
import { XlmrTokenizer } from "../../model/tokenizer.ts";
import { FIXTURES } from "./_cli.ts";

function refuses(fn: () => unknown, want: RegExp, label: string): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof Error, `${label}: an Error`);
    ok(want.test(e.message), `${label}: "${e.message}" should match ${want}`);
    return true;
  });
}

Deno.test("config.json with wrong types, absurd sizes or bad JSON is refused naming the field", async () => {
  const src = "cfg/config.json";
  const cases: [unknown, RegExp][] = [
    [[], /config must be a JSON object/],
    [null, /config must be a JSON object/],
    [{ hidden_size: "64" }, /hidden_size must be an integer/],
    [{ hidden_size: 64.5 }, /hidden_size must be an integer/],
    [{ hidden_size: -1 }, /hidden_size must be an integer/],
    [{ num_hidden_layers: 1e9 }, /num_hidden_layers must be an integer in \[1, 1000\]/],
    [{ vocab_size: null }, /vocab_size must be an integer/],
    [{ hidden_act: "relu" }, /hidden_act "relu" is not supported/],
    [{ layer_norm_eps: 0 }, /layer_norm_eps must be a number in \(0, 1\)/],
    [{ hidden_dropout_prob: 1 }, /hidden_dropout_prob must be a number in \[0, 1\)/],
    [{ model_type: "gpt2" }, /model_type "gpt2" is not supported/],
    [{ position_embedding_type: "relative_key" }, /only "absolute"/],
    [{ hidden_size: 64, num_attention_heads: 5 }, /not divisible by num_attention_heads 5/],
    [{ pad_token_id: 40, vocab_size: 40 }, /pad_token_id 40 is outside vocab_size 40/],
    [{ max_position_embeddings: 2 }, /leaves no position/],
    // Absurd but individually in range: refused up front with the byte count.
    [
      { vocab_size: 10_000_000, hidden_size: 65536, num_attention_heads: 1 },
      /would need \d+ bytes \([\d.]+ GiB\) of f32 parameters, more than the 16 GiB limit/,
    ],
    [
      { num_hidden_layers: 1000, intermediate_size: 1_000_000, hidden_size: 4096 },
      /would need \d+ bytes/,
    ],
  ];
  for (const [json, want] of cases) {
    refuses(
      () => parseConfig(json, src),
      new RegExp(`^${src}: .*${want.source}`),
      JSON.stringify(json),
    );
  }
  const dir = await Deno.makeTempDir();
  await rejects(() => loadConfig(dir), /config\.json: cannot read config/);
  await Deno.writeTextFile(`${dir}/config.json`, '{"hidden_size": 64,');
  await rejects(() => loadConfig(dir), new RegExp(`${dir}/config.json: not valid JSON`));
  await Deno.remove(dir, { recursive: true });
});

function tokJson(patch: (j: Record<string, unknown>) => void): Record<string, unknown> {
  const j = XlmrTokenizer.fromVocab([["▁a", -1], ["b", -2]]).toJson() as Record<string, unknown>;
  patch(j);
  return j;
}

const fixtureCharsmap = async (): Promise<string> => {
  const j = JSON.parse(await Deno.readTextFile(`${FIXTURES}tokenizer/tokenizer.json`));
  return j.normalizer.normalizers.find((n: { type: string }) => n.type === "Precompiled")
    .precompiled_charsmap;
};

Deno.test("tokenizer.json with an unsupported model, empty vocab or broken fields is refused", () => {
  const src = "tok/tokenizer.json";
  const model = (j: Record<string, unknown>) => j.model as Record<string, unknown>;
  const cases: [(j: Record<string, unknown>) => void, RegExp][] = [
    [(j) => (model(j).type = "BPE"), /model.type "BPE" is not supported/],
    [(j) => (j.model = null), /model must be an object/],
    [(j) => (model(j).vocab = []), /vocab|unk_id|no .* token/],
    [(j) => (model(j).vocab = {}), /model.vocab must be an array/],
    [(j) => (model(j).vocab = [["a"]]), /model.vocab\[0\] must be \[piece, score\]/],
    [(j) => (model(j).unk_id = 999), /model.unk_id 999 is not a vocabulary id/],
    [(j) => (model(j).byte_fallback = true), /byte_fallback is not supported/],
    [(j) => (j.added_tokens = 5), /added_tokens must be an array/],
    [(j) => (j.added_tokens = [{ id: 1e6, content: "x", special: true }]), /outside the vocab/],
    [
      (j) => (j.normalizer = { type: "Precompiled", precompiled_charsmap: "@@@not base64@@@" }),
      /normalizer.*precompiled_charsmap: not valid base64/,
    ],
    [
      (j) => (j.normalizer = { type: "Precompiled", precompiled_charsmap: 42 }),
      /precompiled_charsmap must be base64/,
    ],
    [
      (j) => (j.normalizer = { type: "Precompiled", precompiled_charsmap: btoa("ab") }),
      /precompiled_charsmap is shorter than 4 bytes/,
    ],
    [
      (j) => (j.normalizer = { type: "Precompiled", precompiled_charsmap: btoa("\xff\0\0\0xxxx") }),
      /trie size 255 does not fit the 8-byte blob/,
    ],
    [(j) => (j.normalizer = { type: "NFKC" }), /normalizer type "NFKC" is not supported/],
    [(j) => (j.normalizer = { type: "Sequence", normalizers: 3 }), /normalizers must be an array/],
  ];
  for (const [patch, want] of cases) {
    const j = tokJson(patch);
    refuses(() => XlmrTokenizer.fromTokenizerJson(j, src), want, JSON.stringify(j).slice(0, 120));
    throws(() => XlmrTokenizer.fromTokenizerJson(j, src), (e: Error) => e.message.includes(src));
  }
});

Deno.test("a corrupted precompiled_charsmap either fails at load or tokenizes without crashing", async () => {
  const good = Uint8Array.from(atob(await fixtureCharsmap()), (c) => c.charCodeAt(0));
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let refused = 0, survived = 0;
  const texts = ["Héllo Wörld ＡＢＣ ①", "ﬁ ㍿ \u00a0 tab\tnew\nline", "😀 日本語 العربية"];
  for (let c = 0; c < 60; c++) {
    const bytes = good.slice(0, c % 3 === 0 ? Math.floor(random() * good.length) : good.length);
    for (let k = 0; k < 1 + Math.floor(random() * 50); k++) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    const j = tokJson((
      j,
    ) => (j.normalizer = { type: "Precompiled", precompiled_charsmap: btoa(s) }));
    let tok: XlmrTokenizer;
    try {
      tok = XlmrTokenizer.fromTokenizerJson(j, "fuzz/tokenizer.json");
    } catch (e) {
      ok(e instanceof Error && e.message.includes("fuzz/tokenizer.json"), String(e));
      refused++;
      continue;
    }
    for (const t of texts) {
      const ids = tok.encode(t, 64);
      ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize), `case ${c}`);
    }
    survived++;
  }
  ok(refused + survived === 60, `${refused} refused, ${survived} tokenized`);
});

Deno.test("tokenizer.json that is not UTF-8 or not JSON is refused naming the file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(`${dir}/tokenizer.json`, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]));
  await rejects(
    () => XlmrTokenizer.fromDir(dir),
    new RegExp(`${dir}/tokenizer.json: not valid UTF-8`),
  );
  await Deno.writeTextFile(`${dir}/tokenizer.json`, "{");
  await rejects(
    () => XlmrTokenizer.fromDir(dir),
    new RegExp(`${dir}/tokenizer.json: not valid JSON`),
  );
  await Deno.remove(`${dir}/tokenizer.json`);
  await Deno.writeFile(`${dir}/sentencepiece.bpe.model`, new Uint8Array([0x0a, 0xff, 0xff, 0xff]));
  await rejects(() => XlmrTokenizer.fromDir(dir), /sentencepiece.bpe.model: malformed/);
  await Deno.remove(dir, { recursive: true });
});
