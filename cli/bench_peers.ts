/**
 * The flags of `bench peers` (ours against tfjs-webgpu, `bench/peers/tfjs_peer_bench.ts`). They
 * live here, apart from the benchmark, so that `bench peers --help` and usage errors need no tfjs.
 * @module
 */
import { defineFlags } from "./flags.ts";

/** The flags of `bench peers`. */
export const BENCH_PEERS_FLAGS = defineFlags({
  command: "bench peers",
  summary: "ours against tfjs-webgpu on the same adapter: matmuls and one encoder layer " +
    "(from a checkout only)",
  flags: {
    quick: { type: "boolean", description: "fewer shapes and runs" },
    json: { type: "boolean", description: "print one JSON object instead of the table" },
    runs: { type: "integer", min: 1, default: 3, description: "timed runs per side" },
    warmup: { type: "integer", min: 0, default: 1, description: "untimed runs first" },
    only: {
      type: "choice",
      choices: ["matmul", "layer"],
      defaultText: "both",
      description: "run one part only",
    },
  },
});
