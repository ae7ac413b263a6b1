/**
 * Ours against tfjs-webgpu (4.22.0) on the same WebGPU adapter, in the same process: the matmul
 * shapes of bench/matmul_bench.ts and one XLM-R encoder layer, forward + backward. Dev-only: the
 * engine never imports this file, and tfjs comes in through the dev-only `@tensorflow/*` entries of deno.json, used here alone.
 *
 * Method: both sides get the same random inputs; each timed run records the work, submits it and
 * waits for the queue (ours: `gpu.sync()`; tfjs: `backend.submitQueue()` then
 * `device.queue.onSubmittedWorkDone()`), so neither side pays a read-back. Runs alternate which
 * side goes first; the table reports medians after warm-up (pipelines compile there). tfjs gets its
 * own device from the same adapter (its stock `webgpu` backend) with CPU forwarding of small ops
 * turned off, so that all its work runs on the adapter. The outputs (and, for the layer, every
 * gradient) are read back once and compared: `‖ours − tfjs‖ / ‖tfjs‖`.
 *
 * `deno run -A cli.ts bench peers [--quick] [--json] [--runs R] [--warmup W] [--only matmul|layer]`
 * @module
 */
// Dev-only peer: pinned inline so that deno.json (the engine's import map) never names tfjs.
import { mulberry32 } from "../../model/init.ts";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
import { Gpu } from "../../kernels/runtime.ts";
import type { Tensor } from "../../kernels/tensor.ts";
import { linear } from "../../kernels/matmul.ts";
import { BENCH_PEERS_FLAGS } from "../../cli/bench_peers.ts";
import { registerPeerGradients } from "./tfjs_gradients.ts";
import { type LayerDims, type LayerWeights, ourLayerStep } from "./our_layer.ts";

/** One row of the comparison. */
export interface PeerRow {
  bench: string;
  /** Nominal floating-point operations of one run. */
  flop: number;
  ours_ms: number;
  tfjs_ms: number;
  /** tfjs time / our time: above 1 means ours is faster. */
  speedup: number;
  ours_gflops: number;
  tfjs_gflops: number;
  /** Largest `‖ours − tfjs‖ / ‖tfjs‖` over the compared outputs. */
  rel_err: number;
  /** What was compared, with each relative error. */
  checked: Record<string, number>;
  ours_all: number[];
  tfjs_all: number[];
}

/** What `bench peers --json` prints. */
export interface PeerReport {
  adapter: string;
  tfjs_backend: string;
  runs: number;
  warmup: number;
  quick: boolean;
  rows: PeerRow[];
}

interface TfWebGpuBackend {
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  device: GPUDevice;
}

/** Validation errors on tfjs's device (work in an invalid command buffer silently never runs). */
const tfErrors: string[] = [];

