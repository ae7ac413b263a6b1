/**
 * The model configuration: Hugging Face `config.json` in and out, for XLM-R / RoBERTa
 * (`model_type` "xlm-roberta" or "roberta": positions count from pad_token_id + 1) and BERT
 * (`model_type` "bert": LaBSE, multilingual BERT and MiniLM; positions count from 0, two token
 * types), with Hugging Face's defaults of that model type where a field is missing, and the
 * tiny/base/large/bert-tiny presets.
 * @module
 */
import { writeJsonAtomic } from "./atomic_write.ts";

/** The architecture hyper-parameters an XLM-R or BERT encoder needs. */
export interface XlmrConfig {
  /**
   * "bert": position ids 0, 1, … (no padding offset) and pad_token_id's default 0. Absent or
   * "xlm-roberta": XLM-R's position ids, cumsum(mask) + pad_token_id.
   */
  modelType?: "xlm-roberta" | "bert";
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** Only "gelu" (exact erf GELU) is implemented. */
  hiddenAct: "gelu";
  hiddenDropout: number;
  attentionDropout: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
  initializerRange: number;
}

/** Hugging Face XLMRobertaConfig's own defaults (used for fields config.json leaves out). */
export const HF_DEFAULTS: Readonly<XlmrConfig> = Object.freeze({
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

/** JSON key of each field, in the order config.json lists them. */
const JSON_KEYS: Record<Exclude<keyof XlmrConfig, "modelType">, string> = {
  hiddenSize: "hidden_size",
  numLayers: "num_hidden_layers",
  numHeads: "num_attention_heads",
  intermediateSize: "intermediate_size",
  vocabSize: "vocab_size",
  maxPositions: "max_position_embeddings",
  typeVocabSize: "type_vocab_size",
  layerNormEps: "layer_norm_eps",
  hiddenAct: "hidden_act",
  hiddenDropout: "hidden_dropout_prob",
  attentionDropout: "attention_probs_dropout_prob",
  padTokenId: "pad_token_id",
  bosTokenId: "bos_token_id",
  eosTokenId: "eos_token_id",
  initializerRange: "initializer_range",
};

/** Integer fields with the largest value we accept (anything larger is a corrupt file). */
const INT_LIMITS: Partial<Record<keyof XlmrConfig, [number, number]>> = {
  vocabSize: [1, 10_000_000],
  hiddenSize: [1, 65536],
  numLayers: [1, 1000],
  numHeads: [1, 4096],
  intermediateSize: [1, 1_000_000],
  maxPositions: [1, 1_000_000],
  typeVocabSize: [1, 1_000_000],
  padTokenId: [0, 10_000_000],
  bosTokenId: [0, 10_000_000],
  eosTokenId: [0, 10_000_000],
};

/** Hugging Face BertConfig's own defaults. */
const BERT_DEFAULTS: Readonly<XlmrConfig> = Object.freeze({
  ...HF_DEFAULTS,
  modelType: "bert" as const,
  padTokenId: 0,
});

/** The preset names of {@linkcode presetConfig}. */
export type PresetName = "tiny" | "base" | "large" | "bert-tiny";

const PRESETS: Record<PresetName, XlmrConfig> = {
  // Same as ../shared/fixtures/xlmr-tiny/model/config.json.
  tiny: {
    ...HF_DEFAULTS,
    vocabSize: 16001,
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 128,
    maxPositions: 130,
    typeVocabSize: 1,
    layerNormEps: 1e-5,
    hiddenDropout: 0,
    attentionDropout: 0,
  },
  base: {
    ...HF_DEFAULTS,
    vocabSize: 250002,
    hiddenSize: 768,
    numLayers: 12,
    numHeads: 12,
    intermediateSize: 3072,
    maxPositions: 514,
    typeVocabSize: 1,
    layerNormEps: 1e-5,
  },
  large: {
    ...HF_DEFAULTS,
    vocabSize: 250002,
    hiddenSize: 1024,
    numLayers: 24,
    numHeads: 16,
    intermediateSize: 4096,
    maxPositions: 514,
    typeVocabSize: 1,
    layerNormEps: 1e-5,
  },
  // Same as ../shared/fixtures/bert-tiny/model/config.json (LaBSE's layout, scaled down).
  "bert-tiny": {
    ...BERT_DEFAULTS,
    vocabSize: 8000,
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 128,
    maxPositions: 128,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    hiddenDropout: 0,
    attentionDropout: 0,
  },
};

/** Whether `c` is a BERT-family model (positions from 0, no padding offset). */
export function isBert(c: XlmrConfig): boolean {
  return c.modelType === "bert";
}

/**
 * The longest sequence the position table allows: max_position_embeddings for BERT,
 * max_position_embeddings − pad_token_id − 1 for XLM-R (its positions start after the pad id).
 *
 * @example
 * ```ts
 * import { maxSequenceLength, presetConfig } from "./config.ts";
 * console.log(maxSequenceLength(presetConfig("base")), maxSequenceLength(presetConfig("bert-tiny"))); // 512 128
 * ```
 */
export function maxSequenceLength(c: XlmrConfig): number {
  return isBert(c) ? c.maxPositions : c.maxPositions - c.padTokenId - 1;
}

/**
 * Parses a config.json value. Missing fields take Hugging Face's defaults; a wrong type, an absurd
 * value, hidden size not divisible by the head count, or an activation other than "gelu" throws
 * an error naming `source` and the field.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig({ hidden_size: 64, num_attention_heads: 4 }, "config.json");
 * console.log(cfg.hiddenSize / cfg.numHeads); // 16
 * ```
 */
export function parseConfig(json: unknown, source: string): XlmrConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError(`${source}: config must be a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const modelType = o.model_type;
  if (
    modelType !== undefined && modelType !== "xlm-roberta" && modelType !== "roberta" &&
    modelType !== "bert"
  ) {
    throw new TypeError(
      `${source}: model_type ${
        JSON.stringify(modelType)
      } is not supported ("xlm-roberta", "roberta" or "bert")`,
    );
  }
  const pet = o.position_embedding_type;
  if (pet !== undefined && pet !== "absolute") {
    throw new TypeError(
      `${source}: position_embedding_type ${JSON.stringify(pet)}: only "absolute" is supported`,
    );
  }
  const cfg: XlmrConfig = modelType === "bert" ? { ...BERT_DEFAULTS } : { ...HF_DEFAULTS };
  for (
    const [field, key] of Object.entries(JSON_KEYS) as [
      Exclude<keyof XlmrConfig, "modelType">,
      string,
    ][]
  ) {
    const v = o[key];
    if (v === undefined || (v === null && (field === "bosTokenId" || field === "eosTokenId"))) {
      continue;
    }
    const limits = INT_LIMITS[field];
    if (field === "hiddenAct") {
      if (v !== "gelu") {
        throw new TypeError(
          `${source}: hidden_act ${JSON.stringify(v)} is not supported (only "gelu", exact erf)`,
        );
      }
    } else if (limits) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < limits[0] || v > limits[1]) {
        throw new RangeError(
          `${source}: ${key} must be an integer in [${limits[0]}, ${limits[1]}], got ${
            JSON.stringify(v)
          }`,
        );
      }
      (cfg as unknown as Record<string, number>)[field] = v;
    } else if (field === "hiddenDropout" || field === "attentionDropout") {
      if (typeof v !== "number" || !(v >= 0 && v < 1)) {
        throw new RangeError(
          `${source}: ${key} must be a number in [0, 1), got ${JSON.stringify(v)}`,
        );
      }
      cfg[field] = v;
    } else if (field === "layerNormEps") {
      if (typeof v !== "number" || !(v > 0 && v < 1)) {
        throw new RangeError(
          `${source}: ${key} must be a number in (0, 1), got ${JSON.stringify(v)}`,
        );
      }
      cfg[field] = v;
    } else if (field === "initializerRange") {
      if (typeof v !== "number" || !(v >= 0 && v < 10)) {
        throw new RangeError(
          `${source}: ${key} must be a number in [0, 10), got ${JSON.stringify(v)}`,
        );
      }
      cfg[field] = v;
    }
  }
  validateConfig(cfg, source);
  return cfg;
}

/** Largest model accepted: f32 parameters above this many bytes mean a corrupt config.json. */
export const MAX_PARAMETER_BYTES = 2 ** 34;

/**
 * Number of scalar parameters of an XLM-R model with this configuration (embeddings, encoder
 * layers and pooler), as a float so that absurd sizes do not overflow.
 *
 * @example
 * ```ts
 * import { parameterCount, presetConfig } from "./config.ts";
 * console.log(parameterCount(presetConfig("base"))); // 278043648
 * ```
 */
export function parameterCount(c: XlmrConfig): number {
  const H = c.hiddenSize, I = c.intermediateSize;
  const embeddings = (c.vocabSize + c.maxPositions + c.typeVocabSize) * H + 2 * H;
  const layer = 4 * (H * H + H) + 2 * H + (I * H + I) + (H * I + H) + 2 * H;
  return embeddings + c.numLayers * layer + H * H + H;
}

/** Cross-field checks shared by parseConfig and presetConfig. */
function validateConfig(cfg: XlmrConfig, source: string): void {
  const bytes = parameterCount(cfg) * 4;
  if (bytes > MAX_PARAMETER_BYTES) {
    throw new RangeError(
      `${source}: the model would need ${bytes} bytes (${(bytes / 2 ** 30).toFixed(1)} GiB) of ` +
        `f32 parameters, more than the ${MAX_PARAMETER_BYTES / 2 ** 30} GiB limit ` +
        `(vocab_size ${cfg.vocabSize}, hidden_size ${cfg.hiddenSize}, num_hidden_layers ` +
        `${cfg.numLayers}, intermediate_size ${cfg.intermediateSize}, max_position_embeddings ` +
        `${cfg.maxPositions})`,
    );
  }
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new RangeError(
      `${source}: hidden_size ${cfg.hiddenSize} is not divisible by ` +
        `num_attention_heads ${cfg.numHeads}`,
    );
  }
  if (cfg.padTokenId >= cfg.vocabSize) {
    throw new RangeError(
      `${source}: pad_token_id ${cfg.padTokenId} is outside vocab_size ${cfg.vocabSize}`,
    );
  }
  // XLM-R positions start at pad_token_id + 1, so the table must reach past it.
  if (!isBert(cfg) && cfg.maxPositions <= cfg.padTokenId + 1) {
    throw new RangeError(
      `${source}: max_position_embeddings ${cfg.maxPositions} leaves no ` +
        `position after pad_token_id + 1 = ${cfg.padTokenId + 1}`,
    );
  }
}

/**
 * Reads and parses `dir/config.json`.
 *
 * @example
 * ```ts
 * import { loadConfig, saveConfig, presetConfig } from "./config.ts";
 * const dir = await Deno.makeTempDir();
 * await saveConfig(dir, presetConfig("tiny"));
 * console.log((await loadConfig(dir)).numLayers); // 2
 * ```
 */
export async function loadConfig(dir: string): Promise<XlmrConfig> {
  const path = `${dir}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read config: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, path);
}

/**
 * The Hugging Face config.json object for `cfg` (model_type "xlm-roberta", architectures
 * ["XLMRobertaModel"]; for BERT, "bert" and ["BertModel"]).
 *
 * @example
 * ```ts
 * import { configToJson, presetConfig } from "./config.ts";
 * const json = configToJson(presetConfig("base")) as Record<string, unknown>;
 * console.log(json.hidden_size); // 768
 * ```
 */
export function configToJson(cfg: XlmrConfig): Record<string, unknown> {
  const out: Record<string, unknown> = isBert(cfg)
    ? { architectures: ["BertModel"], model_type: "bert" }
    : { architectures: ["XLMRobertaModel"], model_type: "xlm-roberta" };
  for (
    const [field, key] of Object.entries(JSON_KEYS) as [
      Exclude<keyof XlmrConfig, "modelType">,
      string,
    ][]
  ) {
    out[key] = cfg[field];
  }
  out.position_embedding_type = "absolute";
  return out;
}

/**
 * Writes `dir/config.json` atomically.
 *
 * @example
 * ```ts
 * import { presetConfig, saveConfig } from "./config.ts";
 * await saveConfig(await Deno.makeTempDir(), presetConfig("tiny", { vocabSize: 1000 }));
 * ```
 */
export async function saveConfig(dir: string, cfg: XlmrConfig): Promise<void> {
  await writeJsonAtomic(`${dir}/config.json`, configToJson(cfg));
}

/**
 * A preset: "tiny" (hidden 64, 2 layers, 4 heads, intermediate 128, vocab 16001, 130 positions,
 * dropout 0 — the shared test fixture), "base" (XLM-R base), "large" (XLM-R large) or
 * "bert-tiny" (a BertModel of the tiny size: vocab 8000, 128 positions, 2 token types, eps 1e-12), with
 * `overrides` applied and the result validated.
 *
 * @example
 * ```ts
 * import { presetConfig } from "./config.ts";
 * const cfg = presetConfig("tiny", { vocabSize: 300 });
 * console.log(cfg.vocabSize, cfg.hiddenSize); // 300 64
 * ```
 */
export function presetConfig(
  name: PresetName,
  overrides: Partial<XlmrConfig> = {},
): XlmrConfig {
  const base = PRESETS[name];
  if (!base) throw new TypeError(`presetConfig: unknown preset ${JSON.stringify(name)}`);
  // Round-trip through the parser so that overrides get the same checks as a config.json.
  const merged = { ...base, ...overrides };
  return parseConfig(configToJson(merged), `preset "${name}"`);
}
