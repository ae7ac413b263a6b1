/**
 * Sweep the hybrid mixing ratio α over 0, 0.25, 0.5, 0.75 and 1 on the embedded synthetic
 * corpus (or your own data), evaluate each run, and plot mAP per setting against α as an SVG.
 *
 *   deno run -A examples/alpha_sweep.ts [OUT_DIR] [steps]
 */
import { join } from "node:path";
import {
  Encoder,
  evaluateLareqa,
  Gpu,
  initModelDir,
  loadLareqa,
  presetConfig,
  train,
  XlmrTokenizer,
} from "../mod.ts";
import { buildSyntheticCorpus, writeSyntheticCorpus } from "../demo/synthetic.ts";

const out = Deno.args[0] ?? "out/alpha-sweep";
const steps = Number(Deno.args[1] ?? 150);
const gpu = await Gpu.create();

const corpus = buildSyntheticCorpus({ seed: 7, items: 600 });
const files = await writeSyntheticCorpus(join(out, "data"), corpus);
const tokenizer = XlmrTokenizer.fromVocab(corpus.vocabulary, { foldWhitespace: true });
await Deno.mkdir(join(out, "tokenizer"), { recursive: true });
await Deno.writeTextFile(join(out, "tokenizer/tokenizer.json"), JSON.stringify(tokenizer.toJson()));
const config = presetConfig("tiny", {
  vocabSize: tokenizer.vocabSize,
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  intermediateSize: 128,
  maxPositions: 34,
});
await initModelDir(join(out, "init"), config, { seed: 7, tokenizerDir: join(out, "tokenizer") });
const testSet = await loadLareqa(files.testDir);

const alphas = [0, 0.25, 0.5, 0.75, 1];
const points: { alpha: number; mono: number; cross: number; multi: number }[] = [];
for (const alpha of alphas) {
  const dir = join(out, `alpha-${alpha}`);
  await train(gpu, {
    model: join(out, "init"),
    train: files.trainJsonl,
    out: dir,
    sampler: "hybrid",
    alpha,
    steps,
    batchSize: 16,
    lr: 1e-3,
    warmupSteps: 15,
    pooling: "mean",
    maxLength: 32,
    seed: 7,
    quiet: true,
  });
  const enc = await Encoder.load(gpu, dir);
  const r = await evaluateLareqa(
    gpu,
    testSet,
    (items) => enc.embed(items, { pooling: "mean", maxLength: 32 }),
  );
  enc.release();
  points.push({
    alpha,
    mono: r.map.monolingual ?? 0,
    cross: r.map.crosslingual ?? 0,
    multi: r.map.multilingual ?? 0,
  });
  console.log(
    `α=${alpha}: mono ${points.at(-1)!.mono.toFixed(3)} cross ${
      points.at(-1)!.cross.toFixed(3)
    } multi ${points.at(-1)!.multi.toFixed(3)}`,
  );
}

// A small line plot: x = α, y = mAP, one line per setting.
const W = 480, H = 300, P = 40;
const x = (a: number) => P + a * (W - 2 * P);
const y = (v: number) => H - P - v * (H - 2 * P);
const colors = { mono: "#1f77b4", cross: "#d62728", multi: "#2ca02c" } as const;
const lines = (Object.keys(colors) as (keyof typeof colors)[]).map((k) =>
  `<polyline fill="none" stroke="${colors[k]}" stroke-width="2" points="${
    points.map((p) => `${x(p.alpha).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ")
  }"/><text x="${W - P + 4}" y="${y(points.at(-1)![k]).toFixed(1)}" font-size="11" fill="${
    colors[k]
  }">${k}</text>`
).join("");
const axes = `<line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#333"/>` +
  `<line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" stroke="#333"/>` +
  alphas.map((a) =>
    `<text x="${x(a)}" y="${H - P + 16}" font-size="11" text-anchor="middle">${a}</text>`
  ).join("") +
  [0, 0.5, 1].map((v) =>
    `<text x="${P - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v}</text>`
  ).join("") +
  `<text x="${W / 2}" y="${
    H - 6
  }" font-size="12" text-anchor="middle">α (share of X-X batches)</text>`;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${
  W + 40
}" height="${H}">${axes}${lines}</svg>`;
await Deno.writeTextFile(join(out, "map_vs_alpha.svg"), svg);
console.log(`plot: ${join(out, "map_vs_alpha.svg")}`);
