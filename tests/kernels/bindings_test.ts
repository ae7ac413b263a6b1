// Every kernel's declaration (kernels/spec.ts) against its shader: the generated WGSL holds every
// declared uniform and binding, the `// @bindings` comment of the .wgsl names them, the shader
// compiles, every entry point gets a pipeline, and a bind group of exactly the declared bindings
// (binding 0 for the uniforms, the required storage bindings, and one set of the optional ones)
// validates against that pipeline's layout. Planted mistakes in a copy of a declaration (two names
// swapped, a uniform dropped, a misspelled name, a wrong element type, a binding the entry does not
// use) make the same check fail.
import { deepEqual, equal, ok } from "node:assert/strict";
import "../../kernels/mod.ts";
import { WGSL } from "../../kernels/_wgsl.gen.ts";
import { Gpu } from "../../kernels/runtime.ts";
import { loadShader, resolveIncludes } from "../../kernels/shader.ts";
import {
  type BindingDecl,
  type BindingSpec,
  declaredShaders,
  elementType,
  type Kernel,
  kernels,
  type ProgramDecl,
  type ShaderDecl,
  structName,
  type TemplateVars,
  varName,
} from "../../kernels/spec.ts";
import { gpuTest } from "../_helpers.ts";

/** The shader files the kernel modules declare (before any test adds copies). */
const SHIPPED = [...declaredShaders()];

/** What is wrong with `k`'s entry `entry` under `template`, or [] when nothing is. */
async function problems(
  gpu: Gpu,
  k: Kernel,
  entry: string,
  template: TemplateVars | undefined,
): Promise<string[]> {
  const where = `${k.name} (${entry}${template ? ` ${JSON.stringify(template)}` : ""})`;
  const out: string[] = [];
  let code: string;
  try {
    code = loadShader(k.shader, template, k.file);
  } catch (e) {
    return [`${where}: ${(e as Error).message}`];
  }
  // Every declared uniform and binding is in the generated text, as declared.
  const fields = Object.entries(k.uniforms).map(([u, t]) => `${u}: ${t}`).join(", ");
  if (fields && !code.includes(`struct ${structName(k)} { ${fields} }`)) {
    out.push(`${where}: uniforms { ${fields} } not in the generated WGSL`);
  }
  Object.entries(k.bindings).forEach(([name, b], i) => {
    const s = b as BindingSpec;
    const line = `@binding(${i + 1}) var<storage, ${s.access}> ${varName(name, s)}: ` +
      `array<${elementType(s, template)}>;`;
    if (!code.includes(line)) out.push(`${where}: "${line}" not in the generated WGSL`);
  });
  const device = gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: where, code });
  const info = await module.getCompilationInfo();
  const compileError = await device.popErrorScope();
  for (const m of info.messages) {
    if (m.type === "error") out.push(`${where}: ${m.lineNum}:${m.linePos} ${m.message}`);
  }
  if (compileError && out.length === 0) {
    out.push(`${where}: ${compileError.message.split("\n")[0]}`);
  }
  if (out.length > 0) return out;
  device.pushErrorScope("validation");
  const pipeline = device.createComputePipeline({
    label: where,
    layout: "auto",
    compute: { module, entryPoint: entry },
  });
  const pipelineError = await device.popErrorScope();
  if (pipelineError) return [`${where}: pipeline: ${pipelineError.message.split("\n")[0]}`];
  // A bind group of the declared bindings must fit the layout the shader itself implies: every
  // required binding used, no other used, for one choice of the optional ones.
  const names = Object.keys(k.bindings);
  const optional = names.filter((n) => (k.bindings[n] as BindingSpec).optional);
  const buffers: GPUBuffer[] = [];
  const buffer = (usage: number) => {
    const b = device.createBuffer({ size: 256, usage });
    buffers.push(b);
    return b;
  };
  let fits = 0;
  for (let mask = 0; mask < 1 << optional.length; mask++) {
    const chosen = new Set(optional.filter((_, i) => mask & (1 << i)));
    const entries: GPUBindGroupEntry[] = [];
    const count = Object.keys(k.uniforms).length;
    if (count > 0) {
      entries.push({
        binding: 0,
        resource: {
          buffer: buffer(GPUBufferUsage.UNIFORM),
          size: Math.max(16, Math.ceil(count / 4) * 16),
        },
      });
    }
    names.forEach((n, i) => {
      if ((k.bindings[n] as BindingSpec).optional && !chosen.has(n)) return;
      entries.push({ binding: i + 1, resource: { buffer: buffer(GPUBufferUsage.STORAGE) } });
    });
    device.pushErrorScope("validation");
    device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    if (!(await device.popErrorScope())) fits++;
  }
  for (const b of buffers) b.destroy();
  if (fits !== 1) {
    out.push(
      `${where}: ${fits} choices of the optional bindings fit the entry point's layout ` +
        `(want 1): the declared bindings are not the ones the entry point uses`,
    );
  }
  return out;
}

