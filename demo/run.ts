/**
 * The embedded demo: a synthetic multilingual QA corpus, a matching XLM-R tokenizer and a small
 * randomly initialised XLM-R, three training runs with the same budget and seed (X-X, X-Y and
 * hybrid α = 0.5), each evaluated with the real evaluation code on held-out questions, and a
 * comparison report. Nothing is downloaded and nothing is written in: every number is measured.
 * @module
 */
import { join } from "node:path";
import { fixed } from "../util/format.ts";
import type { Gpu } from "../kernels/runtime.ts";
import { buildSyntheticCorpus, writeSyntheticCorpus } from "./synthetic.ts";
import { XlmrTokenizer } from "../model/tokenizer.ts";
import { presetConfig } from "../model/config.ts";
import { initModelDir } from "../model/init.ts";
import { writeJsonAtomic } from "../model/atomic_write.ts";
import { Encoder } from "../model/encoder.ts";
import { train } from "../training/train.ts";
import type { SamplerKind } from "../training/sampler.ts";
import { evaluateLareqa, type LareqaReport } from "../eval/retrieval.ts";
import { loadLareqa } from "../eval/lareqa.ts";
import { writeReportDir } from "../eval/report.ts";

/** The demo's seed when none is given (corpus, initialisation and training). */
export const DEFAULT_DEMO_SEED = 1234;

/** Settings of one demo run. */
export interface DemoOptions {
  out: string;
  quick?: boolean;
  seed?: number;
  log?: (line: string) => void;
}

/** One trained configuration and what evaluation measured for it. */
export interface DemoRun {
  name: string;
  sampler: SamplerKind;
  firstLoss: number;
  lastLoss: number;
  pairsPerSecond: number;
  report: LareqaReport;
  /** The run's training_curves.svg, shown in the comparison report. */
  curves?: string;
}

/** What {@linkcode runDemo} returns. */
export interface DemoResult {
  runs: DemoRun[];
  /** The untrained model's evaluation, as a floor. */
  baseline: LareqaReport;
  reportPaths: string[];
  table: string;
  seconds: number;
}

/** Sizes of the full and the `--quick` demo. */
export function demoPlan(quick: boolean) {
  return quick
    ? { items: 160, steps: 30, batchSize: 8, maxLength: 24, hidden: 32, layers: 1, heads: 2 }
    : { items: 600, steps: 240, batchSize: 16, maxLength: 32, hidden: 64, layers: 2, heads: 4 };
}

/**
 * Runs the whole demo and writes everything under `opts.out`.
 *
 * @example
 * ```ts ignore
 * const gpu = await Gpu.create();
 * const result = await runDemo(gpu, { out: "out/demo", quick: true });
 * console.log(result.table);
 * ```
 */
