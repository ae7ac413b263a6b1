/**
 * The layering rules of ARCHITECTURE.md, enforced: every import between the repository's own
 * modules runs one way through the layers, and no two files import each other, directly or
 * through others.
 */
import { deepEqual, ok } from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Layer of each top-level folder or file; an import may only go to the same or a lower one. */
export const LAYERS: Record<string, number> = {
  util: 0,
  kernels: 1,
  model: 2,
  eval: 3,
  training: 4,
  demo: 5,
  cli: 6,
  bench: 6,
  "mod.ts": 7,
  "cli.ts": 7,
  examples: 8,
  scripts: 8,
};

/** Every .ts file of the product (tests and fixtures excluded), repository-relative. */
async function productFiles(dir = ROOT): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    const rel = relative(ROOT, path);
    if (e.name.startsWith(".") || ["tests", "node_modules", "out", "runs"].includes(rel)) continue;
    if (e.isDirectory) out.push(...await productFiles(path));
    else if (e.name.endsWith(".ts")) out.push(rel);
  }
  return out.sort();
}

/** Relative imports and re-exports of a file, resolved to repository-relative paths. */
export function localImports(file: string, source: string): string[] {
  const out: string[] = [];
  const re =
    /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  for (const m of source.matchAll(re)) {
    out.push(normalize(join(dirname(file), m[1] ?? m[2])));
  }
  return out;
}

function layerOf(file: string): number | undefined {
  return LAYERS[file.split("/")[0]];
}

const files = await productFiles();
const graph = new Map<string, string[]>();
for (const f of files) graph.set(f, localImports(f, await Deno.readTextFile(join(ROOT, f))));

Deno.test("every product file belongs to a layer", () => {
  deepEqual(files.filter((f) => layerOf(f) === undefined), []);
});

Deno.test("imports run one way: util < kernels < model < eval < training < demo < cli, bench < mod.ts, cli.ts < examples", () => {
  const upward: string[] = [];
  for (const [f, deps] of graph) {
    for (const d of deps) {
      const from = layerOf(f)!, to = layerOf(d);
      if (to !== undefined && to > from) upward.push(`${f} imports ${d}`);
    }
  }
  deepEqual(upward, [], `imports that go up a layer:\n${upward.join("\n")}`);
});

/** Every import cycle in `g`, each as "a → b → a". */
export function findCycles(g: Map<string, string[]>): string[] {
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" → "));
      return;
    }
    state.set(f, "open");
    for (const d of g.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of g.keys()) visit(f, []);
  return cycles;
}

Deno.test("no file-level import cycles", () => {
  const cycles = findCycles(graph);
  deepEqual(cycles, [], `import cycles:\n${cycles.join("\n")}`);
});

Deno.test("the layering check sees an upward import and a cycle when there is one", () => {
  deepEqual(localImports("eval/x.ts", 'import { a } from "../training/data.ts";'), [
    "training/data.ts",
  ]);
  deepEqual(localImports("model/a.ts", 'export { b } from "./b.ts";\nimport("./c.ts")'), [
    "model/b.ts",
    "model/c.ts",
  ]);
  ok(layerOf("training/data.ts")! > layerOf("eval/x.ts")!);
  const g = new Map([["model/init.ts", ["model/params.ts"]], ["model/params.ts", [
    "model/init.ts",
  ]]]);
  deepEqual(findCycles(g), ["model/init.ts → model/params.ts → model/init.ts"]);
});
