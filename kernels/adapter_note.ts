/**
 * Which adapter runs the work, said plainly when it is a slow one: a CPU software adapter
 * (llvmpipe/lavapipe, SwiftShader) or the OpenGL backend (no Vulkan driver installed).
 * @module
 */

/** What the note is decided from (a `GPUAdapterInfo`, plus where Vulkan drivers are listed). */
export interface AdapterFacts {
  description?: string;
  device?: string;
  vendor?: string;
  isFallbackAdapter?: boolean;
  /** Vulkan ICD manifests found (null: not Linux, unknown). */
  vulkanDrivers?: string[] | null;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|swrast|software/i;

/** Vulkan ICD manifests on Linux (standard folders and VK_ICD_FILENAMES/VK_DRIVER_FILES). */
export function vulkanDrivers(): string[] | null {
  if (Deno.build.os !== "linux") return null;
  const out: string[] = [];
  try {
    for (const k of ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"]) {
      const v = Deno.env.get(k);
      if (v) out.push(...v.split(":").filter(Boolean));
    }
  } catch {
    // no env permission
  }
  for (
    const dir of [
      "/usr/share/vulkan/icd.d",
      "/usr/local/share/vulkan/icd.d",
      "/etc/vulkan/icd.d",
    ]
  ) {
    try {
      for (const e of Deno.readDirSync(dir)) if (e.name.endsWith(".json")) out.push(e.name);
    } catch {
      // absent or not readable
    }
  }
  return out;
}

/**
 * One line saying that the adapter is a slow one and how to get Vulkan, or null for a real GPU.
 *
 * @example
 * ```ts
 * import { adapterNote } from "./adapter_note.ts";
 * const note = adapterNote({ description: "llvmpipe (LLVM 15.0.6, 256 bits)", vulkanDrivers: ["lvp_icd.x86_64.json"] });
 * console.log(note?.startsWith("note: llvmpipe (LLVM 15.0.6, 256 bits) is a CPU software adapter")); // true
 * console.log(adapterNote({ description: "NVIDIA H100", vulkanDrivers: ["nvidia_icd.json"] })); // null
 * ```
 */
export function adapterNote(f: AdapterFacts): string | null {
  const name = f.description || f.device || "the adapter";
  const software = SOFTWARE.test(`${f.description ?? ""} ${f.device ?? ""}`) ||
    f.isFallbackAdapter === true;
  const noVulkan = Array.isArray(f.vulkanDrivers) && f.vulkanDrivers.length === 0;
  const install = "install a Vulkan driver for your GPU (e.g. `sudo apt-get install " +
    "mesa-vulkan-drivers` for AMD/Intel, or the NVIDIA driver)";
  if (noVulkan) {
    return `note: no Vulkan driver is installed, so WebGPU runs ${name} on the OpenGL backend ` +
      `(about 18× slower than Vulkan on the same CPU); ${install}`;
  }
  if (software) {
    return `note: ${name} is a CPU software adapter (lavapipe/llvmpipe): everything runs, but ` +
      `slowly. For a GPU, ${install}`;
  }
  return null;
}

/** {@linkcode adapterNote} for a live adapter. */
export function noteForAdapter(adapter: GPUAdapter): string | null {
  const i = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return adapterNote({
    description: i.description,
    device: i.device,
    vendor: i.vendor,
    isFallbackAdapter: i.isFallbackAdapter,
    vulkanDrivers: vulkanDrivers(),
  });
}