/** Problems of every program, entry point and variant of `file`. */
async function check(gpu: Gpu, file: ShaderDecl): Promise<string[]> {
  const out: string[] = [];
  for (const k of file.programs) {
    const variants = k.variants.length > 0 ? k.variants : [undefined];
    for (const entry of k.entries) {
      for (const t of variants) {
        if (t?.enable_f16 && !gpu.hasF16) continue; // an f16 variant needs "shader-f16"
        out.push(...(await problems(gpu, k, entry, t)));
      }
    }
  }
  return out;
}

/** The declarations of `file` as `kernels()` takes them, for planting mistakes in a copy. */
function declOf(file: ShaderDecl): Record<string, ProgramDecl> {
  return Object.fromEntries(file.programs.map((k, i) => [`p${i}`, {
    entries: [...k.entries],
    uniforms: { ...k.uniforms },
    params: k.params,
    bindings: Object.fromEntries(Object.entries(k.bindings).map(([n, b]) => [n, { ...b }])),
    variants: k.variants,
  }]));
}

function shipped(shader: string): ShaderDecl {
  const d = SHIPPED.find((f) => f.shader === shader);
  if (!d) throw new Error(`${shader} is not declared`);
  return d;
}

Deno.test("every shader with an entry point is declared once; include files have none", () => {
  const declared = SHIPPED.map((d) => d.shader).sort();
  deepEqual(declared, [...new Set(declared)], "a shader declared twice");
  for (const [name, text] of Object.entries(WGSL)) {
    const entries = /@compute/.test(text);
    equal(declared.includes(name), entries, `${name}: declared ${declared.includes(name)}`);
  }
});

Deno.test("each .wgsl's // @bindings comment names every declared uniform and binding", () => {
  for (const file of SHIPPED) {
    const text = WGSL[file.shader];
    const at = text.indexOf("// @bindings");
    ok(at >= 0, `${file.shader}: no // @bindings comment`);
    const lines = text.slice(at).split("\n");
    const end = lines.findIndex((l) => !l.startsWith("//"));
    const comment = lines.slice(0, end < 0 ? lines.length : end).join("\n");
    for (const k of file.programs) {
      const vars = Object.entries(k.bindings).map(([n, b]) => varName(n, b as BindingSpec));
      for (const n of [...Object.keys(k.uniforms), ...vars]) {
        ok(new RegExp(`\\b${n}\\b`).test(comment), `${file.shader}: the comment misses ${n}`);
      }
    }
  }
});

gpuTest("every kernel's declaration matches its shader for every entry point", async (gpu) => {
  const all: string[] = [];
  for (const file of SHIPPED) all.push(...(await check(gpu, file)));
  deepEqual(all, []);
});

gpuTest("a planted mistake in a declaration fails the check, naming the binding", async (gpu) => {
  const softmax = declOf(shipped("softmax.wgsl"));
  const plant = async (what: string, change: (d: Record<string, ProgramDecl>) => void) => {
    const copy = structuredClone(softmax);
    change(copy);
    let found: string[];
    try {
      found = await check(gpu, kernels("softmax.wgsl", copy).p0.file);
    } catch (e) {
      found = [(e as Error).message]; // a declaration the loader refuses outright
    }
    ok(found.length > 0, `${what}: not caught`);
    if (Deno.env.get("TEST_VERBOSE")) console.log(what, found);
    return found.join("\n");
  };
  // The original passes.
  deepEqual(await check(gpu, kernels("softmax.wgsl", structuredClone(softmax)).p0.file), []);
  // x and y swapped (in both forward programs): x becomes read_write and y read-only, which the
  // shader writes.
  const swapped = await plant("swapped names", (d) => {
    const b = d.p1.bindings as Record<string, BindingDecl>;
    d.p0.bindings = { y: b.x, x: b.y };
    d.p1.bindings = { y: b.x, x: b.y, mask: b.mask };
  });
  ok(/softmax\.wgsl:forward\b/.test(swapped), swapped);
  // A uniform dropped: p.rows_per_mask no longer exists.
  const dropped = await plant("dropped uniform", (d) => {
    const { rows, cols } = d.p1.uniforms;
    d.p0.uniforms = d.p1.uniforms = { rows, cols };
  });
  ok(/rows_per_mask/.test(dropped), dropped);
  // A misspelled binding: the shader's `mask` is undeclared.
  const misspelled = await plant("misspelled binding", (d) => {
    const b = d.p1.bindings as Record<string, BindingDecl>;
    d.p1.bindings = { x: b.x, y: b.y, msk: b.mask };
  });
  ok(/mask/.test(misspelled), misspelled);
  // A wrong element type.
  await plant("wrong type", (d) => {
    const b = d.p2.bindings as Record<string, BindingSpec>;
    d.p2.bindings = { ...b, dy: { ...b.dy, type: "u32" } };
  });
  // A binding the entry point does not use (the forward entry never reads a mask).
  const unused = await plant("unused binding", (d) => {
    d.p0.bindings = { ...d.p0.bindings, mask: "read" };
  });
  ok(/softmax\.wgsl:forward\b/.test(unused), unused);
});

