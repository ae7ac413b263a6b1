import { deepEqual, equal, match, notDeepEqual, ok } from "node:assert/strict";
import { gpuMatmulPlan, isCpuAdapter, matmul, matmulPlan } from "../../kernels/matmul.ts";
import { matmulRef } from "../../kernels/matmul_reference.ts";
import {
  adapterKeyText,
  attentionShapeKey,
  ENGINE_VERSION,
  loadTuneCache,
  matmulShapeKey,
  saveTuneCache,
  type TuneCache,
  tuneFileName,
  tunePath,
  tuneSource,
} from "../../kernels/tune.ts";
import {
  attentionCandidates,
  runTune,
  trainingMatmulShapes,
  tuneCandidates,
} from "../../cli/bench_tune.ts";
import { attention, attentionPlanFor } from "../../kernels/attention.ts";
import { assertClose, freshSeed, gpuTest, randn, rng } from "../_helpers.ts";

const NT = { transA: false, transB: true, aType: "f32", bType: "f32" };
const TN = { transA: true, transB: false, aType: "f32", bType: "f32" };
// Tiles the hand table never picks for these shapes, and a split it would not choose.
const ODD_TILES = { WX: 4, WY: 8, BK: 8, TM4: 2, TN4: 1 };

Deno.test("tune cache: keyed by adapter, driver text and engine version; written atomically and read back", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const a = { vendor: "v", device: "dev", description: "Driver X 1.2" };
    const name = tuneFileName(a);
    match(name, /^tune-driver-x-1-2-/);
    ok(name.includes(ENGINE_VERSION.replace(/[^0-9a-z.]+/gi, "_")));
    // Another driver, adapter or engine version: another file.
    ok(tuneFileName({ ...a, description: "Driver X 1.3" }) !== name);
    ok(tuneFileName(a, "9.9.9") !== name);
    ok(adapterKeyText(a).includes("Driver X 1.2"));
    const path = `${dir}/sub/${name}`;
    const cache: TuneCache = {
      format: 1,
      adapter: adapterKeyText(a),
      engine: ENGINE_VERSION,
      created: new Date(0).toISOString(),
      matmul: { [matmulShapeKey(64, 48, 40, 1, NT)]: { tiles: ODD_TILES, splits: 1 } },
    };
    saveTuneCache(path, cache);
    deepEqual(loadTuneCache(path), cache);
    // No temporary file is left next to it.
    deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), [name]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("tune cache: the default folder follows XDG_CACHE_HOME", () => {
  const old = Deno.env.get("XDG_CACHE_HOME");
  try {
    Deno.env.set("XDG_CACHE_HOME", "/x/cache");
    match(tunePath({ description: "d" })!, /^\/x\/cache\/xlmr-webgpu\/tune-d-.*\.json$/);
  } finally {
    if (old === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", old);
  }
});

Deno.test("tune cache: only read when asked for, never by a poison (test) Gpu", () => {
  const old = Deno.env.get("XLMR_WEBGPU_TUNE");
  const info = { description: "d" };
  try {
    Deno.env.delete("XLMR_WEBGPU_TUNE");
    equal(tuneSource(undefined, false, info), null);
    equal(tuneSource("/f.json", false, info), "/f.json");
    equal(tuneSource(true, false, info), tunePath(info));
    Deno.env.set("XLMR_WEBGPU_TUNE", "on");
    equal(tuneSource(undefined, false, info), tunePath(info));
    equal(tuneSource(false, false, info), null);
    // poison wins over the option and the environment.
    equal(tuneSource(undefined, true, info), null);
    equal(tuneSource("/f.json", true, info), null);
    Deno.env.set("XLMR_WEBGPU_TUNE", "off");
    equal(tuneSource(undefined, false, info), null);
    Deno.env.set("XLMR_WEBGPU_TUNE", "/g.json");
    equal(tuneSource(undefined, false, info), "/g.json");
  } finally {
    if (old === undefined) Deno.env.delete("XLMR_WEBGPU_TUNE");
    else Deno.env.set("XLMR_WEBGPU_TUNE", old);
  }
});

Deno.test("tune cache: a corrupt or malformed file is ignored with a warning naming it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const warnings: string[] = [];
    const bad = `${dir}/tune-bad.json`;
    Deno.writeTextFileSync(bad, "{ not json");
    equal(loadTuneCache(bad, (m) => warnings.push(m)), null);
    const wrong = `${dir}/tune-wrong.json`;
    Deno.writeTextFileSync(
      wrong,
      JSON.stringify({ format: 1, matmul: { k: { tiles: { WX: 3 }, splits: 1 } } }),
    );
    equal(loadTuneCache(wrong, (m) => warnings.push(m)), null);
    equal(warnings.length, 2);
    ok(warnings[0].includes(bad) && /corrupt, ignored/.test(warnings[0]), warnings[0]);
    ok(warnings[1].includes(wrong), warnings[1]);
    // A missing file is silent.
    equal(loadTuneCache(`${dir}/none.json`, (m) => warnings.push(m)), null);
    equal(warnings.length, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("bench tune: a training step's products, the hand-picked plan first among candidates", () => {
  const shapes = trainingMatmulShapes(64, 128, 256);
  equal(shapes.length, 9);
  for (const s of shapes) {
    for (const cpu of [true, false]) {
      const c = tuneCandidates(s, cpu);
      const hand = matmulPlan(s.m, s.n, s.k, s.batch, cpu);
      deepEqual(c[0], { tiles: hand.tiles, splits: hand.splits });
      equal(new Set(c.map((p) => JSON.stringify(p))).size, c.length);
    }
  }
});

gpuTest(
  "a Gpu with a tune cache plans cached shapes from it and the rest from the hand table",
  async (gpu) => {
    const cpu = isCpuAdapter(gpu);
    equal(gpu.tuned, null, "the test Gpu (poison) never reads a user's tune cache");
    const cachedKey = matmulShapeKey(64, 48, 200, 1, TN);
    gpu.tuned = {
      format: 1,
      adapter: "test",
      engine: ENGINE_VERSION,
      created: "",
      matmul: { [cachedKey]: { tiles: ODD_TILES, splits: 3 } },
    };
    try {
      const p = gpuMatmulPlan(gpu, 64, 48, 200, 1, TN);
      ok(p.tuned);
      deepEqual(p.tiles, ODD_TILES);
      equal(p.splits, 3);
      // Same shape, another form or operand type: the hand table.
      for (const form of [NT, { ...TN, bType: "f16" }]) {
        const q = gpuMatmulPlan(gpu, 64, 48, 200, 1, form);
        ok(!q.tuned);
        deepEqual(q.tiles, matmulPlan(64, 48, 200, 1, cpu).tiles);
      }
      notDeepEqual(matmulPlan(64, 48, 200, 1, cpu).tiles, ODD_TILES);
      // Another shape: the hand table.
      const other = gpuMatmulPlan(gpu, 64, 48, 199, 1, TN);
      ok(!other.tuned);
      deepEqual(other, { ...matmulPlan(64, 48, 199, 1, cpu), tuned: false });
      // The product with the tuned plan still matches float64.
      const r = rng(freshSeed("tuned matmul"));
      const a = randn(200 * 64, r), b = randn(200 * 48, r);
      const ta = gpu.fromArray(a, [200, 64]), tb = gpu.fromArray(b, [200, 48]);
      const c = matmul(gpu, ta, tb, { transA: true });
      const want = matmulRef(a, b, { batch: 1, m: 64, n: 48, k: 200, transA: true });
      assertClose(await gpu.read(c), want, 1e-5, "tuned tiles + split 3");
      gpu.release(ta, tb, c);
    } finally {
      gpu.tuned = null;
    }
  },
);

gpuTest(
  "tuned plans from bench tune's candidates match float64 for every product form",
  async (gpu) => {
    const cpu = isCpuAdapter(gpu);
    const r = rng(freshSeed("tuned candidates"));
    // One small training-step shape per form (fwd, dX, dW), every candidate plan in the cache.
    for (const s of trainingMatmulShapes(16, 32, 40).slice(3, 6)) {
      const { m, n, k, form } = s;
      const a = randn(m * k, r), b = randn(k * n, r);
      const ta = gpu.fromArray(a, form.transA ? [k, m] : [m, k]);
      const tb = gpu.fromArray(b, form.transB ? [n, k] : [k, n]);
      const want = matmulRef(a, b, { batch: 1, m, n, k, transA: form.transA, transB: form.transB });
      for (const plan of tuneCandidates(s, cpu)) {
        gpu.tuned = {
          format: 1,
          adapter: "test",
          engine: ENGINE_VERSION,
          created: "",
          matmul: { [matmulShapeKey(m, n, k, 1, form)]: plan },
        };
        try {
          ok(gpuMatmulPlan(gpu, m, n, k, 1, form).tuned);
          const c = matmul(gpu, ta, tb, { transA: form.transA, transB: form.transB });
          assertClose(await gpu.read(c), want, 1e-5, `${s.name} ${JSON.stringify(plan)}`);
          gpu.release(c);
        } finally {
          gpu.tuned = null;
        }
      }
      gpu.release(ta, tb);
    }
  },
);

Deno.test({
  name:
    "Gpu.create({ tune: FILE }) loads the cache; a corrupt one is ignored with a warning naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { Gpu } = await import("../../kernels/runtime.ts");
    const dir = Deno.makeTempDirSync();
    const warn = console.warn;
    const warnings: string[] = [];
    try {
      const path = `${dir}/tune-test.json`;
      const cache: TuneCache = {
        format: 1,
        adapter: "test",
        engine: ENGINE_VERSION,
        created: "",
        matmul: { [matmulShapeKey(64, 48, 40, 1, NT)]: { tiles: ODD_TILES, splits: 2 } },
      };
      saveTuneCache(path, cache);
      const gpu = await Gpu.create({ tune: path });
      deepEqual(gpu.tuned, cache);
      const p = gpuMatmulPlan(gpu, 64, 48, 40, 1, NT);
      ok(p.tuned);
      deepEqual([p.tiles, p.splits], [ODD_TILES, 2]);
      gpu.device.destroy();
      Deno.writeTextFileSync(path, "[1, 2");
      console.warn = (m: string) => warnings.push(m);
      const g2 = await Gpu.create({ tune: path });
      equal(g2.tuned, null);
      ok(warnings.some((w) => w.includes(path)), warnings.join("\n"));
      g2.device.destroy();
    } finally {
      console.warn = warn;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

gpuTest(
  "bench tune writes the adapter's cache, which then plans every product it tuned",
  async (gpu) => {
    const dir = Deno.makeTempDirSync();
    try {
      const out = `${dir}/${tuneFileName(gpu.adapter.info)}`;
      const result = await runTune(gpu, {
        config: "tiny",
        batchSize: 1,
        maxLength: 8,
        samples: 2,
        out,
      });
      equal(result.rows.length, 9);
      const cache = loadTuneCache(out)!;
      equal(result.attention.length, 1);
      const a = result.attention[0];
      ok(a.best.ms <= a.hand.ms);
      deepEqual(cache.attention?.[a.key], { rows: a.best.rows, wg: a.best.wg });
      // tiny draws no dropout, so queries and passages run in one pass: 2 sequences of 8 tokens.
      equal(a.key, "2x8x4x16");
      ok(attentionPlanFor(gpu, { batch: 2, seq: 8, heads: 4, headDim: 16 }).tuned);
      equal(cache.adapter, adapterKeyText(gpu.adapter.info));
      equal(cache.engine, ENGINE_VERSION);
      for (const r of result.rows) {
        // Kept only when faster than the hand-picked plan (else the hand plan itself).
        ok(r.best.ms <= r.hand.ms, `${r.name}: ${r.best.ms} > ${r.hand.ms}`);
        deepEqual(cache.matmul[r.key], { tiles: r.best.tiles, splits: r.best.splits });
      }
      for (const s of trainingMatmulShapes(64, 128, 16)) {
        const p = gpuMatmulPlan(gpu, s.m, s.n, s.k, 1, s.form);
        ok(p.tuned, s.name);
        deepEqual(p.tiles, cache.matmul[matmulShapeKey(s.m, s.n, s.k, 1, s.form)].tiles);
      }
      // The switches the tuner forced are back to automatic.
      equal(gpu.options.matmul.tiles, null);
      equal(gpu.options.matmul.splits, null);
    } finally {
      gpu.tuned = null;
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

gpuTest(
  "a tuned attention split is used for its dims and gives the hand rule's bits",
  async (gpu) => {
    const dims = { batch: 2, seq: 13, heads: 2, headDim: 8 };
    const r = rng(freshSeed("tuned attention"));
    const shape = [dims.batch, dims.seq, dims.heads * dims.headDim];
    const n = shape.reduce((a, b) => a * b, 1);
    const q = gpu.fromArray(randn(n, r), shape), k = gpu.fromArray(randn(n, r), shape);
    const v = gpu.fromArray(randn(n, r), shape);
    const maskData = new Float32Array(dims.batch * dims.seq).fill(1);
    maskData[dims.seq - 1] = 0;
    const mask = gpu.fromArray(maskData, [dims.batch, dims.seq]);
    const hand = attention(gpu, q, k, v, mask, dims);
    const want = await gpu.read(hand.out), wantLse = await gpu.read(hand.lse);
    gpu.release(hand.out, hand.lse);
    ok(!attentionPlanFor(gpu, dims).tuned);
    try {
      for (const plan of attentionCandidates(gpu, dims)) {
        gpu.tuned = {
          format: 1,
          adapter: "test",
          engine: ENGINE_VERSION,
          created: "",
          matmul: {},
          attention: { [attentionShapeKey(dims)]: plan },
        };
        const p = attentionPlanFor(gpu, dims);
        ok(p.tuned);
        deepEqual([p.rows, p.wg], [Math.min(plan.rows, 16), plan.wg]);
        ok(!attentionPlanFor(gpu, { ...dims, seq: 12 }).tuned, "other dims: the rule");
        const got = attention(gpu, q, k, v, mask, dims);
        deepEqual(await gpu.read(got.out), want, `rows ${plan.rows} wg ${plan.wg}`);
        deepEqual(await gpu.read(got.lse), wantLse);
        gpu.release(got.out, got.lse);
      }
    } finally {
      gpu.tuned = null;
      gpu.release(q, k, v, mask);
    }
  },
);
