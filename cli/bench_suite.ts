/**
 * `bench suite`: one benchmark run for any device, with % of peak for adapters it recognises.
 *
 * `deno run -A cli.ts bench suite [--quick] [--json] [--out DIR]`
 *
 * Runs the matmul at XLM-R base shapes (f32 and f16 weights), fused attention, LayerNorm, a full
 * training step (base at batch 32 × 128 with activation checkpointing; again with `--fp16` where the
 * adapter has shader-f16) and embedding throughput
 * (base at 128 tokens). `--quick` keeps base widths for the kernels but few rows, and runs the
 * training step and embedding on the small configuration, so lavapipe finishes in a few minutes.
 * Prints GFLOP/s, GB/s and, where {@linkcode KNOWN_GPUS} knows the adapter, % of its peak; `--out`
 * writes `suite.json` and `suite.md`. `bench/device.sh DIR` runs it on a lent GPU machine.
 * @module
 */
import { defineFlags } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { linear } from "../kernels/matmul.ts";
import { castF32ToF16 } from "../kernels/cast.ts";
import { attention } from "../kernels/attention.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { XlmrParams } from "../model/params.ts";
import { Encoder } from "../model/encoder.ts";
import { mulberry32 } from "../model/init.ts";
import { planConfig } from "../training/memory_plan.ts";
import { runStepBench } from "./bench_step.ts";
import { timeRepeated } from "./bench_timing.ts";

/** The flags of `bench suite`. */
export const BENCH_SUITE_FLAGS = defineFlags({
  command: "bench suite",
  summary: "matmul, attention, LayerNorm, a training step and embedding: GFLOP/s, GB/s, % of peak",
  flags: {
    quick: { type: "boolean", description: "small shapes (a few minutes on lavapipe)" },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
    out: { type: "string", arg: "DIR", description: "folder to write suite.json and suite.md to" },
  },
});

/** Peak rates of a GPU: FP32 and FP16 vector (non-tensor-core) TFLOP/s, memory GB/s. */
export interface GpuPeak {
  name: string;
  /** Matched against the adapter's description / device / vendor text. */
  match: RegExp;
  fp32: number;
  fp16: number;
  gbps: number;
}

/**
 * Vendor peak rates. FP16 is the vector (shader) rate, not tensor cores: WGSL reaches no tensor or
 * matrix cores, so that is the ceiling our kernels can approach. First match wins.
 * Sources:
 * - NVIDIA H200 SXM: H200 datasheet (nvidia.com/en-us/data-center/h200): FP32 67 TFLOPS, 4.8 TB/s;
 *   FP16 vector = 2× FP32 on Hopper (H100 whitepaper, "NVIDIA H100 Tensor Core GPU Architecture").
 * - NVIDIA H100 SXM / PCIe: H100 datasheet: FP32 67 / 51 TFLOPS, 3.35 / 2.0 TB/s; FP16 vector 2×.
 * - NVIDIA A100 80GB SXM: A100 datasheet: FP32 19.5 TFLOPS, 2.039 TB/s; FP16 vector 78 TFLOPS
 *   (A100 whitepaper, "NVIDIA A100 Tensor Core GPU Architecture", table 1).
 * - NVIDIA L4: L4 datasheet: FP32 30.3 TFLOPS, 300 GB/s; Ada runs FP16 vector at the FP32 rate
 *   (Ada Lovelace architecture whitepaper, appendix).
 * - GeForce RTX 4090: Ada whitepaper: FP32 82.6 TFLOPS, 1008 GB/s, FP16 vector 82.6.
 * - GeForce RTX 3080 (10 GB): Ampere GA102 whitepaper: FP32 29.8 TFLOPS, 760 GB/s, FP16 = FP32.
 * - Apple M1/M2/M3/M4 (base GPUs; Pro/Max scale with cores): Apple newsroom launch notes (M1: 2.6
 *   TFLOPS, 68 GB/s; M1 Max 10.4 TFLOPS, 400 GB/s; M2: 3.6 TFLOPS, 100 GB/s; M2 Max 13.6, 400 GB/s;
 *   M3: 120 → 100 GB/s; M4: 120 GB/s; M4 Max 546 GB/s); M3/M4 FP32 from cores × 128 ALUs × 2 ×
 *   clock (Wikipedia "Apple M3", "Apple M4"), approximate. Apple GPUs run FP16 at the FP32 rate.
 * - AMD Instinct MI300X: AMD datasheet: FP32 vector 81.7 TFLOPS, FP16 vector 163.4 (packed), 5.3
 *   TB/s.
 * - AMD Radeon RX 7900 XTX: AMD product page: 61.4 TFLOPS FP32 (dual issue), 122.8 FP16, 960 GB/s.
 * - Intel Arc A770: Intel ARK / Arc A-series briefing: 32 Xe cores × 128 FP32 lanes × 2 × 2.1 GHz
 *   ≈ 17.2 TFLOPS FP32, 34.4 FP16, 560 GB/s (16 GB).
 */
