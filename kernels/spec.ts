/**
 * Kernel declarations: each kernel states once, in TypeScript, the uniforms (name → `u32`, `i32`
 * or `f32`, in struct order) and the storage bindings (name → access, element type) of its shader.
 * The shader loader writes the `struct Params` and the `@group(0) @binding(n)` lines from the
 * declaration (where the `.wgsl` file says `// @bindings`), and {@linkcode Gpu.run} binds tensors
 * and uniforms by those names, so the TypeScript and the WGSL cannot drift apart: a missing,
 * extra or misspelled name, or a tensor of the wrong dtype, throws naming the kernel and the
 * binding.
 *
 * A shader file with several entry points that bind different things declares one program per
 * group of entry points ({@linkcode kernels}); the generated text holds every program's
 * declarations (a name declared by two programs must be declared the same way by both).
 *
 * @example
 * ```ts
 * import { kernel } from "./spec.ts";
 * const ADD = kernel({
 *   shader: "elementwise.wgsl",
 *   entries: ["add"],
 *   uniforms: { count: "u32" },
 *   bindings: { a: "read", b: "read", out: "read_write" },
 * });
 * console.log(ADD.name); // elementwise.wgsl:add
 * ```
 * @module
 */
import type { DType } from "./tensor.ts";

/** Type of one uniform (every uniform is one 4-byte scalar). */
export type UniformType = "u32" | "i32" | "f32";
/** Access of a storage binding. */
export type Access = "read" | "read_write";
/** Template variables of a shader (the Jinja pass), which some element types depend on. */
export type TemplateVars = Record<string, string | number | boolean>;

/** One storage binding in full. */
export interface BindingSpec {
  access: Access;
  /**
   * WGSL element type of the `array<…>` (default `f32`), or a function of the template variables
   * where the type changes with them (e.g. `vec4<f16>` vs `f32`).
   */
  type?: string | ((t: TemplateVars) => string);
  /** Tensor dtypes accepted (default: the scalar type the element type is made of). */
  dtype?: DType | readonly DType[];
  /**
   * The variable's name in the WGSL when it differs from the binding's name (entry points of one
   * file that bind other tensors at the same slot need distinct variables, e.g. `b_dy` for the
   * backward's `dy`).
   */
  wgsl?: string;
  /**
   * May be left out of a dispatch: an entry point or template variant that does not read it (the
   * declaration is still emitted; WGSL drops unused bindings from the pipeline's layout).
   */
  optional?: boolean;
}

/** A binding: its access alone (an `array<f32>`), or in full. */
export type BindingDecl = Access | BindingSpec;

/** One program: a group of entry points of a shader that share uniforms and bindings. */
export interface ProgramDecl<U extends string = string, B extends string = string> {
  /** Entry points (default `["main"]`). */
  entries?: readonly string[];
  /** Uniforms in struct order. */
  uniforms: Record<U, UniformType>;
  /** Name of the uniform variable in WGSL (default `p`; its struct is `Params` for `p`). */
  params?: string;
  /** Storage bindings in binding order (binding 1, 2, …). */
  bindings: Record<B, BindingDecl>;
  /**
   * Template variables to check the program with (tests/kernels/bindings_test.ts compiles each);
   * needed where the shader is a template. Default: one variant, no template pass.
   */
  variants?: readonly TemplateVars[];
}

/** The declarations of one shader file, shared by its programs. */
export interface ShaderDecl {
  /** WGSL file name in `kernels/`. */
  readonly shader: string;
  /** Every program of the file. */
  readonly programs: readonly Kernel[];
}

/** A declared program, ready for {@linkcode Gpu.run}. */
export interface Kernel<U extends string = string, B extends string = string> {
  /** `shader:entry` (or `shader:program` for several entries), for messages. */
  readonly name: string;
  readonly shader: string;
  readonly entries: readonly string[];
  readonly uniforms: Readonly<Record<U, UniformType>>;
  readonly params: string;
  readonly bindings: Readonly<Record<B, Readonly<BindingSpec>>>;
  /** Template variants the binding test compiles (empty: the shader is no template). */
  readonly variants: readonly TemplateVars[];
  /** The shader file's declarations (all its programs). */
  readonly file: ShaderDecl;
}

