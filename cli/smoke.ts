/**
 * `smoke`: prints the adapter and runs every kernel once on small random inputs, reporting the
 * time of each. A quick way to see that a machine's WebGPU stack works.
 * @module
 */
import { defineFlags } from "./flags.ts";
import { Gpu } from "../kernels/runtime.ts";
import { printAdapter } from "./provenance.ts";
import type { Tensor } from "../kernels/tensor.ts";
import { add } from "../kernels/elementwise.ts";
import { linear, matmul } from "../kernels/matmul.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { gelu } from "../kernels/gelu.ts";
import { softmax } from "../kernels/softmax.ts";
import { attention } from "../kernels/attention.ts";
import { gatherRows } from "../kernels/embedding.ts";
import { poolMean } from "../kernels/pooling.ts";
import { l2Normalize } from "../kernels/l2_norm.ts";
import { sum } from "../kernels/reduce.ts";
import { infoNce } from "../kernels/info_nce.ts";

/** The flags of `smoke` (none). */
export const SMOKE_FLAGS = defineFlags({
  command: "smoke",
  summary: "print the adapter and run each kernel once, with its time",
  flags: {},
});

/** Runs the `smoke` command. */
export async function smokeCommand(args: string[]): Promise<void> {
  SMOKE_FLAGS.parse(args);
  const gpu = await Gpu.create();
  printAdapter(gpu);
  const rand = (shape: number[]) =>
    gpu.fromArray(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => Math.random() - 0.5),
      shape,
    );
  const B = 4, T = 16, H = 64, heads = 4;
  const x = rand([B * T, H]), w = rand([H, H]), b = rand([H]);
  const mask = gpu.fromArray(new Float32Array(B * T).fill(1), [B, T]);
  const ids = gpu.fromArray(Uint32Array.from({ length: B * T }, (_, i) => i % 50), [B * T], "u32");
  const table = rand([50, H]);
  const ops: [string, () => Tensor | { [k: string]: Tensor } | void][] = [
    ["add", () => add(gpu, x, x)],
    ["matmul", () => matmul(gpu, x, w)],
    ["linear", () => linear(gpu, x, w, b)],
    ["layer_norm", () => layerNorm(gpu, x, b, b, 1e-5)],
    ["gelu", () => gelu(gpu, x)],
    ["softmax", () => softmax(gpu, x)],
    [
      "attention",
      () => attention(gpu, x, x, x, mask, { batch: B, seq: T, heads, headDim: H / heads }),
    ],
    ["embedding", () => gatherRows(gpu, table, ids, gpu.zeros([B * T, H]), 0, true)],
    ["pool_mean", () => poolMean(gpu, x.reshape([B, T, H]), mask)],
    ["l2_norm", () => l2Normalize(gpu, x)],
    ["sum", () => sum(gpu, x)],
    ["info_nce", () => {
      const q = l2Normalize(gpu, rand([B, H])).y, p = l2Normalize(gpu, rand([B, H])).y;
      return infoNce(gpu, q, p, { temperature: 0.05 });
    }],
  ];
  for (const [name, run] of ops) {
    const t0 = performance.now();
    const out = run();
    await gpu.sync();
    const ms = performance.now() - t0;
    const first = out instanceof Object && "buffer" in out ? out as Tensor : null;
    const value = first ? (await gpu.read(first))[0] : undefined;
    console.log(
      `${name.padEnd(11)} ok  ${ms.toFixed(1).padStart(7)} ms${
        value !== undefined ? `  first value ${value.toFixed(5)}` : ""
      }`,
    );
  }
  gpu.destroy();
}