const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function randn(n: number, next: () => number, scale = 1, shift = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = shift + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/** ‖a − b‖ / ‖b‖ in float64 (Infinity on NaN). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`relErr: ${a.length} vs ${b.length} values`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  const r = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
  return Number.isFinite(r) ? r : Infinity;
}

/** Initialises tfjs's WebGPU backend or throws saying why it could not. */
export async function initTfjsWebGpu(): Promise<string> {
  // Small ops whose inputs sit on the CPU would otherwise run in JavaScript.
  tf.env().set("WEBGPU_CPU_FORWARD", false);
  registerPeerGradients();
  const ok = await tf.setBackend("webgpu");
  await tf.ready();
  if (!ok || tf.getBackend() !== "webgpu") {
    throw new Error(`tfjs could not initialise its webgpu backend (got "${tf.getBackend()}")`);
  }
  (tf.backend() as unknown as TfWebGpuBackend).device.addEventListener("uncapturederror", (e) => {
    tfErrors.push((e as GPUUncapturedErrorEvent).error.message);
  });
  return tf.getBackend();
}

async function tfSync(): Promise<void> {
  const b = tf.backend() as unknown as TfWebGpuBackend;
  // tfjs's own flush order: the open compute pass must end before the encoder is finished, or the
  // whole command buffer is invalid and its work is dropped.
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.submitQueue();
  await b.device.queue.onSubmittedWorkDone();
  if (tfErrors.length > 0) throw new Error(`tfjs-webgpu device error: ${tfErrors.splice(0)[0]}`);
}

/** Times `ours` and `peer` alternately: `warmup` untimed rounds, then `runs` timed ones. */
async function interleave(
  runs: number,
  warmup: number,
  ours: () => Promise<void>,
  peer: () => Promise<void>,
): Promise<{ ours: number[]; peer: number[] }> {
  const o: number[] = [], p: number[] = [];
  const time = async (f: () => Promise<void>, into: number[] | null) => {
    const t0 = performance.now();
    await f();
    into?.push(performance.now() - t0);
  };
  for (let i = 0; i < warmup + runs; i++) {
    const timed = i >= warmup;
    if (i % 2 === 0) {
      await time(ours, timed ? o : null);
      await time(peer, timed ? p : null);
    } else {
      await time(peer, timed ? p : null);
      await time(ours, timed ? o : null);
    }
  }
  return { ours: o, peer: p };
}

function row(
  bench: string,
  flop: number,
  t: { ours: number[]; peer: number[] },
  checked: Record<string, number>,
): PeerRow {
  const om = median(t.ours), pm = median(t.peer);
  return {
    bench,
    flop,
    ours_ms: round(om),
    tfjs_ms: round(pm),
    speedup: round(pm / om),
    ours_gflops: round(flop / om / 1e6),
    tfjs_gflops: round(flop / pm / 1e6),
    rel_err: Math.max(...Object.values(checked)),
    checked,
    ours_all: t.ours.map((x) => round(x)),
    tfjs_all: t.peer.map((x) => round(x)),
  };
}

/** X[m,k]·W[n,k]ᵀ on both sides. */
async function benchMatmul(
  gpu: Gpu,
  shape: { name: string; m: number; n: number; k: number },
  runs: number,
  warmup: number,
  seed: number,
): Promise<PeerRow> {
  const { m, n, k } = shape;
  const next = mulberry32(seed);
  const xData = randn(m * k, next), wData = randn(n * k, next, 1 / Math.sqrt(k));
  const x = gpu.fromArray(xData, [m, k]), w = gpu.fromArray(wData, [n, k]);
  const y = gpu.alloc([m, n], "f32", "peer.y");
  const tx = tf.tensor2d(xData, [m, k]), tw = tf.tensor2d(wData, [n, k]);
  let ty: tf.Tensor | null = null;
  const times = await interleave(runs, warmup, async () => {
    linear(gpu, x, w, null, y);
    await gpu.sync();
  }, async () => {
    ty?.dispose();
    ty = tf.matMul(tx, tw, false, true);
    await tfSync();
  });
  const ours = await gpu.read(y);
  const theirs = await ty!.data() as Float32Array;
  const err = relErr(ours, theirs);
  gpu.release(x, w, y);
  tf.dispose([tx, tw, ty!]);
  return row(shape.name, 2 * m * n * k, times, { y: err });
}

/** Names of the layer's weights, in the order the tfjs function takes them. */
export const WEIGHT_NAMES = [
  "Wq",
  "bq",
  "Wk",
  "bk",
  "Wv",
  "bv",
  "Wo",
  "bo",
  "g1",
  "b1",
  "Wi",
  "bi",
  "Wout",
  "bout",
  "g2",
  "b2",
] as const;

export function weightShapes(d: LayerDims): Record<(typeof WEIGHT_NAMES)[number], number[]> {
  const H = d.hidden, I = d.intermediate;
  return {
    Wq: [H, H],
    bq: [H],
    Wk: [H, H],
    bk: [H],
    Wv: [H, H],
    bv: [H],
    Wo: [H, H],
    bo: [H],
    g1: [H],
    b1: [H],
    Wi: [I, H],
    bi: [I],
    Wout: [H, I],
    bout: [H],
    g2: [H],
    b2: [H],
  };
}

/** The post-LN XLM-R layer written with tfjs ops (exact erf GELU, additive key mask). */
export function tfjsLayer(d: LayerDims, maskBias: tf.Tensor) {
  const { batch: B, seq: T, hidden: H, heads: nh } = d;
  const hd = H / nh;
  const lin = (a: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.add(tf.matMul(a, w, false, true), b);
  const split = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, nh, hd]), [0, 2, 1, 3]);
  // LayerNorm from Mean/Sub/Mul/Rsqrt (tf.moments would add kernels without gradient rules here).
  const ln = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const xc = tf.sub(x, tf.mean(x, -1, true));
    const variance = tf.mean(tf.mul(xc, xc), -1, true);
    return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, d.eps))), g), b);
  };

  return (x: tf.Tensor, ...w: tf.Tensor[]): tf.Tensor => {
    const [Wq, bq, Wk, bk, Wv, bv, Wo, bo, g1, b1, Wi, bi, Wout, bout, g2, b2] = w;
    const q = split(lin(x, Wq, bq)), k = split(lin(x, Wk, bk)), v = split(lin(x, Wv, bv));
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), maskBias);
    const ctx = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [
      B * T,
      H,
    ]);
    const h1 = ln(tf.add(lin(ctx, Wo, bo), x), g1, b1);
    const inter = lin(h1, Wi, bi);
    const act = tf.mul(tf.mul(inter, 0.5), tf.add(tf.erf(tf.mul(inter, Math.SQRT1_2)), 1));
    return ln(tf.add(lin(act, Wout, bout), h1), g2, b2);
  };
}

