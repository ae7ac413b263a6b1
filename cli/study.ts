/**
 * `study --model DIR --train DATA --eval DIR|xquad-r|mlqa-r[,…] --groups FILE.json --out DIR
 * [--alphas 0.25,0.5,0.75] [--seeds 1,2,3] [--tatoeba DIR|tatoeba] [train flags…]` or
 * `study --quick [--out DIR]`: the seeds' three questions (lang-sim vs a fixed α; the X-X : X-Y
 * ratio per language group; Tatoeba as another domain) in one resumable command with one report.
 * See training/study.ts.
 * @module
 */
import { join } from "node:path";
import { defineFlags, UsageError } from "./flags.ts";
import { resumeArgs, TRAIN_FLAGS, trainOptionsFromFlags } from "./train.ts";
import { GracefulStop } from "./signals.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import { runStudy } from "../training/study.ts";
import { resolveDataset } from "../eval/named_datasets.ts";
import { resolveTatoeba } from "../eval/tatoeba_named.ts";
import { prepareQuickStudy } from "../demo/study_quick.ts";
import { DEFAULT_DEMO_SEED } from "../demo/run.ts";

const DEFAULT_ALPHAS = [0.25, 0.5, 0.75];
const DEFAULT_SEEDS = [1, 2, 3];
const QUICK_SEEDS = [1, 2];

/** The flags of `study`: those of `train` and the study's own. */
export const STUDY_FLAGS = defineFlags({
  command: "study",
  summary:
    "xx, xy, hybrid at several α and lang-sim over seeds, evaluated per language group and on " +
    "Tatoeba: one report answering the seeds' three questions",
  flags: {
    ...TRAIN_FLAGS,
    model: { ...TRAIN_FLAGS.model, required: false, defaultText: "required without --quick" },
    train: { ...TRAIN_FLAGS.train, required: false, defaultText: "required without --quick" },
    out: {
      type: "string",
      arg: "DIR",
      defaultText: "required without --quick (out/study-quick with it)",
      description: "the study folder (runs/, study.md, study.html, study.json, plots/)",
    },
    quick: {
      type: "boolean",
      description: "the demo's embedded synthetic corpus, small model and a synthetic bitext",
    },
    eval: {
      type: "list",
      arg: "DIR|xquad-r|mlqa-r,…",
      defaultText: "required without --quick",
      description: "LAReQA set(s) every run is evaluated on (the first picks the best α)",
    },
    groups: {
      type: "string",
      arg: "FILE.json",
      defaultText: "required without --quick (low/high resource with it)",
      description: 'language groups of the eval languages ({"low": ["hi", …], "high": […]})',
    },
    tatoeba: {
      type: "string",
      arg: "DIR|tatoeba",
      defaultText: "none (--quick: a synthetic bitext)",
      description: "Tatoeba folder or the pinned download, the other-domain check",
    },
    alphas: {
      type: "list",
      defaultText: DEFAULT_ALPHAS.join(","),
      description: "hybrid variants, one per α in [0, 1]",
    },
    seeds: {
      type: "list",
      arg: "1,2,3",
      defaultText: `${DEFAULT_SEEDS.join(",")} (--quick: ${QUICK_SEEDS.join(",")})`,
      description: "every variant is trained once per seed",
    },
    "limit-questions": {
      type: "integer",
      min: 1,
      defaultText: "all",
      description: "evaluate on the first N questions per language",
    },
    "limit-pairs": {
      type: "integer",
      min: 1,
      defaultText: "all",
      description: "Tatoeba: the first N pairs per language",
    },
    resamples: {
      type: "integer",
      min: 100,
      default: 2000,
      description: "paired bootstrap resamples",
    },
  },
});

function numbers(name: string, list: string[], lo: number, hi: number, integer: boolean) {
  const xs = list.map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < lo || n > hi || (integer && !Number.isInteger(n))) {
      throw new UsageError(
        `--${name}: "${s}" is not ${integer ? "an integer ≥ 0" : `a number in [${lo}, ${hi}]`}`,
      );
    }
    return n;
  });
  if (new Set(xs).size !== xs.length) {
    throw new UsageError(`--${name}: a value is given twice (${list.join(",")})`);
  }
  return xs;
}

