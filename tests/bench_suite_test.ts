/**
 * `bench suite --quick` as a GPU session's script (`bench/device.sh`) runs it: every benchmark
 * row, the f32 and fp16 training steps, and both report files. Speeds are not checked here (they
 * belong in the report, not in a test); that each row ran and measured something is.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

Deno.test({
  name: "bench suite --quick writes suite.json and suite.md with every row, fp16 step included",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir();
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "bench", "suite", "--quick", "--json", "--out", out],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    equal(r.code, 0, stderr);
    const report = JSON.parse(await Deno.readTextFile(join(out, "suite.json")));
    equal(report.op, "suite");
    equal(report.quick, true);
    const names = report.rows.map((row: { name: string }) => row.name);
    deepEqual(names, [
      "matmul attn proj f32",
      "matmul attn proj f16 weights",
      "matmul ffn in f32",
      "matmul ffn in f16 weights",
      "matmul ffn out f32",
      "matmul ffn out f16 weights",
      "attention fwd",
      "layerNorm",
      "training step small",
      "training step small fp16", // lavapipe has shader-f16
      "embed small",
    ]);
    for (const row of report.rows) {
      ok(row.ms > 0 && Number.isFinite(row.ms), `${row.name}: ${row.ms} ms`);
      ok(row.gflops > 0, `${row.name}: ${row.gflops} GFLOP/s`);
    }
    const md = await Deno.readTextFile(join(out, "suite.md"));
    for (const name of names) ok(md.includes(`| ${name} |`), `suite.md lacks ${name}`);
    await Deno.remove(out, { recursive: true });
  },
});
