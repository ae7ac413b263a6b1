/**
 * `bench` subcommand: times kernels from the command line.
 *
 * `bench matmul --m M --n N --k K [--runs R] [--warmup W] [--json]` computes X[M,K]·W[N,K]ᵀ (the
 * `linear` layout) and reports the median wall time of R runs after W warm-ups, each run one
 * submit and one wait, plus the GPU time from timestamp queries when the adapter has them.
 *
 * `bench step ...` (whole training steps, cli/bench_step.ts) and `bench peers ...` (ours against
 * tfjs-webgpu on the same adapter, bench/peers/tfjs_peer_bench.ts) dispatch to their own files.
 * @module
 */
import { parseArgs } from "node:util";
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

const USAGE = "usage: bench matmul --m M --n N --k K [--runs R] [--warmup W] [--json]\n" +
  "       bench step --config tiny|small|base --batch-size B --max-length T [--steps N] [--json]\n" +
  "       bench peers [--quick] [--json]\n" +
  "       bench soak [--steps 2000] [--eval-every 200] [--save-every 250] [--lose-device-at S] [--json]";

function positiveInt(flag: string, value: string | undefined, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new TypeError(`bench matmul: missing --${flag}\n${USAGE}`);
    return fallback;
  }
  const v = Number(value);
  if (!Number.isInteger(v) || v < (flag === "warmup" ? 0 : 1)) {
    throw new RangeError(`bench matmul: --${flag} must be a positive integer, got "${value}"`);
  }
  return v;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Runs `bench <op> ...flags` (`args` are the words after `bench`). Throws a TypeError naming the
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
  // Whole training steps and the tfjs-webgpu comparison live in files of their own.
  if (op === "step") return (await import("./bench_step.ts")).benchStepCommand(rest);
  if (op === "soak") return (await import("./bench_soak.ts")).benchSoakCommand(rest);
  if (op === "peers") {
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
    throw new TypeError(
      `bench: unknown or missing benchmark ${JSON.stringify(op ?? "")}\n${USAGE}`,
    );
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        m: { type: "string" },
        n: { type: "string" },
        k: { type: "string" },
        runs: { type: "string" },
        warmup: { type: "string" },
        json: { type: "boolean" },
      },
    }));
  } catch (e) {
    // node:util names the offending flag ("Unknown option '--x'", "Option '--m <value>' argument
    // missing"); keep its words and add the usage.
    throw new TypeError(`bench matmul: ${(e as Error).message}\n${USAGE}`);
  }
  const m = positiveInt("m", values.m as string | undefined);
  const n = positiveInt("n", values.n as string | undefined);
  const k = positiveInt("k", values.k as string | undefined);
  const runs = positiveInt("runs", values.runs as string | undefined, 5);
  const warmup = positiveInt("warmup", values.warmup as string | undefined, 1);

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
