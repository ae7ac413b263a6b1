import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  Checkpoint,
  MAX_HEADER_BYTES,
  SafetensorsFile,
  writeSafetensors,
} from "../../model/safetensors.ts";
import { writeFileAtomic, writeJsonAtomic } from "../../model/atomic_write.ts";
import { randn, rng } from "../_helpers.ts";

const FIXTURE = new URL("../fixtures/xlmr-tiny/", import.meta.url).pathname;

/** A safetensors file built by hand: header text (padded as given) then raw data bytes. */
function craft(
  header: string | object,
  data: Uint8Array = new Uint8Array(0),
  lenOverride?: bigint,
) {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

async function tmpFile(bytes: Uint8Array, name = "t.safetensors"): Promise<string> {
  const path = `${await Deno.makeTempDir()}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

/** Opening `bytes` fails with a message containing every string of `want`. */
async function rejectsWith(bytes: Uint8Array, want: string[]): Promise<void> {
  const path = await tmpFile(bytes, "bad.safetensors");
  await rejects(SafetensorsFile.open(path), (e: Error) => {
    for (const w of [path, ...want]) {
      ok(e.message.includes(w), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(w)}`);
    }
    return true;
  });
}

/** Independent bf16 rounding in float64: nearest value with 8 significant bits, ties to even. */
function bf16Reference(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - 7);
  const q = a / ulp;
  const f = Math.floor(q);
  const m = q - f > 0.5 ? f + 1 : q - f < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  return Math.sign(x) * m * ulp;
}

