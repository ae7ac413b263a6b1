/**
 * SIGKILL a real `cli.ts train` at a random moment (possibly inside a checkpoint write), resume it
 * with --resume, and require the final weights to equal an uninterrupted run's byte for byte.
 * Also: a checkpoint whose file does not match its recorded SHA-256 is refused on --resume.
 */
import { equal, match, notEqual, ok } from "node:assert/strict";
import { FIXTURES, prng, runCli, snapshot, spawnCli } from "./_cli.ts";
import { seededTest, testSeed } from "../_helpers.ts";

const STEPS = 8;

function trainArgs(model: string, out: string): string[] {
  return [
    "train",
    "--model",
    model,
    "--train",
    `${FIXTURES}xlmr-tiny/pairs.jsonl`,
    "--tokenizer",
    `${FIXTURES}tokenizer`,
    "--out",
    out,
    "--steps",
    String(STEPS),
    "--save-every",
    "2",
    "--batch-size",
    "4",
    "--max-length",
    "16",
    "--lr",
    "1e-3",
    "--seed",
    "7",
  ];
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Names of the `checkpoint-<step>` folders (with `.old` side copies) in a run directory. */
async function checkpoints(run: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(run)) {
      if (e.isDirectory && /^checkpoint-\d+(\.old)?$/.test(e.name)) names.push(e.name);
    }
  } catch { /* not created yet */ }
  return names;
}

const stepOf = (name: string) => Number(/\d+/.exec(name)![0]);

async function sha(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

seededTest(
  "train killed at a random moment resumes to the same weights as an uninterrupted run",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kill_resume_" });
    const seed = testSeed("kill moment");
    const random = prng(seed);
    const init = await runCli([
      "init",
      "--out",
      `${dir}/model`,
      "--config",
      "tiny",
      "--tokenizer",
      `${FIXTURES}tokenizer`,
      "--seed",
      "3",
    ]);
    equal(init.code, 0, init.stderr);

    const ref = await runCli(trainArgs(`${dir}/model`, `${dir}/ref`));
    equal(ref.code, 0, ref.stderr);

    // Kill: wait until a first checkpoint exists (or the run ends), then a random delay, so the
    // kill lands anywhere from between steps to inside the next checkpoint write.
    const child = spawnCli(trainArgs(`${dir}/model`, `${dir}/run`));
    const stderr = child.stderr.pipeTo(new WritableStream());
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    while (!exited && (await checkpoints(`${dir}/run`)).length === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const delay = Math.floor(random() * 2500);
    await new Promise((r) => setTimeout(r, delay));
    let killed = false;
    if (!exited) {
      child.kill("SIGKILL");
      killed = true;
    }
    const st = await status;
    await stderr.catch(() => {});
    // The newest complete checkpoint (a kill mid-swap can leave only a `.old` side copy).
    const complete = [];
    for (const c of await checkpoints(`${dir}/run`)) {
      if (await exists(`${dir}/run/${c}/trainer_state.json`)) complete.push(c);
    }
    const newest = complete.sort((a, b) => stepOf(a) - stepOf(b)).at(-1)!;
    const state = JSON.parse(await Deno.readTextFile(`${dir}/run/${newest}/trainer_state.json`));
    const leftovers = [...(await snapshot(`${dir}/run`)).keys()].filter((p) => p.includes(".tmp-"));
    console.log(
      `kill seed ${seed}: delay ${delay} ms after the first checkpoint, killed=${killed} ` +
        `(signal ${st.signal}), checkpoint at step ${state.step}, ${leftovers.length} temp files`,
    );

    const resumed = await runCli([
      ...trainArgs(`${dir}/model`, `${dir}/run`),
      "--resume",
      `${dir}/run`,
    ]);
    equal(resumed.code, 0, resumed.stderr);
    match(resumed.stdout, /resumed from .* at step \d+/);
    equal(
      await sha(`${dir}/run/model.safetensors`),
      await sha(`${dir}/ref/model.safetensors`),
      `seed ${seed}: resumed weights equal the uninterrupted run's`,
    );
    const metrics = (await Deno.readTextFile(`${dir}/run/metrics.jsonl`)).trim().split("\n");
    const refMetrics = (await Deno.readTextFile(`${dir}/ref/metrics.jsonl`)).trim().split("\n");
    equal(metrics.length, refMetrics.length, "one metrics line per step after the resume");

    // A flipped byte in the checkpoint's weights is caught by the SHA-256 in trainer_state.json.
    equal((await checkpoints(`${dir}/run`)).join(), `checkpoint-${STEPS}`, "one checkpoint kept");
    const ck = `${dir}/run/checkpoint-${STEPS}/model.safetensors`;
    const bytes = await Deno.readFile(ck);
    bytes[bytes.length - 3] ^= 0x40;
    await Deno.writeFile(ck, bytes);
    const before = await snapshot(`${dir}/run`);
    const bad = await runCli([
      ...trainArgs(`${dir}/model`, `${dir}/run`),
      "--resume",
      `${dir}/run`,
    ]);
    notEqual(bad.code, 0);
    match(bad.stderr, /checkpoint-8\/model\.safetensors is corrupt: its SHA-256 is [0-9a-f]{64}/);
    const after = await snapshot(`${dir}/run`);
    ok(
      [...before].every(([p, v]) => after.get(p) === v) && after.size === before.size,
      "the refused resume changed no file",
    );
    await Deno.remove(dir, { recursive: true });
  },
);
