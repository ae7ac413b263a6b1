/**
 * Command-line entry point: `deno run -A cli.ts <command> [flags]`. Each command lives in
 * `cli/<command>.ts`; this file only dispatches and turns errors into one clear line.
 * @module
 */
import { UsageError } from "./cli/flags.ts";

const COMMANDS: Record<
  string,
  { help: string; run: () => Promise<(args: string[]) => Promise<void>> }
> = {
  demo: {
    help:
      "train xx / xy / hybrid on an embedded synthetic corpus and compare them [--quick] [--out DIR]",
    run: async () => (await import("./cli/demo.ts")).demoCommand,
  },
  init: {
    help: "write a random Hugging Face-format model: --out DIR --config tiny|base|large|FILE.json",
    run: async () => (await import("./cli/init.ts")).initCommand,
  },
  tokenize: {
    help: "--tokenizer DIR --input IN.jsonl --out OUT.jsonl [--max-length N]",
    run: async () => (await import("./cli/tokenize.ts")).tokenizeCommand,
  },
  embed: {
    help: "--model DIR --input IN.jsonl --out OUT.safetensors [--pooling cls|mean|pooler]",
    run: async () => (await import("./cli/embed.ts")).embedCommand,
  },
  train: {
    help: "--model DIR --train DATA --out DIR [--sampler xx|xy|hybrid|lang-sim] [--alpha A] …",
    run: async () => (await import("./cli/train.ts")).trainCommand,
  },
  eval: {
    help: "--model DIR --dataset DIR --out FILE.json [--langs …] [--limit-questions N]",
    run: async () => (await import("./cli/eval.ts")).evalCommand,
  },
  mine: {
    help: "hard negatives: --model DIR --train DATA --out OUT.jsonl [--negatives N] …",
    run: async () => (await import("./cli/mine.ts")).mineCommand,
  },
  compare: {
    help: "RUN_A RUN_B: paired bootstrap CI and p per metric [--resamples N] [--report DIR]",
    run: async () => (await import("./cli/compare.ts")).compareCommand,
  },
  sweep: {
    help: "train with several α or samplers and write one comparison report",
    run: async () => (await import("./cli/sweep.ts")).sweepCommand,
  },
  bench: {
    help:
      "benchmarks: bench matmul --m M --n N --k K | bench step --config tiny | bench peers [--json]",
    run: async () => (await import("./cli/bench.ts")).benchCommand,
  },
  plan: {
    help: "memory plan: --config base --batch-size 100 --max-length 128 [--json]",
    run: async () => (await import("./cli/plan.ts")).planCommand,
  },
  smoke: {
    help: "print the adapter and run each kernel once",
    run: async () => (await import("./cli/smoke.ts")).smokeCommand,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.help}`);
  return `usage: deno run -A cli.ts <command> [flags]\n\ncommands:\n${lines.join("\n")}`;
}

if (import.meta.main) {
  Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const [name, ...args] = Deno.args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    Deno.exit(name ? 0 : 2);
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${usage()}`);
    Deno.exit(2);
  }
  try {
    await (await command.run())(args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    console.error(`error: ${(e as Error).message}`);
    if (Deno.env.get("DEBUG")) console.error(e);
    Deno.exit(1);
  }
}
