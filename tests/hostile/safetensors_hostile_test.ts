/**
 * Hostile safetensors files: every truncation, broken header lengths, headers that are not JSON
 * objects, bad offsets, shape × dtype mismatches, sharded indexes that escape their directory, and
 * NaN/Inf weights. Each must fail with an Error naming the file and the place (tensor or field).
 */
import { equal, ok, rejects } from "node:assert/strict";
import {
  Checkpoint,
  MAX_HEADER_BYTES,
  SafetensorsFile,
  writeSafetensors,
} from "../../model/safetensors.ts";
import { presetConfig, saveConfig } from "../../model/config.ts";
import { parameterShapes, XlmrParams } from "../../model/params.ts";
import { gpuTest } from "../_helpers.ts";

/** A small valid file: two F32 tensors and one BF16. */
async function validBytes(): Promise<Uint8Array> {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await writeSafetensors(path, [
    { name: "a", data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] },
    { name: "b", data: new Float32Array([7, 8]), shape: [2], dtype: "BF16" },
    { name: "c", data: new Float32Array([9]), shape: [] },
  ], { format: "pt" });
  const bytes = await Deno.readFile(path);
  await Deno.remove(path);
  return bytes;
}

/** Bytes of a file with this header (as given) and `dataBytes` zero bytes of data. */
function withHeader(header: string | Uint8Array, dataBytes: number, lengthField?: bigint) {
  const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + h.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

/** Writes `bytes` to a fresh file and asserts that opening it fails naming the file and `want`. */
async function assertRefused(bytes: Uint8Array, want: RegExp, label: string): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, bytes);
  try {
    await rejects(() => SafetensorsFile.open(path), (e: unknown) => {
      ok(e instanceof Error, `${label}: an Error`);
      ok(e.message.includes(path), `${label}: names the file: ${e.message}`);
      ok(want.test(e.message), `${label}: ${e.message} should match ${want}`);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("a safetensors file truncated at any byte is refused naming the region", async () => {
  const good = await validBytes();
  const headerEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
  let cases = 0;
  for (let n = 0; n < good.length; n++) {
    const want = n < 8
      ? /shorter than the 8-byte header length/
      : n < headerEnd
      ? /runs past the end/
      : /run past the data section/;
    await assertRefused(good.slice(0, n), want, `truncated to ${n} bytes`);
    cases++;
  }
  ok(cases > 100, `${cases} truncations tried`);
});

Deno.test("header lengths that are huge, zero, odd or past the end are refused", async () => {
  const good = await validBytes();
  const hlen = Number(new DataView(good.buffer).getBigUint64(0, true));
  const set = (v: bigint) => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  await assertRefused(set(2n ** 64n - 1n), /header length .* is absurd/, "u64 max");
  await assertRefused(set(2n ** 53n + 1n), /absurd/, "2^53 + 1");
  await assertRefused(set(BigInt(MAX_HEADER_BYTES) + 1n), /absurd/, "just over the limit");
  await assertRefused(set(0n), /not valid JSON/, "zero");
  await assertRefused(set(BigInt(hlen - 1)), /not valid JSON|bytes after the last tensor/, "odd");
  await assertRefused(set(BigInt(hlen + 1)), /not valid JSON|data_offsets|gap|overlap/, "odd+1");
  await assertRefused(set(BigInt(good.length)), /runs past the end/, "whole file");
});

Deno.test("headers that are not a JSON object of tensor entries are refused naming the field", async () => {
  const cases: [string, number, RegExp][] = [
    ["not json", 0, /not valid JSON/],
    ["[]", 0, /not a JSON object/],
    ["null", 0, /not a JSON object/],
    ['"x"', 0, /not a JSON object/],
    ["42", 0, /not a JSON object/],
    ['{"__metadata__": []}', 0, /__metadata__ must be an object/],
    ['{"__metadata__": {"k": 1}}', 0, /__metadata__\.k must be a string/],
    ['{"w": 5}', 4, /tensor "w".*entry must be an object/],
    ['{"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}', 8, /"w".*unknown dtype/],
    ['{"w": {"shape": [1], "data_offsets": [0, 4]}}', 4, /"w".*unknown dtype undefined/],
    ['{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', 4, /"w".*shape must be/],
    ['{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}', 4, /"w".*shape must/],
    ['{"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}', 4, /"w".*shape must/],
    ['{"w": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 4]}}', 4, /"w".*shape/],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', 4, /"w".*reversed/],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', 4, /"w".*data_offsets must/],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}', 4, /"w".*data_offsets/],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}', 4, /"w".*run past/],
    ['{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', 8, /"w".*12 bytes.*hold 8/],
    ['{"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 4]}}', 4, /"w".*8 bytes/],
    [
      '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, ' +
      '"v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
      8,
      /overlaps/,
    ],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', 8, /gap of 4 bytes.*"w"/],
    ['{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 12, /8 bytes after/],
  ];
  for (const [header, data, want] of cases) {
    await assertRefused(withHeader(header, data), want, header);
  }
  // Invalid UTF-8 inside the header.
  await assertRefused(
    withHeader(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 0),
    /not valid JSON/,
    "invalid UTF-8 header",
  );
});

Deno.test("a sharded index that is broken or points outside its directory is refused", async () => {
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/s1.safetensors`, [
    { name: "w", data: new Float32Array([1]), shape: [1] },
  ]);
  const index = `${dir}/model.safetensors.index.json`;
  const cases: [string, RegExp][] = [
    ["{", /not valid JSON/],
    ["[]", /weight_map must be an object/],
    ['{"weight_map": {"w": "../s1.safetensors"}}', /weight_map\["w"\] must be a file name inside/],
    ['{"weight_map": {"w": "/etc/passwd"}}', /weight_map\["w"\] must be a file name inside/],
    ['{"weight_map": {"w": 3}}', /weight_map\["w"\]/],
    ['{"weight_map": {"v": "s1.safetensors"}}', /"v" is in s1.safetensors, but it is not/],
    ['{"weight_map": {"w": "missing.safetensors"}}', /missing.safetensors: cannot open/],
  ];
  for (const [text, want] of cases) {
    await Deno.writeTextFile(index, text);
    await rejects(() => Checkpoint.open(dir), (e: Error) => {
      ok(want.test(e.message) && e.message.includes(dir), `${text}: ${e.message}`);
      return true;
    });
  }
  await Deno.remove(dir, { recursive: true });
});

gpuTest(
  "a checkpoint with a NaN or Inf weight fails naming the tensor, before any dispatch",
  async (gpu) => {
    const config = presetConfig("tiny", { vocabSize: 40, maxPositions: 20 });
    for (
      const [bad, value] of [["encoder.layer.1.output.dense.weight", NaN], [
        "embeddings.LayerNorm.bias",
        -Infinity,
      ]] as const
    ) {
      const dir = await Deno.makeTempDir();
      await saveConfig(dir, config);
      const tensors = parameterShapes(config).map(([name, shape]) => {
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01);
        if (name === bad) data[data.length - 2] = value;
        return { name, shape, data };
      });
      await writeSafetensors(`${dir}/model.safetensors`, tensors);
      const before = gpu.dispatchCount;
      await rejects(() => XlmrParams.load(gpu, dir, config), (e: Error) => {
        ok(e.message.includes(dir), e.message);
        ok(e.message.includes(`"${bad}"`), `names the tensor: ${e.message}`);
        ok(e.message.includes(String(value)), `names the value: ${e.message}`);
        ok(
          e.message.includes(`flat index ${tensors.find((t) => t.name === bad)!.data.length - 2}`),
        );
        return true;
      });
      equal(gpu.dispatchCount, before, "no dispatch");
      await Deno.remove(dir, { recursive: true });
    }
  },
);
