/**
 * A sweep: the same training with several samplers or mixing ratios, each evaluated on one
 * LAReQA set, compared in one report. With a language-group file ({"group": ["ar", …]}) the
 * report also averages each setting per group (e.g. low- vs high-resource, related vs distant).
 * With several seeds every setting is trained once per seed (`<variant>/seed-<s>/`) and the table
 * gives mean ± std over the seeds. With `base.resume`, a finished run (its `train_summary.json`
 * written for the same sampler, α and seed) is not trained again, an unfinished one continues
 * from its newest checkpoint.
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { evaluateLareqa, type LareqaReport } from "../eval/retrieval.ts";
import { loadLareqa } from "../eval/lareqa.ts";
import { writeReportDir } from "../eval/report.ts";
import { DEFAULT_TRAIN_OPTIONS, findCheckpoint, train, type TrainOptions } from "./train.ts";
import { DEFAULT_TRAINER_OPTIONS } from "./trainer.ts";
import { fixed } from "../util/format.ts";
import type { SamplerKind } from "./sampler.ts";

/** One point of a sweep. */
export interface SweepVariant {
  name: string;
  sampler: SamplerKind;
  alpha: number;
}

/** What a sweep measured. */
export interface SweepResult {
  runs: {
    variant: SweepVariant;
    report: LareqaReport;
    lastLoss: number;
    curves?: string;
    /** The training seed (with `seeds`). */
    seed?: number;
    /** Finished before this sweep started (resumed sweep): evaluated, not trained again. */
    skipped?: boolean;
  }[];
  /** With `seeds`: per variant, mean and (sample) standard deviation over the seeds. */
  aggregates?: SweepAggregate[];
  table: string;
  groupTable: string;
  reportPaths: string[];
  /** Set when the base options' stop signal ended the sweep inside a variant's training. */
  stopped?: { variant: SweepVariant; step: number; checkpoint: string };
}

/** One variant over several seeds: mean and sample standard deviation (n − 1) of each number. */
export interface SweepAggregate {
  variant: SweepVariant;
  seeds: number[];
  mean: Record<SweepNumber, number>;
  std: Record<SweepNumber, number>;
}

/** The numbers a sweep table shows per run. */
export type SweepNumber = "mono" | "cross" | "multi" | "bias" | "last_loss";

/** Mean and sample standard deviation (NaN std for one value). */
export function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1
    ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1))
    : NaN;
  return { mean, std };
}

/** Mean of `values` for the languages of each group. */
export function groupMeans(
  values: Record<string, number | null>,
  groups: Record<string, string[]>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [g, langs] of Object.entries(groups)) {
    const v = langs.map((l) => values[l]).filter((x): x is number => typeof x === "number");
    out[g] = v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  }
  return out;
}

/**
 * Trains and evaluates every variant with the same data, budget and seed.
 *
 * @example
 * ```ts ignore
 * const r = await runSweep(gpu, { base, variants: [{ name: "α=0.5", sampler: "hybrid", alpha: 0.5 }], evalDir: "test" });
 * console.log(r.table);
 * ```
 */