Deno.test("writeSafetensors round-trips F32, F16, BF16 and I32 tensors with metadata", async () => {
  const r = rng(7);
  const a = randn(6 * 5, r, 3);
  const b = randn(17, r, 100);
  b[0] = 1 + 2 ** -8; // bf16 halfway case → 1 (even)
  b[1] = 1 + 3 * 2 ** -8; // halfway → 1 + 2^-6 (even)
  b[2] = -(1 + 2 ** -8);
  const c = randn(9, r, 0.01);
  const ids = Int32Array.from([0, -1, 2147483647, -2147483648, 5]);
  const raw = Uint16Array.from([0x3c00, 0xc000, 0x7bff]); // f16 bits of 1, -2, 65504
  const path = `${await Deno.makeTempDir()}/m.safetensors`;
  await writeSafetensors(path, [
    { name: "a", data: a, shape: [6, 5] },
    { name: "b.bf16", data: b, shape: [17], dtype: "BF16" },
    { name: "c.f16", data: c, shape: [3, 3], dtype: "F16" },
    { name: "ids", data: ids, shape: [5] },
    { name: "raw", data: raw, shape: [3], dtype: "F16" },
    { name: "empty", data: new Float32Array(0), shape: [0, 4] },
  ], { format: "pt", note: "hi" });
  const f = await SafetensorsFile.open(path);
  try {
    deepEqual(f.metadata, { format: "pt", note: "hi" });
    deepEqual([...f.tensors.keys()], ["a", "b.bf16", "c.f16", "ids", "raw", "empty"]);
    deepEqual(await f.readF32("a"), a);
    const gotB = await f.readF32("b.bf16");
    for (let i = 0; i < b.length; i++) equal(gotB[i], bf16Reference(b[i]), `bf16[${i}] of ${b[i]}`);
    equal(gotB[0], 1);
    equal(gotB[1], 1 + 2 ** -6);
    equal(gotB[2], -1);
    deepEqual(await f.readF32("c.f16"), Float32Array.from(c, (x) => Math.f16round(x)));
    deepEqual(await f.readI32("ids"), ids);
    deepEqual(await f.readF32("raw"), Float32Array.from([1, -2, 65504]));
    deepEqual(await f.readF32("empty"), new Float32Array(0));
    deepEqual(f.info("c.f16").shape, [3, 3]);
    // Layout: header padded to 8, tensors in order with no gaps, file ends with the last one.
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    equal(n % 8, 0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    ok(/^\{.*\} *$/.test(headerText), headerText);
    equal(f.info("a").begin, 8 + n);
    equal(f.info("b.bf16").begin, f.info("a").end);
    equal(f.info("empty").end, bytes.length);
  } finally {
    f.close();
  }
});

Deno.test("writeSafetensors writes the exact bytes of the safetensors layout", async () => {
  const path = `${await Deno.makeTempDir()}/x.safetensors`;
  await writeSafetensors(path, [
    { name: "w", data: Float32Array.from([1.5, -2]), shape: [1, 2] },
    { name: "n", data: Int32Array.from([3]), shape: [] },
  ]);
  const header = '{"w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
    '"n":{"dtype":"I32","shape":[],"data_offsets":[8,12]}}';
  const padded = header + " ".repeat((8 - header.length % 8) % 8);
  const data = new Uint8Array([
    ...new Uint8Array(Float32Array.from([1.5, -2]).buffer),
    ...new Uint8Array(Int32Array.from([3]).buffer),
  ]);
  deepEqual(await Deno.readFile(path), craft(padded, data));
});

Deno.test("writeSafetensors rejects bad names, shapes and dtypes before writing", async () => {
  const dir = await Deno.makeTempDir();
  const p = `${dir}/bad.safetensors`;
  const f32 = new Float32Array(4);
  await rejects(writeSafetensors(p, [{ name: "x", data: f32, shape: [3] }]), /"x".*4/);
  await rejects(writeSafetensors(p, [{ name: "x", data: f32, shape: [-4] }]), /shape/);
  await rejects(
    writeSafetensors(p, [{ name: "x", data: f32, shape: [4] }, {
      name: "x",
      data: f32,
      shape: [4],
    }]),
    /duplicate/,
  );
  await rejects(
    writeSafetensors(p, [{ name: "u", data: new Uint16Array(2), shape: [2] }]),
    /Uint16Array.*F16 or BF16/,
  );
  await rejects(
    writeSafetensors(p, [{ name: "i", data: new Int32Array(2), shape: [2], dtype: "F32" }]),
    /"i"/,
  );
  await rejects(writeSafetensors(p, [{ name: "__metadata__", data: f32, shape: [4] }]), /name/);
  deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("SafetensorsFile.open rejects every kind of malformed file, naming file and tensor", async () => {
  const f32x2 = new Uint8Array(8);
  const ok1 = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  await rejectsWith(new Uint8Array(5), ["5 bytes", "shorter than the 8-byte"]);
  await rejectsWith(craft(ok1, f32x2, 4000n), ["header length 4000", "past the end"]);
  await rejectsWith(craft(ok1, f32x2, BigInt(MAX_HEADER_BYTES) + 1n), ["absurd"]);
  await rejectsWith(craft("{not json", f32x2), ["not valid JSON"]);
  await rejectsWith(craft("[1, 2]"), ["not a JSON object"]);
  await rejectsWith(craft({ w: { dtype: "Q8", shape: [2], data_offsets: [0, 8] } }, f32x2), [
    '"w"',
    "unknown dtype",
    "Q8",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [2.5], data_offsets: [0, 8] } }, f32x2), [
    '"w"',
    "shape",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, f32x2), [
    '"w"',
    "shape",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, f32x2), [
    '"w"',
    "shape",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [2], data_offsets: [0] } }, f32x2), [
    '"w"',
    "data_offsets",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [2], data_offsets: [0, 16] } }, f32x2), [
    '"w"',
    "run past the data section",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, f32x2), [
    '"w"',
    "reversed",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, f32x2), [
    '"w"',
    "[3] × F32 is 12 bytes",
  ]);
  await rejectsWith(
    craft({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    }, f32x2),
    ['"b"', "overlaps", '"a"'],
  );
  await rejectsWith(craft({ w: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, f32x2), [
    '"w"',
    "gap of 4 bytes",
  ]);
  await rejectsWith(craft({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32x2), [
    "4 bytes after the last tensor",
  ]);
  await rejectsWith(craft({ __metadata__: { a: 1 } }), ["__metadata__.a"]);
  await rejects(SafetensorsFile.open("/nonexistent/x.safetensors"), /nonexistent.*cannot open/);
});

