/**
 * WGSL sources of `kernels/*.wgsl`. The `.wgsl` files are what people read and edit; `deno task
 * assets` bundles them into `_wgsl.gen.ts`, so the shaders travel with the modules (a copy loaded
 * over `http:` or `jsr:` has no files beside it to read). Specialisation is by `override`
 * constants; a Jinja template pass (`@huggingface/jinja`) runs only when a kernel needs a type to
 * change (f32/f16), so most shaders are plain WGSL that any tool can read.
 * @module
 */
import { Template } from "@huggingface/jinja";
import { WGSL } from "./_wgsl.gen.ts";

/**
 * The WGSL text of `file` (a file name in `kernels/`), rendered with `template` variables if
 * given. Throws `shader X: unknown shader ...` for a name that is not one of them.
 *
 * @example
 * ```ts
 * import { loadShader } from "./shader.ts";
 * const code = loadShader("fill.wgsl");
 * console.log(code.includes("@compute")); // true
 * ```
 */
export function loadShader(file: string, template?: Record<string, unknown>): string {
  const text = Object.hasOwn(WGSL, file) ? WGSL[file] : undefined;
  if (text === undefined) {
    throw new Error(
      `shader ${file}: unknown shader (kernels/ has ${Object.keys(WGSL).join(", ")}; ` +
        "after adding or renaming a .wgsl file run `deno task assets`)",
    );
  }
  if (!template) return text;
  return new Template(text).render(template);
}
