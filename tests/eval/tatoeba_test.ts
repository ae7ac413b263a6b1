/**
 * Tatoeba: accuracy@1 equals a float64 brute force over the same embeddings (fixture subset, tiny
 * model), ties go to the lower line index, bad files fail naming the file and line, and `eval`
 * on a Tatoeba folder writes the JSON and the reports.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Encoder } from "../../model/encoder.ts";
import type { EmbedFn } from "../../eval/retrieval.ts";
import {
  evaluateTatoeba,
  isTatoebaDir,
  loadTatoeba,
  renderTatoebaReport,
} from "../../eval/tatoeba.ts";
import { gpuTest } from "../_helpers.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const TATOEBA = join(FIXTURES, "tatoeba");
const MODEL = join(FIXTURES, "xlmr-tiny/model");
const TOKENIZER = join(FIXTURES, "tokenizer");
const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

/** Float64 argmax with numpy's rule (first maximum) over normalised rows. */
function argmaxes(q: number[][], c: number[][]): { best: number[]; unsure: boolean[] } {
  const best: number[] = [], unsure: boolean[] = [];
  for (const x of q) {
    const s = c.map((y) => x.reduce((a, v, k) => a + v * y[k], 0));
    let b = 0;
    for (let j = 1; j < s.length; j++) if (s[j] > s[b]) b = j;
    best.push(b);
    // float32 scores may order two candidates within 1e-6 of each other differently.
    unsure.push(s.some((v, j) => j !== b && Math.abs(v - s[b]) < 1e-6));
  }
  return { best, unsure };
}

gpuTest("Tatoeba accuracy equals a float64 brute force over the same embeddings", async (gpu) => {
  const enc = await Encoder.load(gpu, MODEL, TOKENIZER);
  const raw = new Map<string, Float64Array>();
  const embed: EmbedFn = async (items) => {
    const out = await enc.embed(items, { pooling: "mean", maxLength: 48 });
    const h = out.length / items.length;
    items.forEach((it, i) => {
      const v = Float64Array.from(out.subarray(i * h, (i + 1) * h));
      const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
      raw.set(it.text, v.map((x) => x / n));
    });
    return out;
  };
  const set = await loadTatoeba(TATOEBA, { limit: 120 });
  deepEqual(set.languages, ["ara", "cmn", "deu", "rus"]);
  const r = await evaluateTatoeba(gpu, set, embed, { blockSize: 50 });
  let unsureCount = 0;
  for (const l of set.languages) {
    const { src, eng } = set.byLanguage[l];
    const a = src.map((t) => Array.from(raw.get(t)!)), b = eng.map((t) => Array.from(raw.get(t)!));
    const to = argmaxes(a, b), from = argmaxes(b, a);
    const rows = r.per_query.lang.map((x, i) => x === l ? i : -1).filter((i) => i >= 0);
    equal(rows.length, src.length);
    let hitTo = 0, hitFrom = 0;
    rows.forEach((row, i) => {
      equal(r.per_query.index[row], i);
      const gotTo = r.per_query.to_eng_rank[row] === 1,
        gotFrom = r.per_query.from_eng_rank[row] === 1;
      if (!to.unsure[i]) equal(gotTo, to.best[i] === i, `${l} line ${i} → eng`);
      if (!from.unsure[i]) equal(gotFrom, from.best[i] === i, `eng line ${i} → ${l}`);
      unsureCount += Number(to.unsure[i]) + Number(from.unsure[i]);
      hitTo += Number(to.best[i] === i);
      hitFrom += Number(from.best[i] === i);
    });
    const n = src.length;
    const slack = (to.unsure.filter(Boolean).length + 1e-9) / n;
    ok(Math.abs(r.accuracy[l].to_eng - hitTo / n) <= slack, `${l} to_eng`);
    ok(
      Math.abs(r.accuracy[l].from_eng - hitFrom / n) <=
        slack + from.unsure.filter(Boolean).length / n,
    );
    equal(r.accuracy[l].mean, (r.accuracy[l].to_eng + r.accuracy[l].from_eng) / 2);
  }
  ok(unsureCount < 20, `${unsureCount} near ties`);
  if (Deno.env.get("TEST_VERBOSE")) console.log(JSON.stringify(r.accuracy), unsureCount);
  const avg = set.languages.reduce((s, l) => s + r.accuracy[l].mean, 0) / 4;
  ok(Math.abs(r.average - avg) < 1e-15);
  // The tiny model is random: accuracy is low but not nil (short sentences share tokens).
  ok(r.average > 0 && r.average < 1, `average ${r.average}`);
  enc.release();
});

