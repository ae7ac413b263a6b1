/**
 * safetensors cases the mutation runner (`deno task mutants`) found untested: I64 values at the
 * exact int32 limits, and header padding when the header is already a multiple of 8 bytes long.
 * @module
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { SafetensorsFile, writeSafetensors } from "../../model/safetensors.ts";

/** header (as JSON text) then raw data, with the 8-byte little-endian header length. */
function craft(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

Deno.test("I64 tensors at exactly the int32 limits read back; one past either limit is refused", async () => {
  const lo = -(2n ** 31n), hi = 2n ** 31n - 1n;
  const data = new Uint8Array(BigInt64Array.from([hi, lo, hi + 1n, lo - 1n]).buffer);
  const header = JSON.stringify({
    edge: { dtype: "I64", shape: [2], data_offsets: [0, 16] },
    above: { dtype: "I64", shape: [1], data_offsets: [16, 24] },
    below: { dtype: "I64", shape: [1], data_offsets: [24, 32] },
  });
  const path = `${await Deno.makeTempDir()}/i64.safetensors`;
  await Deno.writeFile(path, craft(header, data));
  const f = await SafetensorsFile.open(path);
  try {
    // A refusal is turned into a value, so that it fails as an assertion, not as a RangeError.
    const edge = await f.readI32("edge").catch((e: Error) => `refused: ${e.message}`);
    deepEqual(edge, Int32Array.from([2147483647, -2147483648]));
    await rejects(f.readI32("above"), /"above".*outside int32/);
    await rejects(f.readI32("below"), /"below".*outside int32/);
  } finally {
    f.close();
  }
});

Deno.test("writeSafetensors pads the header with 0 to 7 spaces, none when it is already aligned", async () => {
  const dir = await Deno.makeTempDir();
  const value = new Uint8Array(Float32Array.from([0.5]).buffer);
  const residues = new Set<number>();
  // Names of length 1..8 give headers of every length modulo 8, the aligned one included.
  for (let n = 1; n <= 8; n++) {
    const name = "w".repeat(n);
    const path = `${dir}/${n}.safetensors`;
    await writeSafetensors(path, [{ name, data: Float32Array.from([0.5]), shape: [1] }]);
    const header = `{"${name}":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`;
    residues.add(header.length % 8);
    const padded = header + " ".repeat((8 - (header.length % 8)) % 8);
    deepEqual(await Deno.readFile(path), craft(padded, value), `name of ${n} characters`);
  }
  equal(residues.size, 8);
});
