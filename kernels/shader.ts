/**
 * Loads WGSL sources that live beside this file. Specialisation is by `override` constants;
 * a Jinja template pass (`@huggingface/jinja`) runs only when a kernel needs a type to change
 * (f32/f16), so most shaders are plain WGSL that any tool can read.
 * @module
 */
import { Template } from "@huggingface/jinja";

const sources = new Map<string, string>();

/**
 * The WGSL text of `file` (relative to `kernels/`), rendered with `template` variables if given.
 *
 * @example
 * ```ts
 * import { loadShader } from "./shader.ts";
 * const code = loadShader("fill.wgsl");
 * console.log(code.includes("@compute")); // true
 * ```
 */
export function loadShader(file: string, template?: Record<string, unknown>): string {
  let text = sources.get(file);
  if (text === undefined) {
    const url = new URL(file, import.meta.url);
    try {
      text = Deno.readTextFileSync(url);
    } catch (e) {
      throw new Error(`shader ${file}: cannot read ${url.pathname}: ${(e as Error).message}`);
    }
    sources.set(file, text);
  }
  if (!template) return text;
  return new Template(text).render(template);
}
