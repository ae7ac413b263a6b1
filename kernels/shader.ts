/**
 * WGSL sources of `kernels/*.wgsl`. The `.wgsl` files are what people read and edit; `deno task
 * assets` bundles them into `_wgsl.gen.ts`, so the shaders travel with the modules (a copy loaded
 * over `http:` or `jsr:` has no files beside it to read). Specialisation is by `override`
 * constants; a Jinja template pass (`@huggingface/jinja`) runs only when a kernel needs a type to
 * change (f32/f16), so most shaders are plain WGSL that any tool can read.
 *
 * Two text passes run before the template:
 * - `// #include "file.wgsl"` on a line of its own is replaced by that file's text (shared code:
 *   workgroup reductions, erf/GELU), recursively; an unknown file or a cycle throws.
 * - `// @bindings` starts a comment block after which the uniform struct and `@binding` lines
 *   generated from the kernel declarations (spec.ts) are inserted, when they are given.
 * @module
 */
import { Template } from "@huggingface/jinja";
import { WGSL } from "./_wgsl.gen.ts";
import {
  BINDINGS_MARKER,
  generateDeclarations,
  type ShaderDecl,
  type TemplateVars,
} from "./spec.ts";

const MARKER_LINE = new RegExp(`^${BINDINGS_MARKER}\\b`, "m");
const INCLUDE = /^[ \t]*\/\/ #include "([^"]+)"[ \t]*$/gm;

function source(file: string, from?: string): string {
  const text = Object.hasOwn(WGSL, file) ? WGSL[file] : undefined;
  if (text === undefined) {
    throw new Error(
      `shader ${file}: unknown shader${from ? ` (included from ${from})` : ""} (kernels/ has ` +
        `${Object.keys(WGSL).join(", ")}; after adding or renaming a .wgsl file run ` +
        "`deno task assets`)",
    );
  }
  return text;
}

/**
 * `text` (the source of `file`) with every `// #include "x.wgsl"` line replaced by the included
 * file's text, recursively. Throws on an unknown file or an include cycle.
 *
 * @example
 * ```ts
 * import { resolveIncludes } from "./shader.ts";
 * const code = resolveIncludes("x.wgsl", '// #include "workgroup_reduce.wgsl"\n');
 * console.log(code.includes("fn workgroup_sum")); // true
 * ```
 */
export function resolveIncludes(
  file: string,
  text: string,
  lookup: (name: string, from: string) => string = source,
  stack: string[] = [file],
): string {
  return text.replace(INCLUDE, (_line, name: string) => {
    if (stack.includes(name)) {
      throw new Error(`shader ${file}: include cycle ${[...stack, name].join(" → ")}`);
    }
    const inner = lookup(name, stack[stack.length - 1]);
    const body = resolveIncludes(file, inner, lookup, [...stack, name]).replace(/\n$/, "");
    return `// ---- begin ${name}\n${body}\n// ---- end ${name}`;
  });
}

/**
 * The WGSL text of `file` (a file name in `kernels/`): includes resolved, the declarations of
 * `decl` inserted after the comment block that starts with `// @bindings` (when given), rendered with `template` variables
 * (when given). Throws `shader X: unknown shader ...` for a name that is not one of them.
 *
 * @example
 * ```ts
 * import { loadShader } from "./shader.ts";
 * const code = loadShader("fill.wgsl");
 * console.log(code.includes("@compute")); // true
 * ```
 */
export function loadShader(
  file: string,
  template?: TemplateVars,
  decl?: ShaderDecl,
): string {
  let text = resolveIncludes(file, source(file));
  if (decl) {
    const at = text.search(MARKER_LINE);
    if (at < 0) {
      throw new Error(`shader ${file}: no "${BINDINGS_MARKER}" line for the generated bindings`);
    }
    // The marker starts a comment block (what is generated, for readers); the declarations go
    // right after it.
    let end = text.indexOf("\n", at);
    while (end >= 0 && text.startsWith("//", end + 1)) end = text.indexOf("\n", end + 1);
    const cut = end < 0 ? text.length : end + 1;
    text = text.slice(0, cut) + generateDeclarations(decl, template) + "\n" + text.slice(cut);
  }
  if (!template) return text;
  return new Template(text).render(template);
}