gpuTest("on equal scores the lower line index wins, as numpy's argmax", async (gpu) => {
  const dir = await Deno.makeTempDir();
  // xxx line 0 ties English lines 0 and 2 (its own is lower: correct); line 1 ties lines 0 and 1
  // (line 0 is lower: wrong); line 2 scores highest on its own line.
  const vec: Record<string, number[]> = {
    "x0": [1, 0, 0],
    "x1": [0, 1, 0],
    "x2": [0, 0, 1],
    "e0": [0.6, 0.8, 0],
    "e1": [0, 0.8, 0.6],
    "e2": [0.6, 0, 0.8],
  };
  await Deno.writeTextFile(join(dir, "tatoeba.xxx-eng.xxx"), "x0\nx1\nx2\n");
  await Deno.writeTextFile(join(dir, "tatoeba.xxx-eng.eng"), "e0\ne1\ne2\n");
  const embed: EmbedFn = (items) =>
    Promise.resolve(new Float32Array(items.flatMap((it) => vec[it.text])));
  const r = await evaluateTatoeba(gpu, await loadTatoeba(dir), embed);
  // x0: e0 0.6 = e2 0.6 → e0 ✓; x1: e0 0.8 = e1 0.8 → e0 ✗; x2: e1 0.6, e2 0.8 → e2 ✓.
  // e0: x0 0.6, x1 0.8 → x1 ✗; e1: x1 0.8 → ✓; e2: x0 0.6, x2 0.8 → ✓.
  deepEqual(r.per_query.to_eng_rank, [1, 2, 1]);
  deepEqual(r.per_query.from_eng_rank, [2, 1, 1]);
  deepEqual(r.accuracy.xxx, { to_eng: 2 / 3, from_eng: 2 / 3, mean: 2 / 3 });
  equal(r.average, 2 / 3);
  ok(renderTatoebaReport(r, "md").includes("| xxx | 3 | 66.7 | 66.7 | 66.7 |"));
  ok(renderTatoebaReport(r, "html").includes("<svg"));
});

Deno.test("bad Tatoeba files fail naming the file and the line", async () => {
  const dir = await Deno.makeTempDir();
  const put = (name: string, data: string | Uint8Array) =>
    typeof data === "string"
      ? Deno.writeTextFile(join(dir, name), data)
      : Deno.writeFile(join(dir, name), data);
  await put("tatoeba.deu-eng.deu", "Eins.\nZwei.\nDrei.\n");
  await put("tatoeba.deu-eng.eng", "One.\nTwo.\n");
  ok(await isTatoebaDir(dir));
  await rejects(
    loadTatoeba(dir),
    /tatoeba\.deu-eng\.deu:3: no translation in .*tatoeba\.deu-eng\.eng \(3 lines vs 2\)/,
  );
  await put(
    "tatoeba.deu-eng.eng",
    new Uint8Array([...new TextEncoder().encode("One.\nTw"), 0xff, 0x0a, 0x41, 0x0a]),
  );
  await rejects(loadTatoeba(dir), /tatoeba\.deu-eng\.eng:2: invalid UTF-8 at byte 7/);
  await put("tatoeba.deu-eng.eng", "One.\n\nThree.\n");
  await rejects(loadTatoeba(dir), /tatoeba\.deu-eng\.eng:2: empty line/);
  await put("tatoeba.deu-eng.eng", "One.\r\nTwo.\r\nThree.");
  deepEqual((await loadTatoeba(dir)).byLanguage.deu.eng, ["One.", "Two.", "Three."]);
  await rejects(loadTatoeba(dir, { langs: ["fra"] }), /tatoeba\.fra-eng\.fra does not exist/);
  await put("tatoeba.fra-eng.fra", "Un.\n");
  await rejects(loadTatoeba(dir), /tatoeba\.fra-eng\.eng is missing/);
  ok(!(await isTatoebaDir(join(FIXTURES, "xquad-r"))));
});

Deno.test({
  name: "eval on a Tatoeba folder writes the accuracy JSON and the reports",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const out = join(dir, "tatoeba.json");
    const cmd = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI,
        "eval",
        "--model",
        MODEL,
        "--tokenizer",
        TOKENIZER,
        "--dataset",
        TATOEBA,
        "--out",
        out,
        "--langs",
        "deu,cmn",
        "--limit-questions",
        "40",
        "--pooling",
        "mean",
        "--max-length",
        "48",
        "--report",
        join(dir, "report"),
      ],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(cmd.stderr);
    equal(cmd.code, 0, stderr);
    const j = JSON.parse(await Deno.readTextFile(out));
    equal(j.dataset, "tatoeba");
    deepEqual(Object.keys(j.accuracy), ["cmn", "deu"]);
    deepEqual(Object.keys(j.accuracy.deu), ["to_eng", "from_eng", "mean"]);
    equal(j.average, (j.accuracy.cmn.mean + j.accuracy.deu.mean) / 2);
    equal(j.per_query.lang.length, 80);
    ok(j.provenance.dataset.sha256["tatoeba.deu-eng.deu"].length === 64);
    const md = await Deno.readTextFile(join(dir, "report/report.md"));
    ok(md.includes("# Tatoeba bitext retrieval") && md.includes("| deu | 40 |"), md);
    ok((await Deno.readTextFile(join(dir, "report/report.html"))).includes("<svg"));
  },
});