/** One encoder layer, forward + backward, on both sides. */
async function benchLayer(
  gpu: Gpu,
  d: LayerDims,
  runs: number,
  warmup: number,
  seed: number,
): Promise<PeerRow> {
  const next = mulberry32(seed);
  const R = d.batch * d.seq, H = d.hidden, I = d.intermediate;
  const shapes = weightShapes(d);
  const host: Record<string, Float32Array> = {};
  for (const name of WEIGHT_NAMES) {
    const size = shapes[name].reduce((a, b) => a * b, 1);
    host[name] = name.startsWith("W")
      ? randn(size, next, 1 / Math.sqrt(shapes[name][1]))
      : name.startsWith("g")
      ? randn(size, next, 0.1, 1)
      : randn(size, next, 0.1);
  }
  const xData = randn(R * H, next), dyData = randn(R * H, next);
  // Sequence b has seq − b·seq/(2·batch) real tokens: padding of every amount up to half.
  const maskData = new Float32Array(R);
  for (let b = 0; b < d.batch; b++) {
    const len = d.seq - Math.floor(b * d.seq / (2 * d.batch));
    maskData.fill(1, b * d.seq, b * d.seq + len);
  }

  // Ours.
  const w = Object.fromEntries(
    WEIGHT_NAMES.map((n) => [n, gpu.fromArray(host[n], shapes[n])]),
  ) as unknown as LayerWeights;
  const grads = Object.fromEntries(
    WEIGHT_NAMES.map((n) => [n, gpu.zeros(shapes[n], "f32", `peer.d${n}`)]),
  ) as unknown as LayerWeights;
  const x = gpu.fromArray(xData, [R, H]), dy = gpu.fromArray(dyData, [R, H]);
  const mask = gpu.fromArray(maskData, [d.batch, d.seq]);
  let out: { y: Tensor; dx: Tensor } | null = null;

  // tfjs.
  const tx = tf.tensor2d(xData, [R, H]), tdy = tf.tensor2d(dyData, [R, H]);
  const tw = WEIGHT_NAMES.map((n) => tf.tensor(host[n], shapes[n]));
  const maskBias = tf.reshape(
    tf.mul(tf.sub(1, tf.tensor2d(maskData, [d.batch, d.seq])), -1e9),
    [d.batch, 1, 1, d.seq],
  );
  const f = tfjsLayer(d, maskBias);
  const valueAndGrads = tf.valueAndGrads((...args: tf.Tensor[]) => f(args[0], ...args.slice(1)));
  let peer: { value: tf.Tensor; grads: tf.Tensor[] } | null = null;

  const times = await interleave(runs, warmup, async () => {
    if (out) gpu.release(out.y, out.dx);
    // Fresh gradients every run, as tfjs makes them.
    for (const n of WEIGHT_NAMES) gpu.fill(grads[n], 0);
    out = ourLayerStep(gpu, d, w, grads, x, mask, dy);
    await gpu.sync();
  }, async () => {
    if (peer) tf.dispose([peer.value, ...peer.grads]);
    peer = valueAndGrads([tx, ...tw], tdy) as { value: tf.Tensor; grads: tf.Tensor[] };
    await tfSync();
  });

  const o = out! as { y: Tensor; dx: Tensor },
    p = peer! as { value: tf.Tensor; grads: tf.Tensor[] };
  const ourVals = await gpu.readMany([o.y, o.dx, ...WEIGHT_NAMES.map((n) => grads[n])]);
  const theirVals: Float32Array[] = [];
  for (const t of [p.value, ...p.grads]) theirVals.push(await t.data() as Float32Array);
  const checked: Record<string, number> = {
    y: relErr(ourVals[0], theirVals[0]),
    dx: relErr(ourVals[1], theirVals[1]),
  };
  WEIGHT_NAMES.forEach((n, i) => {
    // The key bias's exact gradient is zero (softmax ignores a shift shared by all keys): both
    // sides hold rounding noise there, so it is not compared.
    if (n !== "bk") checked[`d${n}`] = relErr(ourVals[2 + i], theirVals[2 + i]);
  });
  gpu.release(o.y, o.dx, x, dy, mask, ...Object.values(w), ...Object.values(grads));
  tf.dispose([tx, tdy, ...tw, maskBias, p.value, ...p.grads]);

  // Nominal FLOPs: forward products (6 [R,H]·[H,H]-sized and 2 FFN ones, plus QKᵀ and PV), and
  // twice that for the backward.
  const fwd = 2 * R * (4 * H * H + 2 * H * I) +
    4 * d.batch * d.heads * d.seq * d.seq * (H / d.heads);
  for (const k of Object.keys(checked)) checked[k] = round(checked[k], 9);
  return row(
    `layer fwd+bwd B${d.batch}×T${d.seq} H${H} heads${d.heads} I${I}`,
    3 * fwd,
    times,
    checked,
  );
}

