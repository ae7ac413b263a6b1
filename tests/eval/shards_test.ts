/**
 * Shards and resumable parts without a GPU: `shardRange` covers every item exactly once in order
 * with sizes within one; `parseShard` refuses what is not I/N; `embedInParts` reuses the parts of
 * the same job, starts over for another job, and on a full disk (a real tmpfs, or a simulated one where mounting is not permitted) refuses the next
 * part naming the bytes, keeps the finished ones and completes after space is freed.
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { embedInParts, parseShard, shardRange } from "../../eval/shards.ts";
import { freshSeed, rng, seededTest } from "../_helpers.ts";
import { smallDisk } from "../_small_disk.ts";
import { freeBytes } from "../../util/disk.ts";

seededTest("shardRange: contiguous, in order, sizes within one, every item once", () => {
  const random = rng(freshSeed("shard sizes"));
  for (let trial = 0; trial < 200; trial++) {
    const n = Math.floor(random() * 1000), count = 1 + Math.floor(random() * 40);
    let next = 0;
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      const [a, b] = shardRange(n, i, count);
      equal(a, next, `n=${n} N=${count}: shard ${i} starts where ${i - 1} ended`);
      sizes.push(b - a);
      next = b;
    }
    equal(next, n);
    ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n} N=${count}: ${sizes}`);
  }
  deepEqual(parseShard("0/1"), { index: 0, count: 1 });
  deepEqual(parseShard(" 3/4 "), { index: 3, count: 4 });
  for (const bad of ["4/4", "1", "-1/2", "a/b", "1/0", "1.5/3", ""]) {
    throws(() => parseShard(bad), /--shard: expected I\/N with 0 ≤ I < N/, bad);
  }
});

const DIM = 64;
const rowsOf = (a: number, b: number) =>
  Float32Array.from({ length: (b - a) * DIM }, (_, i) => a * DIM + i);

seededTest("embedInParts resumes the same job and starts over for another", async () => {
  const dir = await Deno.makeTempDir();
  const parts = join(dir, "out.parts");
  const calls: number[] = [];
  const embed = (a: number, b: number) => {
    calls.push(a);
    return Promise.resolve(rowsOf(a, b));
  };
  const stop = new AbortController();
  const job = { inputs: "digest-1" };
  const first = await embedInParts(250, (a, b) => {
    if (a === 100) stop.abort();
    return embed(a, b);
  }, { dir: parts, partLines: 50, dim: DIM, job, signal: stop.signal });
  equal(first, null, "stopped after the part during which the signal came");
  deepEqual(calls, [0, 50, 100]);
  calls.length = 0;
  const all = await embedInParts(250, embed, { dir: parts, partLines: 50, dim: DIM, job });
  deepEqual(calls, [150, 200], "the three finished parts are reused");
  deepEqual(all, rowsOf(0, 250));
  calls.length = 0;
  await embedInParts(250, embed, { dir: parts, partLines: 50, dim: DIM, job: { inputs: "other" } });
  deepEqual(calls, [0, 50, 100, 150, 200], "parts of another job are not reused");
  await Deno.remove(dir, { recursive: true });
});

seededTest("embedInParts on a full disk keeps its finished parts and completes later", async () => {
  const disk = await smallDisk(1 << 20);
  const dir = disk.dir;
  try {
    const parts = join(dir, "out.parts");
    const ballast = join(dir, "ballast");
    const opts = { dir: parts, partLines: 100, dim: DIM, job: { inputs: "x" } };
    // Each part is 25.6 KB; after two parts something fills the disk up to 40 KB.
    const err = await embedInParts(500, async (a, b) => {
      if (a === 200) await Deno.writeFile(ballast, new Uint8Array(freeBytes(dir)! - 40960));
      return rowsOf(a, b);
    }, opts).then(() => null, (e: Error) => e);
    ok(err);
    match(
      err.message,
      /no space left for part 3\/5: it needs \d+ bytes \([\d.]+ MiB\) in .*out\.parts, but only \d+ bytes/,
    );
    match(err.message, /The finished parts are kept: free some space and run the same command/);
    const kept = [...Deno.readDirSync(parts)].map((e) => e.name).sort();
    deepEqual(kept, ["job.json", "part-000000.safetensors", "part-000001.safetensors"]);
    await Deno.remove(ballast);
    const calls: number[] = [];
    const all = await embedInParts(500, (a, b) => {
      calls.push(a);
      return Promise.resolve(rowsOf(a, b));
    }, opts);
    deepEqual(calls, [200, 300, 400]);
    deepEqual(all, rowsOf(0, 500));
  } finally {
    await disk.release();
  }
});
