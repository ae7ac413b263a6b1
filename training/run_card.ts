/**
 * A trained run folder as a sentence-transformers model: `modules.json` (Transformer → Pooling →
 * Normalize, in the `sentence_transformers.models.*` form every sentence-transformers version
 * reads), `1_Pooling/config.json` with the pooling the run trained with
 * (`pooling_mode_cls_token`/`pooling_mode_mean_tokens` booleans), `sentence_bert_config.json`
 * (`max_seq_length`), `2_Normalize/`, and `config_sentence_transformers.json` with the training
 * prefixes as prompts `query`/`passage` and similarity `cosine`. So
 * `SentenceTransformer(run).encode(texts, prompt_name="query")` embeds `queryPrefix + text` with
 * the run's pooling, as this engine does (normalised). Plus a model card (`README.md`).
 * @module
 */
import { join } from "node:path";
import { type StFolder, writeSentenceTransformers } from "../model/sentence_transformers.ts";
import { writeFileAtomic } from "../model/atomic_write.ts";
import { writeCurves } from "./curves.ts";

/** What the run folder's sentence-transformers files and card record. */
export interface RunCard {
  pooling: "cls" | "mean";
  hiddenSize: number;
  maxLength: number;
  queryPrefix: string;
  passagePrefix: string;
  /** Shown in the card. */
  baseModel: string;
  train: string;
  languages: string[];
  sampler: string;
  alpha?: number;
  steps: number;
  batchSize: number;
  lr: number;
  temperature?: number;
  seed: number;
  /**
   * A sentence-transformers source trained through its own pipeline: the run folder keeps its
   * layout (module types, Dense layers with their trained weights) instead of Transformer →
   * Pooling → Normalize, with the run's max length and prompts.
   */
  st?: StFolder;
  /** The last in-training evaluation, when `--eval` ran. */
  finalEval?: { step: number; dataset?: string; map: Record<string, number | null> };
}

const OLD = "sentence_transformers.models.";

/** The sentence-transformers description of a trained run (old module type names). */
export function runStFolder(card: RunCard): StFolder {
  const kinds = ["Transformer", "Pooling", "Normalize"] as const;
  return {
    modules: kinds.map((kind, i) => ({
      idx: i,
      name: String(i),
      path: i === 0 ? "" : `${i}_${kind}`,
      type: OLD + kind,
      kind,
      config: kind === "Pooling" ? { word_embedding_dimension: card.hiddenSize } : {},
    })),
    transformerPath: "",
    pooling: card.pooling,
    dense: [],
    normalize: true,
    maxSeqLength: card.maxLength,
    lowercase: false,
    stConfig: {
      prompts: { query: card.queryPrefix, passage: card.passagePrefix },
      default_prompt_name: null,
      similarity_fn_name: "cosine",
    },
  };
}

/** Writes the sentence-transformers files and the model card into the run folder `out`. */
export async function writeRunCard(out: string, card: RunCard): Promise<void> {
  const own = runStFolder(card);
  await writeSentenceTransformers(
    out,
    card.st
      ? {
        ...card.st,
        maxSeqLength: own.maxSeqLength,
        stConfig: { ...card.st.stConfig, ...own.stConfig },
      }
      : own,
  );
  await writeCurves(out, `${card.sampler} run from ${card.baseModel}`);
  await writeFileAtomic(join(out, "README.md"), modelCard(card));
}

function fmt(v: number | null | undefined): string {
  return typeof v === "number" ? v.toFixed(4) : "–";
}

/** The model card (Markdown with the Hub's YAML front matter). */
export function modelCard(c: RunCard): string {
  const lines = [
    "---",
    "library_name: sentence-transformers",
    "pipeline_tag: sentence-similarity",
    "tags:",
    "  - sentence-transformers",
    "  - feature-extraction",
    "  - xlmr-webgpu",
    `base_model: ${JSON.stringify(c.baseModel)}`,
    "---",
    "",
    `# Dual encoder fine-tuned from ${c.baseModel}`,
    "",
    "Trained with xlmr-webgpu (contrastive InfoNCE with in-batch negatives).",
    "",
    "| | |",
    "| --- | --- |",
    `| training data | \`${c.train}\` (${c.languages.join(", ")}) |`,
    `| sampler | ${c.sampler}${c.alpha !== undefined ? `, α = ${c.alpha}` : ""} |`,
    `| steps | ${c.steps} (batch ${c.batchSize}, lr ${c.lr}, seed ${c.seed}) |`,
    ...(c.temperature !== undefined ? [`| temperature | ${c.temperature} |`] : []),
    `| pooling | ${c.pooling}, then L2 normalisation; similarity cosine |`,
    `| max length | ${c.maxLength} tokens |`,
    `| prompts | query ${JSON.stringify(c.queryPrefix)}, passage ${
      JSON.stringify(c.passagePrefix)
    } |`,
    "",
  ];
  if (c.finalEval) {
    const m = c.finalEval.map;
    lines.push(
      `## Evaluation (step ${c.finalEval.step}${
        c.finalEval.dataset ? `, ${c.finalEval.dataset}` : ""
      })`,
      "",
      "| monolingual mAP | cross-lingual mAP | multilingual mAP |",
      "| ---: | ---: | ---: |",
      `| ${fmt(m.monolingual)} | ${fmt(m.crosslingual)} | ${fmt(m.multilingual)} |`,
      "",
    );
  }
  lines.push(
    "![training curves: loss, in-batch accuracy, learning rate, gradient norm" +
      `${c.finalEval ? ", eval mAP" : ""}](training_curves.svg)`,
    "",
    "## Use",
    "",
    "```python",
    "from sentence_transformers import SentenceTransformer",
    'model = SentenceTransformer("path/to/this/folder")',
    'q = model.encode(["Where is the river?"], prompt_name="query")',
    'p = model.encode(["The river flows to the sea."], prompt_name="passage")',
    "```",
    "",
  );
  return lines.join("\n");
}
