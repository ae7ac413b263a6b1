/**
 * The CLI's commands: each one's module, its entry point and its flag specs (one per command;
 * `bench` has one per subcommand). `cli.ts` dispatches through this list, `--help` and
 * `scripts/flag_docs.ts` (the README's command reference) read the specs from it.
 * @module
 */
import type { FlagDef, FlagParser } from "./flags.ts";

/** A loaded command: what it does in one line, its entry point and its flag specs. */
export interface LoadedCommand {
  summary: string;
  run: (args: string[]) => Promise<void>;
  specs: FlagParser<Record<string, FlagDef>>[];
}

/** A command, loaded on first use (a command's module graph loads only when it runs). */
export type CommandLoader = () => Promise<LoadedCommand>;

const one = <F extends Record<string, FlagDef>>(
  spec: FlagParser<F>,
  run: (args: string[]) => Promise<void>,
): LoadedCommand => ({
  summary: spec.summary,
  run,
  specs: [spec],
});

/** Every command, in the order `cli.ts --help` lists them. */
export const COMMANDS: Record<string, CommandLoader> = {
  demo: async () => {
    const m = await import("./demo.ts");
    return one(m.DEMO_FLAGS, m.demoCommand);
  },
  init: async () => {
    const m = await import("./init.ts");
    return one(m.INIT_FLAGS, m.initCommand);
  },
  tokenize: async () => {
    const m = await import("./tokenize.ts");
    return one(m.TOKENIZE_FLAGS, m.tokenizeCommand);
  },
  embed: async () => {
    const m = await import("./embed.ts");
    return one(m.EMBED_FLAGS, m.embedCommand);
  },
  train: async () => {
    const m = await import("./train.ts");
    return one(m.TRAIN_SPEC, m.trainCommand);
  },
  eval: async () => {
    const m = await import("./eval.ts");
    return one(m.EVAL_FLAGS, m.evalCommand);
  },
  mine: async () => {
    const m = await import("./mine.ts");
    return one(m.MINE_FLAGS, m.mineCommand);
  },
  compare: async () => {
    const m = await import("./compare.ts");
    return one(m.COMPARE_FLAGS, m.compareCommand);
  },
  sweep: async () => {
    const m = await import("./sweep.ts");
    return one(m.SWEEP_FLAGS, m.sweepCommand);
  },
  study: async () => {
    const m = await import("./study.ts");
    return one(m.STUDY_FLAGS, m.studyCommand);
  },
  bench: async () => {
    const m = await import("./bench.ts");
    return { summary: m.BENCH_SUMMARY, run: m.benchCommand, specs: await m.benchSpecs() };
  },
  plan: async () => {
    const m = await import("./plan.ts");
    return one(m.PLAN_FLAGS, m.planCommand);
  },
  smoke: async () => {
    const m = await import("./smoke.ts");
    return one(m.SMOKE_FLAGS, m.smokeCommand);
  },
};
