import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  configToJson,
  HF_DEFAULTS,
  loadConfig,
  parseConfig,
  presetConfig,
  saveConfig,
} from "../../model/config.ts";

const FIXTURE = new URL("../fixtures/xlmr-tiny/model", import.meta.url).pathname;

/** parseConfig(json) fails with a message naming the source and every string of `want`. */
function failsWith(json: unknown, want: string[]): void {
  throws(() => parseConfig(json, "cfg/config.json"), (e: Error) => {
    for (const w of ["cfg/config.json", ...want]) {
      ok(e.message.includes(w), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(w)}`);
    }
    return true;
  });
}

Deno.test("loadConfig reads the tiny fixture, which equals the tiny preset", async () => {
  const cfg = await loadConfig(FIXTURE);
  deepEqual(cfg, presetConfig("tiny"));
  equal(cfg.vocabSize, 16001);
  equal(cfg.maxPositions, 130);
  equal(cfg.layerNormEps, 1e-5);
  equal(cfg.hiddenDropout, 0);
});

Deno.test("parseConfig fills missing fields with Hugging Face XLMRobertaConfig defaults", () => {
  const cfg = parseConfig({}, "empty.json");
  deepEqual(cfg, {
    vocabSize: 30522,
    hiddenSize: 768,
    numLayers: 12,
    numHeads: 12,
    intermediateSize: 3072,
    hiddenAct: "gelu",
    hiddenDropout: 0.1,
    attentionDropout: 0.1,
    maxPositions: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    padTokenId: 1,
    bosTokenId: 0,
    eosTokenId: 2,
    initializerRange: 0.02,
  });
  deepEqual(cfg, { ...HF_DEFAULTS });
  equal(parseConfig({ hidden_size: 64, num_attention_heads: 4 }, "x").numLayers, 12);
});

Deno.test("parseConfig rejects wrong types and absurd values, naming file and field", () => {
  failsWith([], ["JSON object"]);
  failsWith(null, ["JSON object"]);
  failsWith({ hidden_size: "768" }, ["hidden_size"]);
  failsWith({ hidden_size: 76.8 }, ["hidden_size"]);
  failsWith({ hidden_size: 0 }, ["hidden_size"]);
  failsWith({ num_hidden_layers: 1e6 }, ["num_hidden_layers"]);
  failsWith({ vocab_size: -5 }, ["vocab_size"]);
  failsWith({ layer_norm_eps: 0 }, ["layer_norm_eps"]);
  failsWith({ layer_norm_eps: "1e-5" }, ["layer_norm_eps"]);
  failsWith({ hidden_dropout_prob: 1.5 }, ["hidden_dropout_prob"]);
  failsWith({ attention_probs_dropout_prob: null }, ["attention_probs_dropout_prob"]);
  failsWith({ pad_token_id: 40000 }, ["pad_token_id", "vocab_size"]);
  failsWith({ max_position_embeddings: 2 }, ["max_position_embeddings"]);
  failsWith({ hidden_size: 100, num_attention_heads: 12 }, ["100", "not divisible", "12"]);
  failsWith({ hidden_act: "relu" }, ["hidden_act", "relu"]);
  failsWith({ hidden_act: "gelu_new" }, ["hidden_act"]);
  failsWith({ model_type: "gpt2" }, ["model_type", "gpt2"]); // "bert" is supported (bert_test.ts)
  failsWith({ position_embedding_type: "relative_key" }, ["position_embedding_type"]);
});

Deno.test("configToJson writes a Hugging Face config that parses back to the same config", () => {
  for (const name of ["tiny", "base", "large"] as const) {
    const cfg = presetConfig(name);
    const json = configToJson(cfg);
    equal(json.model_type, "xlm-roberta");
    deepEqual(json.architectures, ["XLMRobertaModel"]);
    equal(json.hidden_size, cfg.hiddenSize);
    equal(json.num_hidden_layers, cfg.numLayers);
    equal(json.max_position_embeddings, cfg.maxPositions);
    deepEqual(parseConfig(JSON.parse(JSON.stringify(json)), name), cfg);
  }
});

Deno.test("presets have XLM-R's sizes and take validated overrides", () => {
  const base = presetConfig("base");
  deepEqual(
    [base.vocabSize, base.hiddenSize, base.numLayers, base.numHeads, base.intermediateSize],
    [250002, 768, 12, 12, 3072],
  );
  deepEqual([base.maxPositions, base.typeVocabSize, base.layerNormEps], [514, 1, 1e-5]);
  const large = presetConfig("large");
  deepEqual(
    [large.hiddenSize, large.numLayers, large.numHeads, large.intermediateSize, large.vocabSize],
    [1024, 24, 16, 4096, 250002],
  );
  const tiny = presetConfig("tiny", { vocabSize: 300, numLayers: 1 });
  deepEqual([tiny.vocabSize, tiny.numLayers, tiny.hiddenSize], [300, 1, 64]);
  throws(() => presetConfig("tiny", { numHeads: 3 }), /not divisible/);
  throws(() => presetConfig("tiny", { vocabSize: 0 }), /preset "tiny": vocab_size/);
});

Deno.test("saveConfig and loadConfig round-trip; loadConfig names a missing or broken file", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = presetConfig("tiny", { vocabSize: 1234 });
  await saveConfig(dir, cfg);
  deepEqual(await loadConfig(dir), cfg);
  deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["config.json"]);
  await Deno.writeTextFile(`${dir}/config.json`, "{oops");
  await rejects(loadConfig(dir), new RegExp(`${dir}/config.json: not valid JSON`));
  await Deno.writeTextFile(`${dir}/config.json`, '{"num_attention_heads": "many"}');
  await rejects(loadConfig(dir), /config.json: num_attention_heads/);
  await rejects(loadConfig(`${dir}/nope`), /nope\/config.json: cannot read/);
});