gpuTest("Gpu.run binds by name and rejects wrong names and dtypes before dispatching", async (
  gpu,
) => {
  const [, , back] = shipped("softmax.wgsl").programs;
  const dy = gpu.zeros([2, 4]), y = gpu.zeros([2, 4]), dx = gpu.alloc([2, 4]);
  const u = { rows: 2, cols: 4 };
  const ids = gpu.zeros([8], "u32");
  await gpu.sync();
  const before = gpu.dispatchCount;
  const run = (t: Record<string, unknown>, u: Record<string, number>, entry?: string) => () =>
    gpu.run(back as Kernel<string, string>, { entry }, t as never, u, [1]);
  const bad: [() => void, RegExp][] = [
    [run({ dy, y }, u), /softmax\.wgsl:backward.*"dx" is missing/],
    [run({ dy, y, dx, extra: y }, u), /softmax\.wgsl:backward.*no binding "extra"/],
    [run({ dy: ids, y, dx }, u), /softmax\.wgsl:backward.*"dy" takes f32, got .*u32/],
    [run({ dy, y, dx }, { rows: 2 }), /uniform "cols" is missing/],
    [run({ dy, y, dx }, { ...u, rws: 1 }), /no uniform "rws"/],
    [run({ dy, y, dx }, u, "forward"), /no entry point "forward"/],
  ];
  for (const [f, re] of bad) {
    try {
      f();
      ok(false, `${re} not thrown`);
    } catch (e) {
      ok(e instanceof TypeError && re.test(e.message), `${re}: ${(e as Error).message}`);
    }
  }
  equal(gpu.dispatchCount, before, "nothing was dispatched");
  gpu.release(dy, y, dx, ids);
});

Deno.test("includes resolve recursively; an unknown file or a cycle throws", () => {
  const files: Record<string, string> = {
    "a.wgsl": '// #include "b.wgsl"\nfn a() {}\n',
    "b.wgsl": "fn b() {}\n",
    "c.wgsl": '// #include "d.wgsl"\n',
    "d.wgsl": '// #include "c.wgsl"\n',
  };
  const lookup = (n: string) => {
    if (!(n in files)) throw new Error(`shader ${n}: unknown shader`);
    return files[n];
  };
  const a = resolveIncludes("a.wgsl", files["a.wgsl"], lookup);
  ok(a.includes("fn b() {}") && a.includes("fn a() {}"), a);
  let msg = "";
  try {
    resolveIncludes("c.wgsl", files["c.wgsl"], lookup);
  } catch (e) {
    msg = (e as Error).message;
  }
  ok(/include cycle c\.wgsl → d\.wgsl → c\.wgsl/.test(msg), msg);
  msg = "";
  try {
    resolveIncludes("x.wgsl", '// #include "nope.wgsl"\n');
  } catch (e) {
    msg = (e as Error).message;
  }
  ok(/nope\.wgsl: unknown shader \(included from x\.wgsl\)/.test(msg), msg);
  // The shipped shaders share their reductions and GELU through includes.
  for (const f of ["softmax.wgsl", "layer_norm.wgsl", "l2_norm.wgsl"]) {
    ok(WGSL[f].includes('// #include "workgroup_reduce.wgsl"'), f);
    ok(!/fn workgroup_sum/.test(WGSL[f]), `${f} has its own copy of workgroup_sum`);
  }
  for (const f of ["gelu.wgsl", "matmul.wgsl", "matmul_splitk.wgsl"]) {
    ok(WGSL[f].includes('// #include "erf.wgsl"'), f);
  }
});

Deno.test("matmul switches belong to one Gpu", async () => {
  const a = await Gpu.create({ matmul: { splits: 3 } });
  const b = await Gpu.create();
  try {
    equal(a.options.matmul.splits, 3);
    equal(b.options.matmul.splits, null);
    let threw = false;
    try {
      await Gpu.create({ matmul: { tiles: { WX: 8, WY: 8, BK: 6, TM4: 1, TN4: 1 } } });
    } catch (e) {
      threw = e instanceof RangeError && /matmul\.tiles/.test(e.message);
    }
    ok(threw, "bad tiles rejected by Gpu.create");
  } finally {
    a.destroy();
    b.destroy();
  }
});