export async function runDemo(gpu: Gpu, opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const seed = opts.seed ?? DEFAULT_DEMO_SEED;
  const plan = demoPlan(opts.quick ?? false);
  const t0 = performance.now();
  await Deno.mkdir(opts.out, { recursive: true });

  // 1. Data in the formats real data uses: train JSONL, LAReQA test files, language groups.
  const corpus = buildSyntheticCorpus({ seed, items: plan.items });
  const files = await writeSyntheticCorpus(join(opts.out, "data"), corpus);
  log(
    `corpus: ${corpus.train.length} training items, languages ` +
      corpus.languages.map((l) => `${l.code}(${l.group},${l.resource})`).join(" ") +
      ` → ${join(opts.out, "data")}`,
  );

  // 2. Tokenizer and a randomly initialised model, through the paths real checkpoints take.
  const tokenizer = XlmrTokenizer.fromVocab(corpus.vocabulary, { foldWhitespace: true });
  const tokDir = join(opts.out, "tokenizer");
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
  const initDir = join(opts.out, "init-model");
  await initModelDir(initDir, config, { seed, tokenizerDir: tokDir });
  log(
    `model: XLM-R architecture, hidden ${config.hiddenSize}, ${config.numLayers} layer(s), ` +
      `vocab ${config.vocabSize} → ${initDir}`,
  );

  const evalSet = await loadLareqa(files.testDir);
  const evaluate = async (modelDir: string) => {
    const enc = await Encoder.load(gpu, modelDir);
    try {
      return await evaluateLareqa(
        gpu,
        evalSet,
        (items) => enc.embed(items, { pooling: "mean", maxLength: plan.maxLength }),
      );
    } finally {
      enc.release();
    }
  };
  const baseline = await evaluate(initDir);

  // 3. Three runs with the same budget and seed.
  const runs: DemoRun[] = [];
  const variants: [string, SamplerKind][] = [["X-X", "xx"], ["X-Y", "xy"], [
    "hybrid α=0.5",
    "hybrid",
  ]];
  for (const [name, sampler] of variants) {
    log(`\n== training ${name} (${plan.steps} steps, batch ${plan.batchSize})`);
    const runDir = join(opts.out, "runs", sampler);
    const r = await train(gpu, {
      model: initDir,
      train: files.trainJsonl,
      out: runDir,
      sampler,
      alpha: 0.5,
      batchSize: plan.batchSize,
      steps: plan.steps,
      lr: 1e-3,
      warmupSteps: Math.round(plan.steps * 0.1),
      schedule: "linear",
      maxLength: plan.maxLength,
      seed,
      pooling: "mean",
      logEvery: Math.max(1, Math.round(plan.steps / 6)),
      quiet: false,
    });
    const report = await evaluate(runDir);
    const head = r.stats.slice(0, 5), tail = r.stats.slice(-5);
    const avg = (s: typeof head) => s.reduce((a, x) => a + x.loss, 0) / s.length;
    runs.push({
      name,
      sampler,
      curves: await Deno.readTextFile(join(runDir, "training_curves.svg")).catch(() => undefined),
      firstLoss: avg(head),
      lastLoss: avg(tail),
      pairsPerSecond: r.pairsPerSecond,
      report,
    });
  }

  const table = comparisonTable(baseline, runs);
  const reportPaths = await writeReportDir(join(opts.out, "report"), [
    { name: "untrained", report: baseline },
    ...runs.map((r) => ({ name: r.name, report: r.report, curves: r.curves })),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  await writeJsonAtomic(join(opts.out, "demo_summary.json"), {
    seconds,
    quick: opts.quick ?? false,
    plan,
    runs: runs.map((r) => ({
      name: r.name,
      sampler: r.sampler,
      first_loss: r.firstLoss,
      last_loss: r.lastLoss,
      map: r.report.map,
      language_bias: r.report.language_bias.mean,
    })),
    baseline: { map: baseline.map, language_bias: baseline.language_bias.mean },
  });
  return { runs, baseline, reportPaths, table, seconds };
}

export { fixed } from "../util/format.ts";

/** The side-by-side table the demo prints. */
export function comparisonTable(baseline: LareqaReport, runs: DemoRun[]): string {
  const rows = [
    { name: "untrained", report: baseline, loss: "" },
    ...runs.map((r) => ({
      name: r.name,
      report: r.report,
      loss: `${r.firstLoss.toFixed(3)} → ${r.lastLoss.toFixed(3)}`,
    })),
  ];
  const header =
    "| run | mono mAP | cross mAP | multi mAP | language bias ↓ | loss (first → last) |";
  const sep = "| --- | ---: | ---: | ---: | ---: | --- |";
  const lines = rows.map(({ name, report, loss }) =>
    `| ${name} | ${fixed(report.map.monolingual, 3)} | ${fixed(report.map.crosslingual, 3)} | ` +
    `${fixed(report.map.multilingual, 3)} | ${fixed(report.language_bias.mean, 1)} | ${loss} |`
  );
  return [header, sep, ...lines].join("\n");
}
