/**
 * `bench` subcommand: times kernels from the command line.
 *
 * `bench matmul --m M --n N --k K [--runs R] [--warmup W] [--json]` computes X[M,K]·W[N,K]ᵀ (the
 * `linear` layout) and reports the median wall time of R runs after W warm-ups, each run one
 * submit and one wait, plus the GPU time from timestamp queries when the adapter has them.
 *
 * `bench step ...` (whole training steps, cli/bench_step.ts), `bench peers ...` (ours against
 * tfjs-webgpu on the same adapter, bench/peers/tfjs_peer_bench.ts; flags in cli/bench_peers.ts)
 * and `bench soak ...` (cli/bench_soak.ts) dispatch to their own files.
 * @module
 */
import { defineFlags, type FlagDef, type FlagParser, HelpRequested, UsageError } from "./flags.ts";
import { BENCH_PEERS_FLAGS } from "./bench_peers.ts";
import { Gpu } from "../kernels/runtime.ts";
import { linear } from "../kernels/matmul.ts";

/** What `bench matmul --json` prints (one JSON object). */
export interface MatmulBenchResult {
  op: "matmul";
  m: number;
  n: number;
  k: number;
  runs: number;
  median_ms: number;
  gflops: number;
  gpu_ms: number | null;
  gpu_gflops: number | null;
  adapter: string;
}

/** What `bench` does, in one line (`cli.ts --help`). */
export const BENCH_SUMMARY = "benchmarks: bench matmul | step | peers | soak | tune | suite " +
  "(bench <name> --help lists its flags)";

/** The flags of `bench matmul`. */
export const BENCH_MATMUL_FLAGS = defineFlags({
  command: "bench matmul",
  summary: "time X[M,K]·W[N,K]ᵀ (the linear layout): median wall time, GFLOP/s, GPU timestamps",
  flags: {
    m: { type: "integer", min: 1, required: true, description: "rows of X" },
    n: { type: "integer", min: 1, required: true, description: "rows of W (output columns)" },
    k: { type: "integer", min: 1, required: true, description: "inner dimension" },
    runs: { type: "integer", min: 1, default: 5, description: "timed runs" },
    warmup: { type: "integer", min: 0, default: 1, description: "untimed runs first" },
    json: { type: "boolean", description: "print one JSON object" },
  },
});

/** The specs of every `bench` subcommand, in the order the help lists them. */
export async function benchSpecs(): Promise<FlagParser<Record<string, FlagDef>>[]> {
  return [
    BENCH_MATMUL_FLAGS,
    (await import("./bench_step.ts")).BENCH_STEP_FLAGS,
    BENCH_PEERS_FLAGS,
    (await import("./bench_soak.ts")).BENCH_SOAK_FLAGS,
    (await import("./bench_tune.ts")).BENCH_TUNE_FLAGS,
    (await import("./bench_suite.ts")).BENCH_SUITE_FLAGS,
  ] as FlagParser<Record<string, FlagDef>>[];
}

async function benchUsage(): Promise<string> {
  const specs = await benchSpecs();
  const width = Math.max(...specs.map((s) => s.command.length));
  return `usage: deno run -A cli.ts bench <name> [flags]\n\n${BENCH_SUMMARY}\n\n` +
    specs.map((s) => `  ${s.command.padEnd(width)}  ${s.summary}`).join("\n");
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Runs `bench <op> ...flags` (`args` are the words after `bench`). Throws a UsageError naming the
 * flag on an unknown flag or a missing value.
 *
 * @example
 * ```ts
 * import { benchCommand } from "./bench.ts";
 * await benchCommand(["matmul", "--m", "64", "--n", "64", "--k", "64", "--runs", "1", "--json"]);
 * ```
 */
export async function benchCommand(args: string[]): Promise<void> {
  const [op, ...rest] = args;
  if (op === "--help" || op === "-h") throw new HelpRequested(await benchUsage());
  // Whole training steps and the tfjs-webgpu comparison live in files of their own.
  if (op === "step") return (await import("./bench_step.ts")).benchStepCommand(rest);
  if (op === "soak") return (await import("./bench_soak.ts")).benchSoakCommand(rest);
  if (op === "tune") return (await import("./bench_tune.ts")).benchTuneCommand(rest);
  if (op === "suite") return (await import("./bench_suite.ts")).benchSuiteCommand(rest);
  if (op === "peers") {
    // Flags (and --help) are checked before tfjs is loaded.
    BENCH_PEERS_FLAGS.parse(rest);
    // bench/peers needs the dev-only tfjs packages and is not published: it runs from a checkout.
    if (!import.meta.url.startsWith("file:")) {
      throw new Error(
        `bench peers runs only from a checkout of the repository (it needs the dev-only ` +
          `@tensorflow packages of its deno.json, and bench/peers is not published); this CLI ` +
          `was loaded from ${new URL("..", import.meta.url).href}`,
      );
    }
    // A template-literal specifier keeps the tfjs comparison out of the CLI's module graph: deno
    // check, deno info and deno publish follow only string-literal imports (and, unlike a
    // specifier in a variable, a template literal raises no "unanalyzable dynamic import"
    // warning in deno publish); npm fetches tfjs only when this subcommand runs.
    const peer = "tfjs_peer_bench";
    return (await import(`../bench/peers/${peer}.ts`)).peersCommand(rest);
  }
  if (op !== "matmul") {
    throw new UsageError(
      `bench: unknown or missing benchmark ${JSON.stringify(op ?? "")}\n${await benchUsage()}`,
    );
  }
  const values = BENCH_MATMUL_FLAGS.parse(rest);
  const { m, n, k, runs, warmup } = values;

  const gpu = await Gpu.create();
  const x = gpu.alloc([m, k], "f32", "bench.x");
  const w = gpu.alloc([n, k], "f32", "bench.w");
  const y = gpu.alloc([m, n], "f32", "bench.y");
  gpu.fill(x, 0.5);
  gpu.fill(w, 0.25);
  for (let i = 0; i < warmup; i++) {
    linear(gpu, x, w, null, y);
    await gpu.sync();
  }
  const wall: number[] = [], gpuMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    // timeGpu submits once and waits once (for its timestamps, or a plain sync without them).
    const g = await gpu.timeGpu(() => linear(gpu, x, w, null, y));
    wall.push(performance.now() - t0);
    if (g !== null) gpuMs.push(g);
  }
  const flop = 2 * m * n * k;
  const medianMs = median(wall);
  const gpuMedian = gpuMs.length === runs ? median(gpuMs) : null;
  const result: MatmulBenchResult = {
    op: "matmul",
    m,
    n,
    k,
    runs,
    median_ms: round(medianMs),
    gflops: round(flop / medianMs / 1e6),
    gpu_ms: gpuMedian === null ? null : round(gpuMedian),
    gpu_gflops: gpuMedian === null ? null : round(flop / gpuMedian / 1e6),
    adapter: gpu.describe(),
  };
  gpu.release(x, w, y);
  if (values.json) console.log(JSON.stringify(result));
  else {
    const gpuPart = result.gpu_ms === null
      ? "no GPU timestamps"
      : `GPU ${result.gpu_ms} ms, ${result.gpu_gflops} GFLOP/s`;
    console.log(
      `matmul X[${m},${k}]·W[${n},${k}]ᵀ: median ${result.median_ms} ms, ${result.gflops} GFLOP/s ` +
        `(${gpuPart}) over ${runs} runs after ${warmup} warm-up on ${result.adapter}`,
    );
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
