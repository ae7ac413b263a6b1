/**
 * The one line that says a slow adapter runs the work: CPU software adapters and the OpenGL
 * backend (no Vulkan driver), with how to get Vulkan; nothing for a real GPU.
 */
import { equal, match, ok } from "node:assert/strict";
import { adapterNote, noteForAdapter } from "../../kernels/adapter_note.ts";

Deno.test("adapterNote: software adapters, the OpenGL backend, real GPUs", () => {
  const vk = ["lvp_icd.x86_64.json"];
  for (const description of ["llvmpipe (LLVM 15.0.6, 256 bits)", "SwiftShader Device (Subzero)"]) {
    const n = adapterNote({ description, vulkanDrivers: vk });
    ok(n, description);
    match(n!, /is a CPU software adapter/);
    match(n!, /apt-get install mesa-vulkan-drivers/);
    equal(n!.split("\n").length, 1, "one line");
  }
  match(adapterNote({ description: "x", isFallbackAdapter: true, vulkanDrivers: vk })!, /software/);
  const gl = adapterNote({ description: "llvmpipe (LLVM 15.0.6, 256 bits)", vulkanDrivers: [] });
  match(gl!, /no Vulkan driver is installed, so WebGPU runs .* on the OpenGL backend/);
  match(gl!, /mesa-vulkan-drivers/);
  equal(adapterNote({ description: "NVIDIA H200", vulkanDrivers: ["nvidia_icd.json"] }), null);
  equal(adapterNote({ description: "AMD Radeon", vulkanDrivers: null }), null);
});

Deno.test("the live adapter gets a note exactly when it is a software one", async () => {
  const adapter = await navigator.gpu.requestAdapter();
  ok(adapter, "a WebGPU adapter (lavapipe is fine)");
  const note = noteForAdapter(adapter);
  const software = /llvmpipe|lavapipe|swiftshader/i.test(adapter.info.description) ||
    (adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  equal(note !== null, software || note?.includes("OpenGL") === true, String(note));
});
