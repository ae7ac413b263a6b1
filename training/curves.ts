/**
 * Training curves of a run as one self-contained SVG: loss, in-batch accuracy, learning rate,
 * gradient norm, and the in-training evaluation's mAP (mono/cross/multi) when `--eval` ran.
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "../model/atomic_write.ts";

/** One `metrics.jsonl` line. */
export interface MetricPoint {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  accuracy?: number;
}

/** One `eval.jsonl` line (its mAP with `--eval`, its validation loss with `--val`). */
export interface EvalPoint {
  step: number;
  map?: Record<string, number | null>;
  val_loss?: number;
}

const W = 320, H = 170, PAD = { l: 52, r: 10, t: 22, b: 26 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function tick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-2 ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}

/** One panel: series of (step, value) drawn as polylines with min/max labels. */
function panel(
  x0: number,
  y0: number,
  title: string,
  series: { name: string; points: [number, number][] }[],
): string {
  const pts = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  const out = [`<g transform="translate(${x0},${y0})">`];
  out.push(
    `<text x="${W / 2}" y="14" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  );
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  out.push(
    `<rect x="${PAD.l}" y="${PAD.t}" width="${iw}" height="${ih}" fill="none" stroke="#bbb"/>`,
  );
  if (pts.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data</text></g>`);
    return out.join("");
  }
  const xs = pts.map(([x]) => x), ys = pts.map(([, y]) => y);
  let [xmin, xmax] = [Math.min(...xs), Math.max(...xs)];
  let [ymin, ymax] = [Math.min(...ys), Math.max(...ys)];
  if (xmax === xmin) [xmin, xmax] = [xmin - 1, xmax + 1];
  if (ymax === ymin) {
    [ymin, ymax] = [ymin - (Math.abs(ymin) || 1) * 0.05, ymax + (Math.abs(ymax) || 1) * 0.05];
  }
  const sx = (x: number) => PAD.l + (x - xmin) / (xmax - xmin) * iw;
  const sy = (y: number) => PAD.t + ih - (y - ymin) / (ymax - ymin) * ih;
  out.push(
    `<text x="${PAD.l - 4}" y="${PAD.t + 4}" text-anchor="end">${tick(ymax)}</text>`,
    `<text x="${PAD.l - 4}" y="${PAD.t + ih}" text-anchor="end">${tick(ymin)}</text>`,
    `<text x="${PAD.l}" y="${H - 8}">${xmin}</text>`,
    `<text x="${PAD.l + iw}" y="${H - 8}" text-anchor="end">step ${xmax}</text>`,
  );
  series.forEach((s, i) => {
    const p = s.points.filter(([, v]) => Number.isFinite(v));
    if (p.length === 0) return;
    const color = COLORS[i % COLORS.length];
    const d = p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    out.push(
      p.length === 1
        ? `<circle cx="${sx(p[0][0]).toFixed(1)}" cy="${
          sy(p[0][1]).toFixed(1)
        }" r="3" fill="${color}"/>`
        : `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${d}"/>`,
    );
    if (series.length > 1) {
      out.push(
        `<text x="${PAD.l + 6 + 70 * i}" y="${PAD.t + 14}" fill="${color}">${esc(s.name)}</text>`,
      );
    }
  });
  out.push("</g>");
  return out.join("");
}

/**
 * The SVG of a run's curves.
 *
 * @example
 * ```ts
 * import { curvesSvg } from "./curves.ts";
 * const svg = curvesSvg([{ step: 1, loss: 2, lr: 1e-3, grad_norm: 1, accuracy: 0.2 },
 *   { step: 2, loss: 1.5, lr: 1e-3, grad_norm: 0.8, accuracy: 0.5 }], [], "run");
 * console.log(svg.startsWith("<svg"), (svg.match(/<polyline/g) ?? []).length); // true 4
 * ```
 */
export function curvesSvg(metrics: MetricPoint[], evals: EvalPoint[], title: string): string {
  const s = (f: (m: MetricPoint) => number | undefined) =>
    metrics.map((m) => [m.step, f(m) ?? NaN] as [number, number]);
  const valLoss = evals.filter((e) => typeof e.val_loss === "number")
    .map((e) => [e.step, e.val_loss!] as [number, number]);
  const panels: [string, { name: string; points: [number, number][] }[]][] = [
    [
      "loss",
      [
        { name: "loss", points: s((m) => m.loss) },
        ...(valLoss.length ? [{ name: "val", points: valLoss }] : []),
      ],
    ],
    ["in-batch accuracy", [{ name: "accuracy", points: s((m) => m.accuracy) }]],
    ["learning rate", [{ name: "lr", points: s((m) => m.lr) }]],
    ["gradient norm", [{ name: "|g|", points: s((m) => m.grad_norm) }]],
  ];
  const mapEvals = evals.filter((e) => e.map);
  if (mapEvals.length > 0) {
    panels.push([
      "eval mAP",
      ["monolingual", "crosslingual", "multilingual"].map((k) => ({
        name: k.slice(0, 5),
        points: mapEvals.map((e) => [e.step, e.map![k] ?? NaN] as [number, number]),
      })),
    ]);
  }
  const cols = 2, rows = Math.ceil(panels.length / cols);
  const width = cols * W, height = rows * H + 28;
  const body = panels.map(([t, series], i) =>
    panel((i % cols) * W, 28 + Math.floor(i / cols) * H, t, series)
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">` +
    `<title>${esc(title)}: training curves</title>` +
    `<rect width="${width}" height="${height}" fill="white"/>` +
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">${
      esc(title)
    }: training curves</text>` +
    body.join("") + "</svg>\n";
}

async function readJsonl<T>(path: string): Promise<T[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).map((l) =>
      JSON.parse(l) as T
    );
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Writes `training_curves.svg` into the run folder from its metrics.jsonl and eval.jsonl. */
export async function writeCurves(out: string, title: string): Promise<string> {
  const metrics = await readJsonl<MetricPoint>(join(out, "metrics.jsonl"));
  const evals = await readJsonl<EvalPoint>(join(out, "eval.jsonl"));
  const path = join(out, "training_curves.svg");
  await writeFileAtomic(path, curvesSvg(metrics, evals, title));
  return path;
}