const SCALARS: [RegExp, DType][] = [
  [/^(vec[234]<)?f32>?$|^vec[234]f$/, "f32"],
  [/^(vec[234]<)?f16>?$|^vec[234]h$/, "f16"],
  [/^(vec[234]<)?u32>?$|^vec[234]u$|^atomic<u32>$/, "u32"],
  [/^(vec[234]<)?i32>?$|^vec[234]i$|^atomic<i32>$/, "i32"],
];

/** The WGSL variable of binding `name`. */
export function varName(name: string, b: BindingSpec): string {
  return b.wgsl ?? name;
}

/** The WGSL element type of binding `b` under `template`. */
export function elementType(b: BindingSpec, template: TemplateVars = {}): string {
  return typeof b.type === "function" ? b.type(template) : b.type ?? "f32";
}

/** The tensor dtypes binding `b` accepts under `template`. */
export function acceptedDtypes(b: BindingSpec, template: TemplateVars = {}): readonly DType[] {
  if (b.dtype !== undefined) return typeof b.dtype === "string" ? [b.dtype] : b.dtype;
  const t = elementType(b, template).replace(/\s+/g, "");
  for (const [re, d] of SCALARS) if (re.test(t)) return [d];
  return [];
}

const DECLARED: ShaderDecl[] = [];

/**
 * Every shader file declared so far (by the kernel modules imported), for tests and tools that
 * check all of them.
 *
 * @example
 * ```ts
 * import "./mod.ts";
 * import { declaredShaders } from "./spec.ts";
 * console.log(declaredShaders().some((d) => d.shader === "softmax.wgsl")); // true
 * ```
 */
