/**
 * `bench tune`: times candidate tile shapes and K splits of the matmul kernel at the products of
 * one training step of a configuration and stores the winners in the adapter's tune cache
 * (kernels/tune.ts), which a Gpu reads with `Gpu.create({ tune: true })` or `XLMR_WEBGPU_TUNE=on`.
 *
 * `deno run -A cli.ts bench tune --config tiny|small|base [--batch-size B] [--max-length T]
 *   [--samples S] [--out FILE] [--json]`
 *
 * For each product the hand-picked plan (kernels/matmul.ts's table) is a candidate and is timed
 * first and last; its samples give the noise (their relative spread, at least 3%), and another
 * candidate replaces it only when faster by more than that noise, so the stored plan is never
 * measured slower than the hand-picked one. The fused attention forward's work split (query rows per
 * invocation, workgroup size) is tuned the same way; the row kernels (LayerNorm, softmax) are not.
 * @module
 */
import { defineFlags } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import {
  fitMatmulTiles,
  isCpuAdapter,
  matmul,
  MATMUL_TILE_CONFIGS,
  type MatmulPlan,
  matmulPlan,
  type MatmulTiles,
} from "../kernels/matmul.ts";
import {
  adapterKeyText,
  attentionShapeKey,
  ENGINE_VERSION,
  loadTuneCache,
  type MatmulForm,
  matmulShapeKey,
  saveTuneCache,
  type TuneCache,
  type TunedAttention,
  type TunedPlan,
  tunePath,
} from "../kernels/tune.ts";
import { planConfig, type PlanConfigName } from "../training/memory_plan.ts";
import { DEFAULT_TRAINER_OPTIONS } from "../training/trainer.ts";
import { attention, type AttentionDims, attentionPlanFor } from "../kernels/attention.ts";
import { timeRepeated } from "./bench_timing.ts";

/** The flags of `bench tune`. */
export const BENCH_TUNE_FLAGS = defineFlags({
  command: "bench tune",
  summary: "time matmul tile shapes and K splits at a training step's products; cache the winners",
  flags: {
    config: {
      type: "choice",
      choices: ["tiny", "small", "base", "large"],
      default: "tiny",
      description: "model size whose products are tuned",
    },
    "batch-size": { type: "integer", min: 1, default: 8, description: "queries per batch" },
    "max-length": { type: "integer", min: 2, default: 32, description: "tokens per sequence" },
    samples: { type: "integer", min: 2, default: 5, description: "timed samples per candidate" },
    out: {
      type: "string",
      arg: "FILE",
      defaultText: "$XDG_CACHE_HOME/xlmr-webgpu/tune-<adapter>.json",
      description: "cache file to write (merged with what it holds)",
    },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
  },
});

/** One product of a training step. */
export interface TuneShape {
  /** What it is, e.g. "ffn.in fwd". */
  name: string;
  m: number;
  n: number;
  k: number;
  batch: number;
  form: MatmulForm;
}

/**
 * The distinct matmul products of one contrastive training step (forward, dX and dW of every
 * linear layer; the attention products run in the fused attention kernel): `R = batch·length`
 * token rows per pass, hidden H, intermediate I.
 *
 * @example
 * ```ts
 * import { trainingMatmulShapes } from "./bench_tune.ts";
 * console.log(trainingMatmulShapes(64, 128, 256).length); // 9
 * ```
 */
export function trainingMatmulShapes(hidden: number, intermediate: number, rows: number) {
  const f32 = { aType: "f32", bType: "f32" };
  const shapes: TuneShape[] = [];
  const layers = [
    ["attn (q/k/v/out)", hidden, hidden],
    ["ffn.in", intermediate, hidden],
    ["ffn.out", hidden, intermediate],
  ] as const;
  for (const [name, out, inp] of layers) {
    // Forward Y[R,out] = X[R,in]·W[out,in]ᵀ; dX[R,in] = dY[R,out]·W[out,in]; dW[out,in] = dYᵀ·X.
    shapes.push({
      name: `${name} fwd`,
      m: rows,
      n: out,
      k: inp,
      batch: 1,
      form: { transA: false, transB: true, ...f32 },
    });
    shapes.push({
      name: `${name} dX`,
      m: rows,
      n: inp,
      k: out,
      batch: 1,
      form: { transA: false, transB: false, ...f32 },
    });
    shapes.push({
      name: `${name} dW`,
      m: out,
      n: inp,
      k: rows,
      batch: 1,
      form: { transA: true, transB: false, ...f32 },
    });
  }
  return shapes;
}

