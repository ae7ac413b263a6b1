/**
 * The inputs of `study --quick`: the demo's embedded synthetic corpus (train JSONL, LAReQA test
 * files), its tokenizer and a small randomly initialised XLM-R, a low/high-resource grouping and a
 * synthetic Tatoeba-format bitext (each held-out question paired with the first language's
 * version of it, that language standing in for English), all written under one folder.
 * Deterministic for a seed, so a rerun finds the same model and data and skips finished runs.
 * @module
 */
import { join } from "node:path";
import { buildSyntheticCorpus, writeSyntheticCorpus } from "./synthetic.ts";
import { demoPlan } from "./run.ts";
import { XlmrTokenizer } from "../model/tokenizer.ts";
import { presetConfig } from "../model/config.ts";
import { initModelDir } from "../model/init.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { loadLareqa } from "../eval/lareqa.ts";

/** What {@linkcode prepareQuickStudy} wrote. */
export interface QuickStudyInputs {
  model: string;
  train: string;
  evalDir: string;
  tatoebaDir: string;
  groups: Record<string, string[]>;
  maxLength: number;
  batchSize: number;
  steps: number;
}

/** Writes the quick study's corpus, tokenizer, model, groups and bitext under `dir`. */
export async function prepareQuickStudy(dir: string, seed: number): Promise<QuickStudyInputs> {
  const plan = demoPlan(true);
  const corpus = buildSyntheticCorpus({ seed, items: plan.items });
  const files = await writeSyntheticCorpus(join(dir, "data"), corpus);
  const tokenizer = XlmrTokenizer.fromVocab(corpus.vocabulary, { foldWhitespace: true });
  const tokDir = join(dir, "tokenizer");
  await Deno.mkdir(tokDir, { recursive: true });
  await writeJsonAtomic(join(tokDir, "tokenizer.json"), tokenizer.toJson());
  const config = presetConfig("tiny", {
    vocabSize: tokenizer.vocabSize,
    hiddenSize: plan.hidden,
    numLayers: plan.layers,
    numHeads: plan.heads,
    intermediateSize: plan.hidden * 2,
    maxPositions: plan.maxLength + 2,
  });
  const model = join(dir, "init-model");
  await initModelDir(model, config, { seed, tokenizerDir: tokDir });
  const groups: Record<string, string[]> = {};
  for (const l of corpus.languages) (groups[`${l.resource}-resource`] ??= []).push(l.code);
  // Bitext: the held-out questions, line i of every language the same question id.
  const set = await loadLareqa(files.testDir);
  const [pivot, ...others] = set.languages;
  const byId = new Map(set.byLanguage[pivot].questions.map((q) => [q.id, q.text]));
  const tatoebaDir = join(dir, "data", "tatoeba");
  await Deno.mkdir(tatoebaDir, { recursive: true });
  for (const l of others) {
    const qs = set.byLanguage[l].questions.filter((q) => byId.has(q.id));
    const line = (s: string) => s.replace(/\s+/g, " ").trim();
    await writeFileAtomic(
      join(tatoebaDir, `tatoeba.${l}-eng.${l}`),
      qs.map((q) => line(q.text)).join("\n") + "\n",
    );
    await writeFileAtomic(
      join(tatoebaDir, `tatoeba.${l}-eng.eng`),
      qs.map((q) => line(byId.get(q.id)!)).join("\n") + "\n",
    );
  }
  return {
    model,
    train: files.trainJsonl,
    evalDir: files.testDir,
    tatoebaDir,
    groups,
    maxLength: plan.maxLength,
    batchSize: plan.batchSize,
    steps: plan.steps,
  };
}
