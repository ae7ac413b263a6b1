/**
 * `init --out DIR --config tiny|base|large|bert-tiny|FILE.json [--tokenizer DIR|ORG/NAME[@REV]]
 * [--seed N] [--vocab-size N]`:
 * writes a randomly initialised Hugging Face-format model directory (XLM-R, or BERT for
 * "bert-tiny" and a config.json with `model_type: "bert"`). The tokenizer may be SentencePiece or
 * WordPiece whatever the architecture.
 * @module
 */
import { choiceFlag, defineFlags, UsageError } from "./flags.ts";
import { configToJson, parseConfig, presetConfig, type XlmrConfig } from "../model/config.ts";
import { readTextStrict } from "../training/data.ts";
import { initModelDir } from "../model/init.ts";
import { loadTokenizer } from "../model/text_tokenizer.ts";
import { resolveModelDir } from "../model/hub.ts";

/** The flags of `init`. */
export const INIT_FLAGS = defineFlags({
  command: "init",
  summary: "write a randomly initialised Hugging Face-format model (XLM-R or BERT)",
  flags: {
    out: { type: "string", required: true, arg: "DIR", description: "model folder to write" },
    config: {
      type: "string",
      required: true,
      arg: "tiny|base|large|bert-tiny|FILE.json",
      description: "a preset or a config.json",
    },
    tokenizer: {
      type: "string",
      arg: "DIR|ORG/NAME[@REV]",
      description: "tokenizer files copied into the model (a folder or a Hub id)",
    },
    seed: { type: "integer", min: 0, default: 0, description: "seed of the weights" },
    "vocab-size": {
      type: "integer",
      min: 4,
      defaultText: "the tokenizer's, else the config's",
      description: "vocabulary size",
    },
  },
});

/** Runs the `init` command. */
export async function initCommand(args: string[]): Promise<void> {
  const f = INIT_FLAGS.parse(args);
  const out = f.out;
  const name = f.config;
  const seed = f.seed;
  let vocabSize = f["vocab-size"];
  // A folder, or a Hub id whose tokenizer files are fetched into the Hugging Face cache.
  const tokenizerDir = typeof f.tokenizer === "string" && f.tokenizer !== ""
    ? await resolveModelDir(f.tokenizer, { files: "tokenizer" })
    : undefined;
  if (tokenizerDir && vocabSize === undefined) {
    vocabSize = (await loadTokenizer(tokenizerDir)).vocabSize;
  }
  let config: XlmrConfig;
  if (name === "tiny" || name === "base" || name === "large" || name === "bert-tiny") {
    config = presetConfig(name, vocabSize ? { vocabSize } : {});
  } else if (name.endsWith(".json")) {
    let json: unknown;
    try {
      json = JSON.parse(await readTextStrict(name));
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith(name) ? msg : `${name}: not valid JSON: ${msg}`);
    }
    config = parseConfig(json, name);
    // Re-validate with the override (pad_token_id must stay inside the vocabulary, size limits).
    if (vocabSize) config = parseConfig(configToJson({ ...config, vocabSize }), name);
  } else {
    choiceFlag({ config: name }, "config", ["tiny", "base", "large", "bert-tiny", "FILE.json"]);
    throw new UsageError("unreachable");
  }
  await initModelDir(out, config, { seed, tokenizerDir });
  console.log(
    `wrote ${out}: hidden ${config.hiddenSize}, ${config.numLayers} layers, vocab ${config.vocabSize}`,
  );
}