export function declaredShaders(): readonly ShaderDecl[] {
  return DECLARED;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const UNIFORM_TYPES = new Set(["u32", "i32", "f32"]);

function program<U extends string, B extends string>(
  shader: string,
  key: string | null,
  d: ProgramDecl<U, B>,
  file: { shader: string; programs: Kernel[] },
): Kernel<U, B> {
  const entries = d.entries ?? ["main"];
  const name = `${shader}:${entries.length === 1 ? entries[0] : key ?? entries.join("|")}`;
  if (entries.length === 0) throw new TypeError(`kernel ${name}: no entry points`);
  // Every uniform is 4 bytes and one dispatch gets a 256-byte slot of the uniform ring.
  if (Object.keys(d.uniforms).length > 64) throw new TypeError(`kernel ${name}: over 64 uniforms`);
  for (const [u, t] of Object.entries(d.uniforms)) {
    if (!IDENT.test(u)) throw new TypeError(`kernel ${name}: uniform "${u}" is not a WGSL name`);
    if (!UNIFORM_TYPES.has(t as string)) {
      throw new TypeError(`kernel ${name}: uniform "${u}" has type ${t}; use u32, i32 or f32`);
    }
  }
  const bindings = {} as Record<B, BindingSpec>;
  for (const [b, decl] of Object.entries(d.bindings) as [B, BindingDecl][]) {
    if (!IDENT.test(b)) throw new TypeError(`kernel ${name}: binding "${b}" is not a WGSL name`);
    const spec = typeof decl === "string" ? { access: decl } : decl;
    if (spec.wgsl !== undefined && !IDENT.test(spec.wgsl)) {
      throw new TypeError(`kernel ${name}: binding "${b}" has WGSL name "${spec.wgsl}"`);
    }
    if (spec.access !== "read" && spec.access !== "read_write") {
      throw new TypeError(`kernel ${name}: binding "${b}" has access ${spec.access}`);
    }
    bindings[b] = Object.freeze({ ...spec });
  }
  return Object.freeze({
    name,
    shader,
    entries: Object.freeze([...entries]),
    uniforms: Object.freeze({ ...d.uniforms }),
    params: d.params ?? "p",
    bindings: Object.freeze(bindings),
    variants: Object.freeze([...(d.variants ?? [])]),
    file,
  });
}

/**
 * Declares the one program of a shader file.
 *
 * @example
 * ```ts
 * import { kernel } from "./spec.ts";
 * const FILL = kernel({
 *   shader: "fill.wgsl",
 *   uniforms: { count: "u32", value: "u32" },
 *   bindings: { out: { access: "read_write", type: "u32", dtype: ["f32", "u32", "i32", "f16"] } },
 * });
 * console.log(Object.keys(FILL.uniforms)); // ["count", "value"]
 * ```
 */
export function kernel<U extends string, B extends string>(
  decl: ProgramDecl<U, B> & { shader: string },
): Kernel<U, B> {
  const file = { shader: decl.shader, programs: [] as Kernel[] };
  const k = program(decl.shader, null, decl, file);
  file.programs.push(k as unknown as Kernel);
  checkFile(file);
  DECLARED.push(file);
  return k;
}

/**
 * Declares the programs of a shader file whose entry points bind different things.
 *
 * @example
 * ```ts
 * import { kernels } from "./spec.ts";
 * const CAST = kernels("cast.wgsl", {
 *   toF16: {
 *     entries: ["to_f16"],
 *     uniforms: { count: "u32" },
 *     bindings: { src32: "read", dst16: { access: "read_write", type: "u32", dtype: "f16" } },
 *   },
 *   toF32: {
 *     entries: ["to_f32"],
 *     uniforms: { count: "u32" },
 *     bindings: { src16: { access: "read", type: "u32", dtype: "f16" }, dst32: "read_write" },
 *   },
 * });
 * console.log(CAST.toF32.name); // cast.wgsl:to_f32
 * ```
 */
export function kernels<P extends Record<string, ProgramDecl>>(
  shader: string,
  programs: P,
): { [K in keyof P]: P[K] extends ProgramDecl<infer U, infer B> ? Kernel<U, B> : never } {
  const file = { shader, programs: [] as Kernel[] };
  const out: Record<string, Kernel> = {};
  for (const [key, d] of Object.entries(programs)) {
    const k = program(shader, key, d, file);
    file.programs.push(k);
    out[key] = k;
  }
  checkFile(file);
  DECLARED.push(file);
  return out as never;
}

/** Throws when two programs of a file declare one entry point, or one name in two ways. */
function checkFile(file: ShaderDecl): void {
  const owner = new Map<string, string>();
  for (const k of file.programs) {
    for (const e of k.entries) {
      const other = owner.get(e);
      if (other) {
        throw new TypeError(`${file.shader}: entry point ${e} is in ${other} and ${k.name}`);
      }
      owner.set(e, k.name);
    }
  }
  // Conflicting declarations (same name, other slot/access/type) show up on generation, where the
  // template variables are known; generate once with none to catch the static ones early.
  const statics = file.programs.every((k) =>
    Object.values(k.bindings).every((b) => typeof (b as BindingSpec).type !== "function")
  );
  if (statics) generateDeclarations(file, {});
}

/** The struct name of a program's uniform variable. */
export function structName(k: Kernel): string {
  return k.params === "p" ? "Params" : `Params_${k.params}`;
}

/**
 * The WGSL declarations of every program of `file` under `template`: for each program its
 * uniform struct and `var<uniform>` at binding 0 (when it has uniforms) and one
 * `var<storage, …>` per binding at 1, 2, … in declaration order. A declaration shared by two
 * programs is written once; the same name declared differently throws.
 */
export function generateDeclarations(file: ShaderDecl, template: TemplateVars = {}): string {
  const lines: string[] = [];
  const seen = new Map<string, [string, string]>(); // WGSL name → [line, program]
  const emit = (name: string, line: string, k: Kernel) => {
    const prev = seen.get(name);
    if (prev) {
      if (prev[0] !== line) {
        throw new TypeError(
          `${file.shader}: "${name}" is declared as \`${prev[0]}\` by ${prev[1]} and as ` +
            `\`${line}\` by ${k.name}`,
        );
      }
      return;
    }
    seen.set(name, [line, k.name]);
    lines.push(line);
  };
  for (const k of file.programs) {
    const fields = Object.entries(k.uniforms).map(([u, t]) => `${u}: ${t}`);
    if (fields.length > 0) {
      const struct = structName(k);
      emit(struct, `struct ${struct} { ${fields.join(", ")} }`, k);
      emit(k.params, `@group(0) @binding(0) var<uniform> ${k.params}: ${struct};`, k);
    }
    Object.entries(k.bindings).forEach(([b, spec], i) => {
      const s = spec as BindingSpec;
      const v = varName(b, s);
      emit(
        v,
        `@group(0) @binding(${i + 1}) var<storage, ${s.access}> ${v}: ` +
          `array<${elementType(s, template)}>;`,
        k,
      );
    });
  }
  return lines.join("\n");
}

/** The line in a `.wgsl` file that the generated declarations replace. */
export const BINDINGS_MARKER = "// @bindings";