/** The candidates for one product: the hand-picked plan first, then the table's tiles and extras. */
export function tuneCandidates(s: TuneShape, cpu: boolean): TunedPlan[] {
  const hand = matmulPlan(s.m, s.n, s.k, s.batch, cpu);
  const bases: MatmulTiles[] = cpu
    ? [
      MATMUL_TILE_CONFIGS["cpu-tiny"],
      MATMUL_TILE_CONFIGS["cpu-mid"],
      MATMUL_TILE_CONFIGS["cpu-large"],
    ]
    : [
      MATMUL_TILE_CONFIGS["gpu-small"],
      MATMUL_TILE_CONFIGS["gpu-large"],
      { WX: 16, WY: 16, BK: 16, TM4: 1, TN4: 1 },
      { WX: 8, WY: 8, BK: 32, TM4: 2, TN4: 2 },
      { WX: 16, WY: 8, BK: 16, TM4: 2, TN4: 2 },
      { WX: 8, WY: 8, BK: 16, TM4: 4, TN4: 4 },
    ];
  const out: TunedPlan[] = [{ tiles: hand.tiles, splits: hand.splits }];
  const seen = new Set([JSON.stringify(out[0])]);
  const add = (p: TunedPlan) => {
    const key = JSON.stringify(p);
    if (!seen.has(key)) seen.add(key), out.push(p);
  };
  for (const base of bases) {
    const fit: MatmulPlan = fitMatmulTiles(base, s.m, s.n, s.k, s.batch, cpu);
    add({ tiles: fit.tiles, splits: 1 });
    if (fit.splits > 1) add({ tiles: fit.tiles, splits: fit.splits });
    // One more split level where K is long enough for it.
    const more = fit.splits * 2;
    if (fit.splits > 1 && s.k / more >= (cpu ? 64 : 256)) add({ tiles: fit.tiles, splits: more });
  }
  return out;
}

/** One product's result. */
export interface TuneRow {
  name: string;
  key: string;
  m: number;
  n: number;
  k: number;
  /** Hand-picked plan: median ms and GFLOP/s. */
  hand: TunedPlan & { ms: number; gflops: number };
  /** Best plan kept (the hand-picked one unless a candidate beat it by more than the noise). */
  best: TunedPlan & { ms: number; gflops: number };
  /** Relative noise of the hand plan's samples. */
  noise: number;
  candidates: number;
}

/** One fused-attention call's result (forward kernel). */
export interface AttentionTuneRow {
  key: string;
  hand: TunedAttention & { ms: number };
  best: TunedAttention & { ms: number };
  noise: number;
  candidates: number;
}