/** One line per finished row on stderr: the full set takes minutes on a software adapter. */
function progress(r: PeerRow): void {
  console.error(`${r.bench}: ours ${r.ours_ms} ms, tfjs ${r.tfjs_ms} ms, rel err ${r.rel_err}`);
}

/** Options of {@linkcode runPeerBench}. */
export interface PeerBenchOptions {
  quick?: boolean;
  runs?: number;
  warmup?: number;
  only?: "matmul" | "layer";
}

/** Matmul shapes: bench/matmul_bench.ts's, or with `quick` ones a quarter the size or less. */
export function peerMatmulShapes(
  quick: boolean,
): { name: string; m: number; n: number; k: number }[] {
  return quick
    ? [
      { name: "matmul 256³", m: 256, n: 256, k: 256 },
      { name: "matmul 512³", m: 512, n: 512, k: 512 },
      { name: "FFN in X[512,768]·W[3072,768]ᵀ", m: 512, n: 3072, k: 768 },
      { name: "proj X[512,768]·W[768,768]ᵀ", m: 512, n: 768, k: 768 },
    ]
    : [
      { name: "matmul 512³", m: 512, n: 512, k: 512 },
      { name: "matmul 1024³", m: 1024, n: 1024, k: 1024 },
      { name: "FFN in X[2048,768]·W[3072,768]ᵀ", m: 2048, n: 3072, k: 768 },
      { name: "proj X[2048,768]·W[768,768]ᵀ", m: 2048, n: 768, k: 768 },
    ];
}

/**
 * Runs the comparison and returns the table.
 *
 * @example
 * ```ts ignore
 * import { Gpu } from "../../kernels/runtime.ts";
 * import { runPeerBench } from "./tfjs_peer_bench.ts";
 * const report = await runPeerBench(await Gpu.create(), { quick: true });
 * console.log(report.rows.map((r) => `${r.bench}: ×${r.speedup}`));
 * ```
 */
export async function runPeerBench(gpu: Gpu, o: PeerBenchOptions = {}): Promise<PeerReport> {
  const defaults = BENCH_PEERS_FLAGS.flags;
  const quick = o.quick ?? false, runs = o.runs ?? defaults.runs.default;
  const warmup = o.warmup ?? defaults.warmup.default;
  const backend = await initTfjsWebGpu();
  const rows: PeerRow[] = [];
  if (o.only !== "layer") {
    for (const [i, s] of peerMatmulShapes(quick).entries()) {
      rows.push(await benchMatmul(gpu, s, runs, warmup, 100 + i));
      progress(rows[rows.length - 1]);
    }
  }
  if (o.only !== "matmul") {
    const d: LayerDims = quick
      ? { batch: 4, seq: 32, hidden: 256, heads: 4, intermediate: 1024, eps: 1e-5 }
      : { batch: 8, seq: 64, hidden: 256, heads: 4, intermediate: 1024, eps: 1e-5 };
    rows.push(await benchLayer(gpu, d, runs, warmup, 7));
    progress(rows[rows.length - 1]);
  }
  return { adapter: gpu.describe(), tfjs_backend: backend, runs, warmup, quick, rows };
}

/** The report as a markdown table. */
export function formatPeerReport(r: PeerReport): string {
  return [
    `ours vs tfjs-webgpu 4.22.0 (${r.tfjs_backend}) on ${r.adapter}; median of ${r.runs} ` +
    `interleaved runs after ${r.warmup} warm-up`,
    "",
    "| benchmark | ours ms | tfjs ms | tfjs/ours | ours GFLOP/s | tfjs GFLOP/s | max rel err |",
    "| --- | --: | --: | --: | --: | --: | --: |",
    ...r.rows.map((x) =>
      `| ${x.bench} | ${x.ours_ms.toFixed(1)} | ${x.tfjs_ms.toFixed(1)} | ${
        x.speedup.toFixed(2)
      }× | ` +
      `${x.ours_gflops.toFixed(2)} | ${x.tfjs_gflops.toFixed(2)} | ${x.rel_err.toExponential(1)} |`
    ),
  ].join("\n");
}

/**
 * Runs `bench peers ...flags` (`args` are the words after `peers`).
 *
 * @example
 * ```ts ignore
 * import { peersCommand } from "./tfjs_peer_bench.ts";
 * await peersCommand(["--quick", "--json"]);
 * ```
 */
export async function peersCommand(args: string[]): Promise<void> {
  const f = BENCH_PEERS_FLAGS.parse(args);
  const report = await runPeerBench(await Gpu.create(), {
    quick: f.quick,
    runs: f.runs,
    warmup: f.warmup,
    only: f.only,
  });
  console.log(f.json ? JSON.stringify(report) : formatPeerReport(report));
}