export const KNOWN_GPUS: GpuPeak[] = [
  { name: "NVIDIA H200", match: /\bH200\b/i, fp32: 67, fp16: 134, gbps: 4800 },
  { name: "NVIDIA H100 PCIe", match: /\bH100\b.*PCIe/i, fp32: 51, fp16: 102, gbps: 2000 },
  { name: "NVIDIA H100 SXM", match: /\bH100\b/i, fp32: 67, fp16: 134, gbps: 3350 },
  { name: "NVIDIA A100", match: /\bA100\b/i, fp32: 19.5, fp16: 78, gbps: 2039 },
  { name: "NVIDIA L4", match: /\bL4\b/, fp32: 30.3, fp16: 30.3, gbps: 300 },
  { name: "NVIDIA RTX 4090", match: /RTX 4090/i, fp32: 82.6, fp16: 82.6, gbps: 1008 },
  { name: "NVIDIA RTX 3080", match: /RTX 3080(?! Ti)/i, fp32: 29.8, fp16: 29.8, gbps: 760 },
  { name: "Apple M4 Max", match: /\bM4 Max\b/i, fp32: 17.0, fp16: 17.0, gbps: 546 },
  { name: "Apple M4 Pro", match: /\bM4 Pro\b/i, fp32: 9.2, fp16: 9.2, gbps: 273 },
  { name: "Apple M4", match: /\bM4\b/i, fp32: 4.3, fp16: 4.3, gbps: 120 },
  { name: "Apple M3 Max", match: /\bM3 Max\b/i, fp32: 16.4, fp16: 16.4, gbps: 400 },
  { name: "Apple M3 Pro", match: /\bM3 Pro\b/i, fp32: 7.4, fp16: 7.4, gbps: 150 },
  { name: "Apple M3", match: /\bM3\b/i, fp32: 4.1, fp16: 4.1, gbps: 100 },
  { name: "Apple M2 Max", match: /\bM2 Max\b/i, fp32: 13.6, fp16: 13.6, gbps: 400 },
  { name: "Apple M2 Pro", match: /\bM2 Pro\b/i, fp32: 6.8, fp16: 6.8, gbps: 200 },
  { name: "Apple M2", match: /\bM2\b/i, fp32: 3.6, fp16: 3.6, gbps: 100 },
  { name: "Apple M1 Max", match: /\bM1 Max\b/i, fp32: 10.4, fp16: 10.4, gbps: 400 },
  { name: "Apple M1 Pro", match: /\bM1 Pro\b/i, fp32: 5.2, fp16: 5.2, gbps: 200 },
  { name: "Apple M1", match: /\bM1\b/i, fp32: 2.6, fp16: 2.6, gbps: 68 },
  { name: "AMD MI300X", match: /MI300/i, fp32: 81.7, fp16: 163.4, gbps: 5300 },
  { name: "AMD RX 7900 XTX", match: /7900 XTX/i, fp32: 61.4, fp16: 122.8, gbps: 960 },
  { name: "Intel Arc A770", match: /Arc.*A770/i, fp32: 17.2, fp16: 34.4, gbps: 560 },
];