/** Runs the `study` command. */
export async function studyCommand(args: string[]): Promise<void> {
  const { values: v, raw: f } = STUDY_FLAGS.parseAll(args);
  const quick = v.quick === true;
  const out = v.out ?? (quick ? "out/study-quick" : undefined);
  if (!out) throw new UsageError("study: --out is required (or give --quick)");
  f.out = out;
  let evalDirs: string[];
  let groups: Record<string, string[]>;
  let tatoebaDir: string | undefined;
  if (quick) {
    const q = await prepareQuickStudy(join(out, "inputs"), DEFAULT_DEMO_SEED);
    const defaults: Record<string, string> = {
      model: q.model,
      train: q.train,
      steps: String(q.steps),
      "batch-size": String(q.batchSize),
      "max-length": String(q.maxLength),
      pooling: "mean",
      lr: "1e-3",
      "warmup-steps": String(Math.round(q.steps * 0.1)),
      schedule: "linear",
    };
    for (const [k, val] of Object.entries(defaults)) if (f[k] === undefined) f[k] = val;
    // lang-sim measures its matrix every N steps (after the step): a few times in a short run.
    f["similarity-every"] ??= String(Math.max(1, Math.floor(Number(f.steps) / 3)));
    evalDirs = v.eval ?? [q.evalDir];
    groups = q.groups;
    tatoebaDir = v.tatoeba === undefined ? q.tatoebaDir : undefined;
  } else {
    for (const k of ["model", "train", "eval", "groups"]) {
      if (f[k] === undefined) throw new UsageError(`study: --${k} is required (or give --quick)`);
    }
    evalDirs = v.eval!;
    groups = {};
  }
  if (v.groups !== undefined) {
    try {
      groups = JSON.parse(await Deno.readTextFile(v.groups));
    } catch (e) {
      throw new UsageError(`--groups ${v.groups}: ${(e as Error).message}`);
    }
    if (
      typeof groups !== "object" || groups === null || Array.isArray(groups) ||
      !Object.values(groups).every((g) => Array.isArray(g) && g.every((l) => typeof l === "string"))
    ) {
      throw new UsageError(`--groups ${v.groups}: expected {"group": ["lang", …], …}`);
    }
  }
  const resolved: string[] = [];
  for (const e of evalDirs) resolved.push((await resolveDataset(e)).dir);
  if (v.tatoeba !== undefined) {
    const src = await resolveTatoeba(v.tatoeba);
    if (!src) throw new UsageError(`--tatoeba ${v.tatoeba}: not a Tatoeba folder, nor "tatoeba"`);
    tatoebaDir = src.dir;
  }
  const alphas = numbers("alphas", v.alphas ?? DEFAULT_ALPHAS.map(String), 0, 1, false);
  const seeds = numbers(
    "seeds",
    v.seeds ?? (quick ? QUICK_SEEDS : DEFAULT_SEEDS).map(String),
    0,
    2 ** 32 - 1,
    true,
  );
  const base = trainOptionsFromFlags("study", f);
  const every = base.similarityEvery ?? 100;
  const notes: string[] = [];
  if (!base.similarityFile && base.steps !== undefined && base.steps <= every) {
    notes.push(
      `lang-sim measures its language similarity every ${every} steps and the runs ` +
        `have ${base.steps}: until then it samples as hybrid at α = ${base.alpha ?? 0.5}; ` +
        `give --similarity-every N < --steps or --similarity FILE`,
    );
    console.error(`warning: ${notes[0]}`);
  }
  const gpu = await Gpu.create();
  printAdapter(gpu);
  const stop = new GracefulStop(() => "finishing the current step, then a checkpoint");
  const t0 = performance.now();
  let r;
  try {
    r = await runStudy(gpu, {
      base: { ...base, stopSignal: stop.signal },
      evalDirs: resolved,
      tatoebaDir,
      groups,
      alphas,
      seeds,
      limitQuestions: v["limit-questions"],
      limitPairs: v["limit-pairs"],
      resamples: v.resamples,
      notes,
    });
  } finally {
    stop.dispose();
  }
  if (r.stopped) {
    console.log(
      `stopped in ${r.stopped.variant.name} after step ${r.stopped.step} (${stop.received}): ` +
        `checkpoint ${r.stopped.checkpoint}\ncontinue with: deno run -A cli.ts study ` +
        resumeArgs(args, out),
    );
    Deno.exit(stop.exitCode);
  }
  console.log(
    `\nstudy: ${r.trained} runs trained, ${r.skipped} finished before (skipped), ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s\nreport: ${r.reportPaths.join(", ")}`,
  );
}