/** What `bench tune --json` prints. */
export interface TuneResult {
  op: "tune";
  adapter: string;
  config: string;
  rows: TuneRow[];
  attention: AttentionTuneRow[];
  path: string | null;
  seconds: number;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

/** Tuning samples: repetitions doubled until a submit lasts 15 ms (at most 512). */
const TUNE_TIMING = (samples: number) => ({ samples, minMs: 15, maxReps: 512 });

/**
 * Times `plan` on one product: one untimed run (compiles the pipeline), then `samples` samples of
 * enough back-to-back products in one submit to last at least 15 ms each; ms per product.
 */
async function timePlan(gpu: Gpu, s: TuneShape, plan: TunedPlan, samples: number) {
  gpu.options.matmul.tiles = plan.tiles;
  gpu.options.matmul.splits = plan.splits;
  const a = gpu.alloc(s.form.transA ? [s.k, s.m] : [s.m, s.k], "f32", "tune.a");
  const b = gpu.alloc(s.form.transB ? [s.n, s.k] : [s.k, s.n], "f32", "tune.b");
  const c = gpu.alloc([s.m, s.n], "f32", "tune.c");
  gpu.fill(a, 0.5);
  gpu.fill(b, 0.25);
  const opts = { transA: s.form.transA, transB: s.form.transB };
  try {
    return await timeRepeated(gpu, () => matmul(gpu, a, b, opts, c), TUNE_TIMING(samples));
  } finally {
    gpu.options.matmul.tiles = null;
    gpu.options.matmul.splits = null;
    gpu.release(a, b, c);
  }
}

/**
 * Forward attention work splits to try: the rule's first, its rows at workgroup 64, then rows 1, 4
 * and 16 at the rule's workgroup size. Each is its own pipeline; on a CPU adapter splits with more
 * rows than the rule's are skipped (llvmpipe compiles the unrolled 16-row kernel at head size 64 in
 * several seconds, more than tuning can win back).
 */
export function attentionCandidates(gpu: Gpu, dims: AttentionDims): TunedAttention[] {
  const hand = attentionPlanFor(gpu, dims);
  const cpu = isCpuAdapter(gpu);
  const seqPow2 = 2 ** Math.ceil(Math.log2(dims.seq));
  const out: TunedAttention[] = [{ rows: hand.rows, wg: hand.wg }];
  const add = (rows: number, wg: number) => {
    if (rows > seqPow2 || (cpu && rows > hand.rows)) return;
    if (!out.some((c) => c.rows === rows && c.wg === wg)) out.push({ rows, wg });
  };
  add(hand.rows, 64);
  for (const rows of [1, 4, 16]) add(rows, hand.wg);
  return out;
}

/** Times one attention split (median ms per call), forcing it through a one-entry cache. */
async function timeAttention(gpu: Gpu, dims: AttentionDims, plan: TunedAttention, samples: number) {
  const saved = gpu.tuned;
  const shape = [dims.batch, dims.seq, dims.heads * dims.headDim];
  const q = gpu.alloc(shape, "f32", "tune.q");
  const mask = gpu.alloc([dims.batch, dims.seq], "f32", "tune.mask");
  gpu.fill(q, 0.1);
  gpu.fill(mask, 1);
  gpu.tuned = {
    format: 1,
    adapter: "",
    engine: ENGINE_VERSION,
    created: "",
    matmul: {},
    attention: { [attentionShapeKey(dims)]: plan },
  };
  const once = () => {
    const { out, lse } = attention(gpu, q, q, q, mask, dims);
    gpu.release(out, lse);
  };
  try {
    return await timeRepeated(gpu, once, TUNE_TIMING(samples));
  } finally {
    gpu.tuned = saved;
    gpu.release(q, mask);
  }
}

/** Options of {@linkcode runTune}. */
export interface TuneOptions {
  config: PlanConfigName;
  batchSize: number;
  maxLength: number;
  /** Timed samples per candidate (default 5). */
  samples?: number;
  /** Cache file (default: the adapter's, see kernels/tune.ts); merged with what it holds. */
  out?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/**
 * Tunes the products of one training step on `gpu` and writes the cache file (atomically),
 * merging with the entries it already holds. Returns the per-product table.
 */
export async function runTune(gpu: Gpu, o: TuneOptions): Promise<TuneResult> {
  const started = performance.now();
  const samples = o.samples ?? 5;
  const cfg = planConfig(o.config);
  // The trainer encodes queries and passages in one pass (jointEncode) when no dropout is drawn and
  // GradCache is off, so its products have both batches' rows; otherwise one batch's.
  const joint = DEFAULT_TRAINER_OPTIONS.jointEncode && cfg.hiddenDropout === 0 &&
    cfg.attentionDropout === 0;
  const sequences = joint ? 2 * o.batchSize : o.batchSize;
  const rows = sequences * o.maxLength;
  const shapes = trainingMatmulShapes(cfg.hiddenSize, cfg.intermediateSize, rows);
  const cpu = isCpuAdapter(gpu);
  const saved = { tiles: gpu.options.matmul.tiles, splits: gpu.options.matmul.splits };
  const out: TuneRow[] = [];
  for (const s of shapes) {
    const cands = tuneCandidates(s, cpu);
    const flop = 2 * s.m * s.n * s.k * s.batch;
    const handSamples = await timePlan(gpu, s, cands[0], samples);
    const timed: { plan: TunedPlan; ms: number }[] = [];
    for (const p of cands.slice(1)) {
      timed.push({ plan: p, ms: median(await timePlan(gpu, s, p, samples)) });
    }
    // The hand plan again, after the others: load drift shows up in its spread.
    handSamples.push(...await timePlan(gpu, s, cands[0], samples));
    const handMs = median(handSamples);
    const spread = (Math.max(...handSamples) - Math.min(...handSamples)) / handMs;
    const noise = Math.max(0.03, spread / 2);
    let best = { plan: cands[0], ms: handMs };
    for (const t of timed) {
      if (t.ms < best.ms * (1 - noise) && t.ms < handMs * (1 - noise)) best = t;
    }
    const row: TuneRow = {
      name: s.name,
      key: matmulShapeKey(s.m, s.n, s.k, s.batch, s.form),
      m: s.m,
      n: s.n,
      k: s.k,
      hand: { ...cands[0], ms: round(handMs), gflops: round(flop / handMs / 1e6, 2) },
      best: { ...best.plan, ms: round(best.ms), gflops: round(flop / best.ms / 1e6, 2) },
      noise: round(noise),
      candidates: cands.length,
    };
    out.push(row);
    o.log?.(formatRow(row));
  }
  gpu.options.matmul.tiles = saved.tiles;
  gpu.options.matmul.splits = saved.splits;
  // The fused attention forward of the step's query and passage batches (same dims here).
  const attn: AttentionTuneRow[] = [];
  {
    const dims = {
      batch: sequences,
      seq: o.maxLength,
      heads: cfg.numHeads,
      headDim: cfg.hiddenSize / cfg.numHeads,
    };
    const savedTuned = gpu.tuned;
    gpu.tuned = null;
    const cands = attentionCandidates(gpu, dims);
    gpu.tuned = savedTuned;
    const handSamples = await timeAttention(gpu, dims, cands[0], samples);
    const timed: { plan: TunedAttention; ms: number }[] = [];
    for (const p of cands.slice(1)) {
      timed.push({ plan: p, ms: median(await timeAttention(gpu, dims, p, samples)) });
    }
    handSamples.push(...await timeAttention(gpu, dims, cands[0], samples));
    const handMs = median(handSamples);
    const noise = Math.max(
      0.03,
      (Math.max(...handSamples) - Math.min(...handSamples)) / handMs / 2,
    );
    let best = { plan: cands[0], ms: handMs };
    for (const t of timed) {
      if (t.ms < best.ms * (1 - noise) && t.ms < handMs * (1 - noise)) best = t;
    }
    const row: AttentionTuneRow = {
      key: attentionShapeKey(dims),
      hand: { ...cands[0], ms: round(handMs) },
      best: { ...best.plan, ms: round(best.ms) },
      noise: round(noise),
      candidates: cands.length,
    };
    attn.push(row);
    o.log?.(
      `attention fwd ${row.key.padEnd(14)} hand rows ${row.hand.rows} wg ${row.hand.wg} ` +
        `${row.hand.ms} ms → rows ${row.best.rows} wg ${row.best.wg} ${row.best.ms} ms ` +
        `(×${(row.hand.ms / row.best.ms).toFixed(2)}, noise ${(noise * 100).toFixed(0)}%, ` +
        `${cands.length} candidates)`,
    );
  }
  const info = gpu.adapter.info;
  const path = o.out ?? tunePath(info);
  if (path) {
    const prior = loadTuneCache(path);
    const cache: TuneCache = {
      format: 1,
      adapter: adapterKeyText(info),
      engine: ENGINE_VERSION,
      created: new Date().toISOString(),
      matmul: { ...(prior?.matmul ?? {}) },
    };
    for (const r of out) cache.matmul[r.key] = { tiles: r.best.tiles, splits: r.best.splits };
    cache.attention = { ...(prior?.attention ?? {}) };
    for (const r of attn) cache.attention[r.key] = { rows: r.best.rows, wg: r.best.wg };
    saveTuneCache(path, cache);
    // The Gpu that tuned uses its results from now on (a check that they load).
    gpu.tuned = loadTuneCache(path);
  }
  return {
    op: "tune",
    adapter: gpu.describe(),
    config: `${o.config} batch ${o.batchSize} × ${o.maxLength} (${rows} rows${
      joint ? ", queries and passages in one pass" : ""
    })`,
    rows: out,
    attention: attn,
    path,
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

const tileText = (p: TunedPlan) => {
  const t = p.tiles;
  return `${4 * t.TM4 * t.WY}×${4 * t.TN4 * t.WX}/${t.WY}×${t.WX}t/BK${t.BK}` +
    (p.splits > 1 ? ` split ${p.splits}` : "");
};

function formatRow(r: TuneRow): string {
  const gain = r.hand.ms / r.best.ms;
  return `${r.name.padEnd(22)} ${`${r.m}×${r.n}×${r.k}`.padEnd(16)} hand ${tileText(r.hand)} ` +
    `${r.hand.gflops} GFLOP/s → ${tileText(r.best)} ${r.best.gflops} GFLOP/s (×${
      gain.toFixed(2)
    }, noise ${(r.noise * 100).toFixed(0)}%, ${r.candidates} candidates)`;
}

/** A Markdown table of a tune run (PERFORMANCE.md). */
export function tuneMarkdown(r: TuneResult): string {
  const lines = [
    `| product | M×N×K | hand-picked | GFLOP/s | tuned | GFLOP/s | × |`,
    `|---|---|---|---:|---|---:|---:|`,
  ];
  for (const x of r.rows) {
    lines.push(
      `| ${x.name} | ${x.m}×${x.n}×${x.k} | ${tileText(x.hand)} | ${x.hand.gflops} | ${
        tileText(x.best)
      } | ${x.best.gflops} | ${(x.hand.ms / x.best.ms).toFixed(2)} |`,
    );
  }
  for (const a of r.attention) {
    lines.push(
      `| attention fwd | ${a.key} | rows ${a.hand.rows}, wg ${a.hand.wg} | ${a.hand.ms} ms | rows ${a.best.rows}, wg ${a.best.wg} | ${a.best.ms} ms | ${
        (a.hand.ms / a.best.ms).toFixed(2)
      } |`,
    );
  }
  return lines.join("\n");
}

/** Runs `bench tune ...flags`. */
export async function benchTuneCommand(args: string[]): Promise<void> {
  const f = BENCH_TUNE_FLAGS.parse(args);
  // The tuner times explicit plans; it never reads an existing cache for its products.
  const gpu = await Gpu.create({ tune: false });
  const result = await runTune(gpu, {
    config: f.config,
    batchSize: f["batch-size"],
    maxLength: f["max-length"],
    samples: f.samples,
    out: f.out,
    log: f.json ? undefined : (l) => console.log(l),
  });
  if (f.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `\n${result.config} on ${result.adapter}: ${result.rows.length} products in ${result.seconds} s`,
    );
    console.log(tuneMarkdown(result));
    console.log(
      result.path
        ? `\nwrote ${result.path}; use it with XLMR_WEBGPU_TUNE=on (or Gpu.create({ tune: true }))`
        : "\nno cache folder (set XDG_CACHE_HOME or HOME, or pass --out FILE); nothing written",
    );
  }
}
