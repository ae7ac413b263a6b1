/**
 * The generated asset modules (`kernels/_wgsl.gen.ts`, `eval/_templates.gen.ts`) must match the
 * `.wgsl` and template files they are generated from, already be in `deno fmt` style, and be what
 * the library reads: no library module reads a file beside itself.
 * @module
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { generateAssets, literal } from "../scripts/bundle_assets.ts";
import { loadShader } from "../kernels/shader.ts";
import { WGSL } from "../kernels/_wgsl.gen.ts";
import { TEMPLATES } from "../eval/_templates.gen.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("generated asset modules are up to date (else run deno task assets)", async () => {
  const generated = await generateAssets(ROOT);
  assertEquals(generated.map((a) => a.path).sort(), [
    "eval/_templates.gen.ts",
    "kernels/_wgsl.gen.ts",
  ]);
  for (const a of generated) {
    let committed: string;
    try {
      committed = await Deno.readTextFile(new URL(a.path, ROOT));
    } catch (e) {
      throw new Error(`${a.path} is missing: run deno task assets (${(e as Error).message})`);
    }
    if (committed !== a.text) {
      throw new Error(
        `${a.path} is stale: its sources changed since it was generated; run deno task assets`,
      );
    }
  }
});

Deno.test("every .wgsl and template file is bundled with its exact text", async () => {
  for (
    const [dir, map, ext] of [["kernels/", WGSL, ".wgsl"], [
      "eval/templates/",
      TEMPLATES,
      ".jinja",
    ]] as const
  ) {
    const names: string[] = [];
    for await (const e of Deno.readDir(new URL(dir, ROOT))) {
      if (e.isFile && e.name.endsWith(ext)) names.push(e.name);
    }
    assertEquals(Object.keys(map).sort(), names.sort(), `${dir}: run deno task assets`);
    for (const n of names) {
      assertEquals(map[n], await Deno.readTextFile(new URL(dir + n, ROOT)), `${dir}${n}`);
    }
  }
  assertEquals(
    loadShader("fill.wgsl"),
    await Deno.readTextFile(new URL("kernels/fill.wgsl", ROOT)),
  );
});

Deno.test("loadShader names an unknown shader", () => {
  let message = "";
  try {
    loadShader("no_such.wgsl");
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.startsWith("shader no_such.wgsl: unknown shader"), message);
  assert(message.includes("fill.wgsl"), message);
});

Deno.test("string literals are written the way deno fmt writes them", () => {
  assertEquals(literal("a\nb"), '"a\\nb"');
  assertEquals(literal(`say "hi"`), `'say "hi"'`);
  assertEquals(literal(`"it's"`), `'"it\\'s"'`);
  assertEquals(literal(`\\"`), `'\\\\"'`);
  assertEquals(literal(`'"`), `"'\\""`);
  for (const s of [`say "hi"`, `"it's"`, `\\"`, `'"`, "x\u2028y", "tab\there"]) {
    assertEquals(new Function(`return ${literal(s)};`)(), s);
  }
});

Deno.test("generated modules pass deno fmt --check and deno lint", async () => {
  const files = ["kernels/_wgsl.gen.ts", "eval/_templates.gen.ts"];
  for (const sub of [["fmt", "--check"], ["lint"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...sub, ...files],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, `deno ${sub.join(" ")} failed on the generated modules:\n${text}`);
  }
});

Deno.test("no library module reads a file relative to its own URL", async () => {
  // Modules loaded over http: or jsr: have no files beside them; assets come from *.gen.ts.
  const offenders: string[] = [];
  for (const dir of ["kernels", "model", "eval", "training", "demo", "cli"]) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (!e.isFile || !e.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(new URL(`${dir}/${e.name}`, ROOT));
      if (/Deno\.read\w*\(\s*new URL\([^)]*import\.meta\.url/.test(text)) {
        offenders.push(`${dir}/${e.name}`);
      }
      if (/new URL\([^)]*import\.meta\.url\)/.test(text) && /Deno\.read/.test(text)) {
        offenders.push(`${dir}/${e.name}`);
      }
    }
  }
  assertEquals(offenders, [], "read bundled assets (deno task assets) instead");
});
