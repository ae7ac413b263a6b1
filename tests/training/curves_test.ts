/** A run's training curves: one SVG with loss, accuracy, lr, gradient norm and eval mAP. */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { curvesSvg, writeCurves } from "../../training/curves.ts";

const metrics = Array.from({ length: 20 }, (_, i) => ({
  step: i + 1,
  loss: 3 / (i + 1),
  lr: 1e-3 * (1 - i / 20),
  grad_norm: 1 + Math.sin(i),
  accuracy: i / 20,
}));

Deno.test("curvesSvg: a panel per quantity, the eval mAP series, escaped titles, no NaN", () => {
  const svg = curvesSvg(metrics, [
    { step: 10, map: { monolingual: 0.5, crosslingual: 0.2, multilingual: 0.3 } },
    { step: 20, map: { monolingual: 0.6, crosslingual: 0.3, multilingual: null } },
  ], "hybrid <α=0.5>");
  ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  // 4 metrics and 2 mAP series as lines; multilingual has one finite point: a dot.
  equal((svg.match(/<polyline/g) ?? []).length, 6);
  equal((svg.match(/<circle/g) ?? []).length, 1);
  for (const t of ["loss", "in-batch accuracy", "learning rate", "gradient norm", "eval mAP"]) {
    ok(svg.includes(`>${t}</text>`), t);
  }
  ok(svg.includes("hybrid &lt;α=0.5&gt;: training curves"));
  ok(!svg.includes("NaN") && !svg.includes("Infinity"));
  equal((svg.match(/<g /g) ?? []).length, (svg.match(/<\/g>/g) ?? []).length);
  // Nothing logged yet: panels say so.
  ok(curvesSvg([], [], "x").includes("no data"));
});

Deno.test("writeCurves reads metrics.jsonl and eval.jsonl of a run folder", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    join(dir, "metrics.jsonl"),
    metrics.map((m) => JSON.stringify(m)).join("\n") + "\n",
  );
  const path = await writeCurves(dir, "run");
  const svg = await Deno.readTextFile(path);
  equal((svg.match(/<polyline/g) ?? []).length, 4);
  ok(!svg.includes("eval mAP"));
  await Deno.remove(dir, { recursive: true });
});