/**
 * The peak table entry for an adapter, or null.
 *
 * @example
 * ```ts
 * import { knownGpu } from "./bench_suite.ts";
 * console.log(knownGpu("NVIDIA H200")?.gbps); // 4800
 * console.log(knownGpu("llvmpipe (LLVM 15.0.6, 256 bits)")); // null
 * ```
 */
export function knownGpu(text: string): GpuPeak | null {
  return KNOWN_GPUS.find((g) => g.match.test(text)) ?? null;
}

/** One benchmark row. */
export interface SuiteRow {
  name: string;
  /** Shape in words. */
  shape: string;
  ms: number;
  gflops: number | null;
  gbps: number | null;
  /** % of the FP32 (or FP16 for f16 rows) peak and of the memory bandwidth, when known. */
  pct_flops: number | null;
  pct_bw: number | null;
  /** Extra figures: tokens/s, sequences/s. */
  extra?: string;
}

/** What `bench suite --json` prints. */
export interface SuiteResult {
  op: "suite";
  quick: boolean;
  adapter: string;
  known: string | null;
  /** Whether the Gpu used a tune cache (kernels/tune.ts; XLMR_WEBGPU_TUNE). */
  tuned: boolean;
  rows: SuiteRow[];
  seconds: number;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

/** Median ms of `record` over samples of back-to-back repetitions (~30 ms per sample). */
async function timeKernel(gpu: Gpu, record: () => void, samples = 5): Promise<number> {
  return median(await timeRepeated(gpu, record, { samples, minMs: 25, maxReps: 256 }));
}

function random(gpu: Gpu, shape: number[], seed: number, scale = 1) {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (r() - 0.5) * 2 * scale;
  return gpu.fromArray(v, shape);
}

/** Runs the suite on `gpu`. */
export async function runSuite(
  gpu: Gpu,
  o: { quick: boolean; log?: (row: SuiteRow) => void },
): Promise<SuiteResult> {
  const started = performance.now();
  const desc = `${gpu.adapter.info.description} ${gpu.adapter.info.device}`;
  const peak = knownGpu(desc);
  const rows: SuiteRow[] = [];
  const push = (
    name: string,
    shape: string,
    ms: number,
    flop: number | null,
    bytes: number | null,
    f16 = false,
    extra?: string,
  ) => {
    const gflops = flop === null ? null : flop / ms / 1e6;
    const gbps = bytes === null ? null : bytes / ms / 1e6;
    const row: SuiteRow = {
      name,
      shape,
      ms: round(ms),
      gflops: gflops === null ? null : round(gflops, 2),
      gbps: gbps === null ? null : round(gbps, 2),
      pct_flops: peak && gflops !== null
        ? round((100 * gflops) / (1000 * (f16 ? peak.fp16 : peak.fp32)), 2)
        : null,
      pct_bw: peak && gbps !== null ? round((100 * gbps) / peak.gbps, 2) : null,
      extra,
    };
    rows.push(row);
    o.log?.(row);
  };

  // Matmuls at XLM-R base widths (H 768, I 3072) over R token rows.
  const H = 768, I = 3072, R = o.quick ? 128 : 32 * 128;
  const products: [string, number, number, number][] = [
    ["matmul attn proj", R, H, H],
    ["matmul ffn in", R, I, H],
    ["matmul ffn out", R, H, I],
  ];
  for (const [name, m, n, k] of products) {
    const x = random(gpu, [m, k], 1);
    const w = random(gpu, [n, k], 2, 0.05);
    const y = gpu.alloc([m, n], "f32", "suite.y");
    const ms = await timeKernel(gpu, () => linear(gpu, x, w, null, y));
    const flop = 2 * m * n * k;
    push(`${name} f32`, `${m}×${k}·${n}×${k}ᵀ`, ms, flop, 4 * (m * k + n * k + m * n));
    if (gpu.hasF16) {
      const w16 = castF32ToF16(gpu, w);
      const ms16 = await timeKernel(gpu, () => linear(gpu, x, w16, null, y));
      push(
        `${name} f16 weights`,
        `${m}×${k}·${n}×${k}ᵀ`,
        ms16,
        flop,
        4 * (m * k + m * n) + 2 * n * k,
        false, // f16 storage, f32 arithmetic: the FP32 peak applies
      );
      gpu.release(w16);
    }
    gpu.release(x, w, y);
  }

  // Fused attention (forward) at base heads.
  {
    const dims = o.quick
      ? { batch: 4, seq: 64, heads: 12, headDim: 64 }
      : { batch: 32, seq: 128, heads: 12, headDim: 64 };
    const shape = [dims.batch, dims.seq, dims.heads * dims.headDim];
    const q = random(gpu, shape, 3), k = random(gpu, shape, 4), v = random(gpu, shape, 5);
    const mask = gpu.fromArray(new Float32Array(dims.batch * dims.seq).fill(1), [
      dims.batch,
      dims.seq,
    ]);
    const ms = await timeKernel(gpu, () => {
      const { out, lse } = attention(gpu, q, k, v, mask, dims);
      gpu.release(out, lse);
    });
    const { batch: B, seq: S, heads: Hh, headDim: D } = dims;
    push(
      "attention fwd",
      `B${B} S${S} ${Hh}×${D}`,
      ms,
      4 * B * Hh * S * S * D,
      4 * (4 * B * S * Hh * D + B * S + B * Hh * S),
    );
    gpu.release(q, k, v, mask);
  }

  // LayerNorm over base rows.
  {
    const rowsLn = o.quick ? 1024 : 32 * 128;
    const x = random(gpu, [rowsLn, H], 6);
    const gamma = gpu.fromArray(new Float32Array(H).fill(1), [H]);
    const beta = gpu.zeros([H]);
    const ms = await timeKernel(gpu, () => {
      const r = layerNorm(gpu, x, gamma, beta, 1e-5);
      gpu.release(r.y, r.mean, r.rstd);
    });
    push("layerNorm", `${rowsLn}×${H}`, ms, 8 * rowsLn * H, 4 * (2 * rowsLn * H + 2 * rowsLn));
    gpu.release(x, gamma, beta);
  }

  // A full training step (queries and passages), checkpointing on: f32, then mixed precision
  // (`train --fp16`) where the adapter has shader-f16, for the A/B that matters on a GPU.
  for (const fp16 of gpu.hasF16 ? [false, true] : [false]) {
    const config = o.quick ? "small" : "base";
    const batchSize = o.quick ? 8 : 32, maxLength = o.quick ? 32 : 128;
    // Each step's own peak: the previous rows' pooled buffers go first.
    gpu.trim();
    gpu.peakBytes = 0;
    const r = await runStepBench(gpu, {
      config,
      batchSize,
      maxLength,
      steps: o.quick ? 2 : 3,
      warmup: 1,
      profile: false,
      checkpointing: true,
      fp16,
    });
    const cfg = planConfig(config);
    // Model FLOPs (6 per weight per token, attention 12·L·T·H per token), no recompute counted.
    const tokens = 2 * batchSize * maxLength;
    const layerParams = 4 * cfg.hiddenSize ** 2 + 2 * cfg.hiddenSize * cfg.intermediateSize;
    const flop = tokens * cfg.numLayers *
      (6 * layerParams + 12 * maxLength * cfg.hiddenSize);
    push(
      `training step ${config}${fp16 ? " fp16" : ""}`,
      `${batchSize}×${maxLength}, checkpointing`,
      r.step_ms,
      flop,
      null,
      false,
      `${Math.round(r.tokens_per_s)} tokens/s, peak ${round(r.peak_bytes / 2 ** 20, 1)} MiB`,
    );
  }

  // Embedding throughput (inference forward + pooling) at 128 tokens.
  {
    const config = o.quick ? "small" : "base";
    const cfg = planConfig(config, o.quick ? {} : { vocabSize: 30000 });
    const n = o.quick ? 16 : 256, len = 128;
    const params = XlmrParams.init(gpu, cfg, 1);
    const enc = new Encoder(params, null);
    const r = mulberry32(7);
    const inputs = Array.from({ length: n }, () => ({
      inputIds: [0, ...Array.from({ length: len - 2 }, () => 5 + Math.floor(r() * 1000)), 2],
    }));
    const batchSize = o.quick ? 16 : 64;
    await enc.embed(inputs.slice(0, batchSize), { batchSize, maxLength: len });
    const t0 = performance.now();
    await enc.embed(inputs, { batchSize, maxLength: len });
    const ms = performance.now() - t0;
    const layerParams = 4 * cfg.hiddenSize ** 2 + 2 * cfg.hiddenSize * cfg.intermediateSize;
    const flop = n * len * cfg.numLayers * (2 * layerParams + 4 * len * cfg.hiddenSize);
    push(
      `embed ${config}`,
      `${n} × ${len} tokens, batch ${batchSize}`,
      ms,
      flop,
      null,
      false,
      `${round((n * 1000) / ms, 1)} sequences/s`,
    );
    params.release();
  }
  return {
    op: "suite",
    quick: o.quick,
    adapter: gpu.describe(),
    known: peak?.name ?? null,
    tuned: gpu.tuned !== null,
    rows,
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

const fmt = (v: number | null, d = 1) => v === null ? "–" : v.toFixed(d);

/** The suite as a Markdown table. */
export function suiteMarkdown(r: SuiteResult): string {
  const lines = [
    `Adapter: ${r.adapter}${r.known ? ` (peaks of ${r.known})` : " (no peak figures known)"}; ` +
    `${r.quick ? "--quick" : "full"} suite, ${r.seconds} s, ` +
    `${r.tuned ? "tuned matmul tiles" : "hand-picked matmul tiles"}.`,
    "",
    "| benchmark | shape | ms | GFLOP/s | GB/s | % FLOP peak | % BW peak | |",
    "|---|---|---:|---:|---:|---:|---:|---|",
  ];
  for (const x of r.rows) {
    lines.push(
      `| ${x.name} | ${x.shape} | ${fmt(x.ms, 2)} | ${fmt(x.gflops)} | ${fmt(x.gbps)} | ${
        fmt(x.pct_flops, 2)
      } | ${fmt(x.pct_bw, 2)} | ${x.extra ?? ""} |`,
    );
  }
  return lines.join("\n");
}

/** Runs `bench suite ...flags`. */
export async function benchSuiteCommand(args: string[]): Promise<void> {
  const f = BENCH_SUITE_FLAGS.parse(args);
  const gpu = await Gpu.create();
  const result = await runSuite(gpu, {
    quick: !!f.quick,
    log: f.json ? undefined : (x) =>
      console.log(
        `${x.name.padEnd(28)} ${x.shape.padEnd(30)} ${fmt(x.ms, 2).padStart(9)} ms  ${
          fmt(x.gflops).padStart(8)
        } GFLOP/s ${fmt(x.gbps).padStart(8)} GB/s${
          x.pct_flops !== null ? `  ${fmt(x.pct_flops, 2)}% peak` : ""
        }${x.extra ? `  ${x.extra}` : ""}`,
      ),
  });
  const md = suiteMarkdown(result);
  if (f.out) {
    Deno.mkdirSync(f.out, { recursive: true });
    Deno.writeTextFileSync(`${f.out}/suite.json`, JSON.stringify(result, null, 2) + "\n");
    Deno.writeTextFileSync(`${f.out}/suite.md`, md + "\n");
  }
  if (f.json) console.log(JSON.stringify(result));
  else console.log(`\n${md}${f.out ? `\n\nwrote ${f.out}/suite.json and suite.md` : ""}`);
}