export async function runSweep(gpu: Gpu, opts: {
  base: TrainOptions;
  variants: SweepVariant[];
  evalDir: string;
  groupsFile?: string;
  limitQuestions?: number;
  /** Train every variant once per seed (overrides `base.seed`); the table gives mean ± std. */
  seeds?: number[];
}): Promise<SweepResult> {
  const seeds = opts.seeds;
  if (seeds && (seeds.length === 0 || new Set(seeds).size !== seeds.length)) {
    throw new RangeError(`--seeds: give distinct seeds, got ${JSON.stringify(seeds)}`);
  }
  let groups: Record<string, string[]> | null = null;
  if (opts.groupsFile) {
    try {
      groups = JSON.parse(await Deno.readTextFile(opts.groupsFile));
    } catch (e) {
      throw new Error(`--groups ${opts.groupsFile}: ${(e as Error).message}`);
    }
    if (typeof groups !== "object" || groups === null || Array.isArray(groups)) {
      throw new Error(`--groups ${opts.groupsFile}: expected {"group": ["lang", …]}`);
    }
  }
  const set = await loadLareqa(opts.evalDir, { limitQuestions: opts.limitQuestions });
  const runs: SweepResult["runs"] = [];
  const jobs = opts.variants.flatMap((variant) =>
    (seeds ?? [undefined]).map((seed) => ({ variant, seed }))
  );
  for (const { variant, seed } of jobs) {
    const variantDir = join(opts.base.out, variant.name.replace(/[^A-Za-z0-9.=-]+/g, "_"));
    const dir = seed === undefined ? variantDir : join(variantDir, `seed-${seed}`);
    console.log(`\n== ${variant.name}${seed === undefined ? "" : ` seed ${seed}`}`);
    const runOpts: TrainOptions = {
      ...opts.base,
      out: dir,
      sampler: variant.sampler,
      alpha: variant.alpha,
      ...(seed === undefined ? {} : { seed }),
    };
    // With --resume, a finished run is kept as it is and an unfinished one continues from its
    // own newest checkpoint.
    const finished = opts.base.resume === undefined ? null : await finishedRun(dir, runOpts);
    let lastLoss: number;
    if (finished) {
      console.log(`finished before: ${dir} (not trained again)`);
      lastLoss = finished.lastLoss;
    } else {
      const resume = opts.base.resume === undefined
        ? undefined
        : await findCheckpoint(dir).then(() => dir, () => undefined);
      const r = await train(gpu, { ...runOpts, resume });
      if (r.stopped) {
        return {
          runs,
          table: "",
          groupTable: "",
          reportPaths: [],
          stopped: { variant, ...r.stopped },
        };
      }
      lastLoss = r.stats.at(-1)?.loss ?? NaN;
    }
    const enc = await Encoder.load(gpu, dir);
    const report = await evaluateLareqa(
      gpu,
      set,
      // Scored as trained: with the training prefixes.
      (items, role) => {
        const prefix = role === "query"
          ? opts.base.queryPrefix ?? DEFAULT_TRAIN_OPTIONS.queryPrefix
          : role === "passage"
          ? opts.base.passagePrefix ?? DEFAULT_TRAIN_OPTIONS.passagePrefix
          : "";
        return enc.embed(items.map((x) => ({ ...x, text: prefix + x.text })), {
          pooling: opts.base.pooling ?? DEFAULT_TRAINER_OPTIONS.pooling,
          maxLength: opts.base.maxLength ?? DEFAULT_TRAIN_OPTIONS.maxLength,
        });
      },
    );
    enc.release();
    const curves = await Deno.readTextFile(join(dir, "training_curves.svg")).catch(() => undefined);
    runs.push({
      variant,
      report,
      lastLoss,
      curves,
      ...(seed === undefined ? {} : { seed }),
      ...(finished ? { skipped: true } : {}),
    });
  }
  const header =
    "| run | mono | cross | multi | bias ↓ | last loss |\n| --- | ---: | ---: | ---: | ---: | ---: |";
  const numbers = (r: SweepResult["runs"][number]): Record<SweepNumber, number> => ({
    mono: r.report.map.monolingual ?? NaN,
    cross: r.report.map.crosslingual ?? NaN,
    multi: r.report.map.multilingual ?? NaN,
    bias: r.report.language_bias.mean ?? NaN,
    last_loss: r.lastLoss,
  });
  const digits: Record<SweepNumber, number> = {
    mono: 3,
    cross: 3,
    multi: 3,
    bias: 1,
    last_loss: 3,
  };
  const keys = Object.keys(digits) as SweepNumber[];
  let aggregates: SweepAggregate[] | undefined;
  let table: string;
  if (seeds) {
    aggregates = opts.variants.map((variant) => {
      const mine = runs.filter((r) => r.variant === variant);
      const stats = keys.map((k) => [k, meanStd(mine.map((r) => numbers(r)[k]))] as const);
      return {
        variant,
        seeds: mine.map((r) => r.seed!),
        mean: Object.fromEntries(stats.map(([k, s]) => [k, s.mean])) as Record<SweepNumber, number>,
        std: Object.fromEntries(stats.map(([k, s]) => [k, s.std])) as Record<SweepNumber, number>,
      };
    });
    table = `${header}\n` +
      aggregates.map((a) =>
        `| ${a.variant.name} (${a.seeds.length} seeds) | ` +
        keys.map((k) => `${fixed(a.mean[k], digits[k])} ± ${fixed(a.std[k], digits[k])}`).join(
          " | ",
        ) + " |"
      ).join("\n");
  } else {
    table = header + "\n" +
      runs.map((r) =>
        `| ${r.variant.name} | ${keys.map((k) => fixed(numbers(r)[k], digits[k])).join(" | ")} |`
      ).join("\n");
  }
  let groupTable = "";
  if (groups) {
    const names = Object.keys(groups);
    groupTable = `| run | ${
      names.map((g) => `multi ${g}`).join(" | ")
    } | ${names.map((g) => `mono ${g}`).join(" | ")} |\n` +
      `| --- |${" ---: |".repeat(names.length * 2)}\n` +
      runs.map(({ variant, report, seed }) => {
        const multi = groupMeans(report.multilingual_by_language, groups!);
        const mono = groupMeans(
          Object.fromEntries(Object.keys(report.pairs).map((l) => [l, report.pairs[l][l]])),
          groups!,
        );
        return `| ${runName(variant, seed)} | ${
          names.map((g) =>
            fixed(multi[g], 3)
          ).join(" | ")
        } | ${names.map((g) => fixed(mono[g], 3)).join(" | ")} |`;
      }).join("\n");
  }
  const reportPaths = await writeReportDir(
    join(opts.base.out, "report"),
    runs.map((r) => ({ name: runName(r.variant, r.seed), report: r.report, curves: r.curves })),
  );
  if (groupTable) {
    const path = join(opts.base.out, "report", "groups.md");
    await writeFileAtomic(path, `# Per language group\n\n${groupTable}\n`);
    reportPaths.push(path);
  }
  await writeJsonAtomic(join(opts.base.out, "sweep.json"), {
    runs: runs.map((r) => ({
      ...r.variant,
      ...(r.seed === undefined ? {} : { seed: r.seed }),
      last_loss: r.lastLoss,
      report: r.report,
    })),
    ...(aggregates
      ? {
        aggregates: aggregates.map((a) => ({
          ...a.variant,
          seeds: a.seeds,
          mean: a.mean,
          std: a.std,
          std_kind: "sample (n − 1)",
        })),
      }
      : {}),
    groups,
  });
  return {
    runs,
    aggregates,
    table: groupTable ? `${table}\n\n${groupTable}` : table,
    groupTable,
    reportPaths,
  };
}

function runName(variant: SweepVariant, seed?: number): string {
  return seed === undefined ? variant.name : `${variant.name} seed=${seed}`;
}

/**
 * A run folder whose training finished with these settings (its train_summary.json is written
 * last and records the sampler, α and seed), with its last loss; null otherwise.
 */
async function finishedRun(dir: string, o: TrainOptions): Promise<{ lastLoss: number } | null> {
  let summary: { last_loss?: number; options?: Record<string, unknown> };
  try {
    summary = JSON.parse(await Deno.readTextFile(join(dir, "train_summary.json")));
  } catch {
    return null;
  }
  const s = summary.options ?? {};
  const same = s.sampler === o.sampler && s.alpha === o.alpha &&
    s.seed === (o.seed ?? DEFAULT_TRAIN_OPTIONS.seed) &&
    (o.steps === undefined || s.totalSteps === o.steps);
  if (!same) return null;
  try {
    await Deno.stat(join(dir, "model.safetensors"));
  } catch {
    return null;
  }
  return { lastLoss: typeof summary.last_loss === "number" ? summary.last_loss : NaN };
}