Deno.test("SafetensorsFile reads I64 tensors as int32 and refuses values out of range", async () => {
  const data = new Uint8Array(BigInt64Array.from([5n, -7n, 2n ** 40n]).buffer);
  const path = await tmpFile(craft({
    small: { dtype: "I64", shape: [2], data_offsets: [0, 16] },
    big: { dtype: "I64", shape: [1], data_offsets: [16, 24] },
  }, data));
  const f = await SafetensorsFile.open(path);
  try {
    deepEqual(await f.readI32("small"), Int32Array.from([5, -7]));
    deepEqual(await f.readF32("small"), Float32Array.from([5, -7]));
    await rejects(f.readI32("big"), /"big".*outside int32/);
    await rejects(f.readF32("missing"), /no tensor named "missing"/);
  } finally {
    f.close();
  }
});

Deno.test("readF32Rows reads a block of rows and matches the whole tensor's slice", async () => {
  const r = rng(11);
  const w = randn(50 * 6, r);
  const path = `${await Deno.makeTempDir()}/r.safetensors`;
  await writeSafetensors(path, [
    { name: "pad", data: new Float32Array(3), shape: [3] },
    { name: "w", data: w, shape: [50, 2, 3] },
    { name: "h", data: w, shape: [50, 6], dtype: "BF16" },
  ]);
  const ckpt = await Checkpoint.open(path);
  try {
    deepEqual(await ckpt.readF32Rows("w", 17, 9), w.slice(17 * 6, 26 * 6));
    deepEqual(await ckpt.readF32Rows("w", 0, 50), w);
    deepEqual(await ckpt.readF32Rows("w", 50, 0), new Float32Array(0));
    deepEqual(await ckpt.readF32Rows("h", 3, 2), (await ckpt.readF32("h")).slice(18, 30));
    await rejects(ckpt.readF32Rows("w", 45, 6), /"w" rows \[45, 51\) outside \[0, 50\)/);
    await rejects(ckpt.readF32Rows("w", -1, 1), /outside/);
    // Concurrent reads on one handle each get their own bytes.
    const parts = await Promise.all([0, 10, 20, 30, 40].map((s) => ckpt.readF32Rows("w", s, 10)));
    parts.forEach((p, i) => deepEqual(p, w.slice(i * 60, i * 60 + 60)));
  } finally {
    ckpt.close();
  }
});

Deno.test("Checkpoint opens a sharded index and checks that each tensor is where it says", async () => {
  const dir = await Deno.makeTempDir();
  const a = Float32Array.from([1, 2, 3]);
  const b = Float32Array.from([4, 5]);
  await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [
    { name: "x.weight", data: a, shape: [3] },
  ]);
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [
    { name: "y.weight", data: b, shape: [1, 2] },
    { name: "z.bias", data: b, shape: [2] },
  ]);
  await writeJsonAtomic(`${dir}/model.safetensors.index.json`, {
    metadata: { total_size: 28 },
    weight_map: {
      "x.weight": "model-00001-of-00002.safetensors",
      "y.weight": "model-00002-of-00002.safetensors",
      "z.bias": "model-00002-of-00002.safetensors",
    },
  });
  const ckpt = await Checkpoint.open(dir);
  try {
    deepEqual(ckpt.names(), ["x.weight", "y.weight", "z.bias"]);
    equal(ckpt.files.length, 2);
    deepEqual(await ckpt.readF32("x.weight"), a);
    deepEqual(await ckpt.readF32("y.weight"), b);
    deepEqual(ckpt.info("y.weight").shape, [1, 2]);
    equal(ckpt.metadata.total_size, "28");
    ok(ckpt.has("z.bias") && !ckpt.has("w"));
    await rejects(ckpt.readF32("w"), /has no tensor named "w"/);
  } finally {
    ckpt.close();
  }
  await writeJsonAtomic(`${dir}/model.safetensors.index.json`, {
    weight_map: { "q.weight": "model-00001-of-00002.safetensors" },
  });
  await rejects(Checkpoint.open(dir), /"q.weight" is in model-00001-of-00002.safetensors, but/);
  await writeJsonAtomic(`${dir}/model.safetensors.index.json`, {
    weight_map: { "x.weight": "missing.safetensors" },
  });
  await rejects(Checkpoint.open(dir), /missing.safetensors: cannot open/);
  await writeJsonAtomic(`${dir}/model.safetensors.index.json`, {
    weight_map: { "x.weight": "../x.safetensors" },
  });
  await rejects(Checkpoint.open(dir), /weight_map\["x.weight"\] must be a file name/);
  await rejects(Checkpoint.open(await Deno.makeTempDir()), /no model.safetensors/);
});

