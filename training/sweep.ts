/**
 * A sweep: the same training with several samplers or mixing ratios, each evaluated on one
 * LAReQA set, compared in one report. With a language-group file ({"group": ["ar", …]}) the
 * report also averages each setting per group (e.g. low- vs high-resource, related vs distant).
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "../kernels/runtime.ts";
import { Encoder } from "../model/encoder.ts";
import { writeFileAtomic, writeJsonAtomic } from "../model/atomic_write.ts";
import { evaluateLareqa, type LareqaReport } from "../eval/retrieval.ts";
import { loadLareqa } from "../eval/lareqa.ts";
import { writeReportDir } from "../eval/report.ts";
import { findCheckpoint, train, type TrainOptions } from "./train.ts";
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
  runs: { variant: SweepVariant; report: LareqaReport; lastLoss: number; curves?: string }[];
  table: string;
  groupTable: string;
  reportPaths: string[];
  /** Set when the base options' stop signal ended the sweep inside a variant's training. */
  stopped?: { variant: SweepVariant; step: number; checkpoint: string };
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
}): Promise<SweepResult> {
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
  for (const variant of opts.variants) {
    const dir = join(opts.base.out, variant.name.replace(/[^A-Za-z0-9.=-]+/g, "_"));
    console.log(`\n== ${variant.name}`);
    // With --resume, each variant continues from its own folder (when it has a checkpoint).
    const resume = opts.base.resume === undefined
      ? undefined
      : await findCheckpoint(dir).then(() => dir, () => undefined);
    const r = await train(gpu, {
      ...opts.base,
      out: dir,
      resume,
      sampler: variant.sampler,
      alpha: variant.alpha,
    });
    if (r.stopped) {
      return {
        runs,
        table: "",
        groupTable: "",
        reportPaths: [],
        stopped: { variant, ...r.stopped },
      };
    }
    const enc = await Encoder.load(gpu, dir);
    const report = await evaluateLareqa(
      gpu,
      set,
      // Scored as trained: with the training prefixes.
      (items, role) => {
        const prefix = role === "query"
          ? opts.base.queryPrefix ?? ""
          : role === "passage"
          ? opts.base.passagePrefix ?? ""
          : "";
        return enc.embed(items.map((x) => ({ ...x, text: prefix + x.text })), {
          pooling: opts.base.pooling ?? "cls",
          maxLength: opts.base.maxLength ?? 128,
        });
      },
    );
    enc.release();
    const curves = await Deno.readTextFile(join(dir, "training_curves.svg")).catch(() => undefined);
    runs.push({ variant, report, lastLoss: r.stats.at(-1)?.loss ?? NaN, curves });
  }
  const header =
    "| run | mono | cross | multi | bias ↓ | last loss |\n| --- | ---: | ---: | ---: | ---: | ---: |";
  const table = header + "\n" +
    runs.map(({ variant, report, lastLoss }) =>
      `| ${variant.name} | ${fixed(report.map.monolingual, 3)} | ` +
      `${fixed(report.map.crosslingual, 3)} | ${fixed(report.map.multilingual, 3)} | ` +
      `${fixed(report.language_bias.mean, 1)} | ${fixed(lastLoss, 3)} |`
    ).join("\n");
  let groupTable = "";
  if (groups) {
    const names = Object.keys(groups);
    groupTable = `| run | ${
      names.map((g) => `multi ${g}`).join(" | ")
    } | ${names.map((g) => `mono ${g}`).join(" | ")} |\n` +
      `| --- |${" ---: |".repeat(names.length * 2)}\n` +
      runs.map(({ variant, report }) => {
        const multi = groupMeans(report.multilingual_by_language, groups!);
        const mono = groupMeans(
          Object.fromEntries(Object.keys(report.pairs).map((l) => [l, report.pairs[l][l]])),
          groups!,
        );
        return `| ${variant.name} | ${
          names.map((g) => fixed(multi[g], 3)).join(" | ")
        } | ${names.map((g) => fixed(mono[g], 3)).join(" | ")} |`;
      }).join("\n");
  }
  const reportPaths = await writeReportDir(
    join(opts.base.out, "report"),
    runs.map((r) => ({ name: r.variant.name, report: r.report, curves: r.curves })),
  );
  if (groupTable) {
    const path = join(opts.base.out, "report", "groups.md");
    await writeFileAtomic(path, `# Per language group\n\n${groupTable}\n`);
    reportPaths.push(path);
  }
  await writeJsonAtomic(join(opts.base.out, "sweep.json"), {
    runs: runs.map((r) => ({ ...r.variant, last_loss: r.lastLoss, report: r.report })),
    groups,
  });
  return { runs, table: groupTable ? `${table}\n\n${groupTable}` : table, groupTable, reportPaths };
}