Deno.test("Checkpoint reads the shared tiny XLM-R fixture with its roberta. prefix", async () => {
  const ckpt = await Checkpoint.open(`${FIXTURE}model`);
  try {
    const names = ckpt.names();
    equal(names.length, 40);
    ok(names.every((n) => n.startsWith("roberta.") || n.startsWith("lm_head.")), names.join());
    ok(names.includes("lm_head.bias"));
    const emb = ckpt.info("roberta.embeddings.word_embeddings.weight");
    deepEqual([emb.dtype, emb.shape], ["F32", [16001, 64]]);
    const rows = await ckpt.readF32Rows("roberta.embeddings.word_embeddings.weight", 100, 3);
    const all = await ckpt.readF32("roberta.embeddings.word_embeddings.weight");
    deepEqual(rows, all.slice(100 * 64, 103 * 64));
    // Values read independently with numpy.frombuffer.
    deepEqual([...rows.slice(0, 4)], [
      -0.3332323133945465,
      -0.27400538325309753,
      -0.33964189887046814,
      0.15992891788482666,
    ]);
    deepEqual([...all.slice(-2)], [0.020338088274002075, -0.21301256120204926]);
    let sum = 0;
    for (const v of all) sum += v;
    ok(Math.abs(sum - 341.0595724864984) < 1e-9, `sum ${sum}`);
    const lnw = await ckpt.readF32("roberta.embeddings.LayerNorm.weight");
    deepEqual([...lnw.slice(0, 3)], [1.1701747179031372, 1.0174063444137573, 1.0366779565811157]);
    deepEqual(ckpt.info("roberta.encoder.layer.1.intermediate.dense.weight").shape, [128, 64]);
  } finally {
    ckpt.close();
  }
  const after = await Checkpoint.open(`${FIXTURE}model_after.safetensors`);
  try {
    equal(after.names().length, 39);
    ok(after.has("embeddings.word_embeddings.weight"));
  } finally {
    after.close();
  }
});

Deno.test("writeFileAtomic replaces the file and leaves no temporary file behind", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/report.json`;
  await writeJsonAtomic(path, { a: 1 });
  await writeJsonAtomic(path, { a: 2, b: [1, 2] });
  deepEqual(JSON.parse(await Deno.readTextFile(path)), { a: 2, b: [1, 2] });
  await writeFileAtomic(`${dir}/bytes.bin`, new Uint8Array([1, 2, 3]));
  deepEqual(await Deno.readFile(`${dir}/bytes.bin`), new Uint8Array([1, 2, 3]));
  deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["bytes.bin", "report.json"]);
});

Deno.test("a failed atomic write leaves the earlier file intact and no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/model.safetensors`;
  await writeSafetensors(path, [{ name: "w", data: Float32Array.from([1, 2]), shape: [2] }]);
  const before = await Deno.readFile(path);
  await rejects(
    writeFileAtomic(path, async (file) => {
      await file.write(new Uint8Array(100));
      throw new Error("disk full (simulated)");
    }),
    /cannot write .*model.safetensors: disk full/,
  );
  deepEqual(await Deno.readFile(path), before);
  // Renaming over a directory fails after the data was written: the temporary goes too.
  await Deno.mkdir(`${dir}/adir`);
  await rejects(writeFileAtomic(`${dir}/adir`, "x"), /cannot write/);
  await rejects(writeJsonAtomic(`${dir}/v.json`, { big: 1n }), /BigInt/);
  deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["adir", "model.safetensors"]);
  const f = await SafetensorsFile.open(path);
  deepEqual(await f.readF32("w"), Float32Array.from([1, 2]));
  f.close();
});
