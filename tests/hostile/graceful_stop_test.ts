/**
 * Ctrl-C keeps the work: a real `cli.ts train` subprocess gets SIGINT (or SIGTERM) mid-run,
 * finishes the current step, checkpoints it, exits 130 (143), and `--resume` ends byte-identical
 * to an uninterrupted run (weights, metrics.jsonl, batches.jsonl). A second signal stops at once
 * and the newest complete checkpoint still resumes to the same bytes.
 */
import { equal, match, ok } from "node:assert/strict";
import { FIXTURES, ROOT, runCli } from "./_cli.ts";
import { seededTest } from "../_helpers.ts";

const STEPS = 60;

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
    "4",
    "--log-every",
    "1",
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

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli.ts`, ...args],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function lines(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).length;
  } catch {
    return 0;
  }
}

async function sha(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function checkpoints(run: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(run)) {
    if (e.isDirectory && e.name.startsWith("checkpoint")) names.push(e.name);
  }
  return names.sort();
}

/** Starts a run, waits until `minSteps` steps are logged, sends the signals, waits for the exit. */
async function interrupt(
  args: string[],
  out: string,
  minSteps: number,
  signals: Deno.Signal[],
): Promise<{ code: number; stdout: string; stderr: string; loggedAtSignal: number }> {
  const child = spawn(args);
  const text = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  while (!exited && (await lines(`${out}/metrics.jsonl`)) < minSteps) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const loggedAtSignal = await lines(`${out}/metrics.jsonl`);
  for (const s of signals) if (!exited) child.kill(s);
  const st = await status;
  const [stdout, stderr] = await text;
  return { code: st.code, stdout, stderr, loggedAtSignal };
}

async function assertSameAsReference(run: string, ref: string): Promise<void> {
  equal(await sha(`${run}/model.safetensors`), await sha(`${ref}/model.safetensors`), "weights");
  for (const log of ["metrics.jsonl", "batches.jsonl"]) {
    equal(await Deno.readTextFile(`${run}/${log}`), await Deno.readTextFile(`${ref}/${log}`), log);
  }
}

seededTest(
  "SIGINT/SIGTERM: train checkpoints the current step, exits 130/143, resume is byte-identical",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "graceful_stop_" });
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

    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      const out = `${dir}/run-${signal}`;
      const r = await interrupt(trainArgs(`${dir}/model`, out), out, 2, [signal]);
      equal(r.code, code, `${signal}: exit status\n${r.stderr}`);
      match(r.stderr, new RegExp(`${signal}: finishing the current step`));
      const m = /stopped after step (\d+) \((SIGINT|SIGTERM)\)/.exec(r.stdout);
      ok(m && m[2] === signal, r.stdout);
      const step = Number(m[1]);
      ok(
        step >= r.loggedAtSignal && step < STEPS,
        `stopped at ${step} (${r.loggedAtSignal} logged)`,
      );
      equal(await lines(`${out}/metrics.jsonl`), step, "every finished step is logged");
      ok((await checkpoints(out)).includes(`checkpoint-${step}`), "the stop step is checkpointed");
      const cont = /continue with: deno run -A cli\.ts (.*)$/m.exec(r.stdout);
      ok(cont && cont[1].endsWith(`--resume ${out}`), r.stdout);
      console.log(`${signal} after ${r.loggedAtSignal} logged steps → checkpoint-${step}`);

      // SIGINT: the printed --resume command; SIGTERM: the same command with --auto-resume, as a
      // scheduler restarting a preempted job would run it.
      const resumed = await runCli(
        signal === "SIGINT"
          ? [...trainArgs(`${dir}/model`, out), "--resume", out]
          : [...trainArgs(`${dir}/model`, out), "--auto-resume"],
      );
      equal(resumed.code, 0, resumed.stderr);
      match(resumed.stdout, new RegExp(`resumed from .*checkpoint-${step} at step ${step}`));
      await assertSameAsReference(out, `${dir}/ref`);
      await Deno.remove(out, { recursive: true });
    }

    // Two signals: the second exits at once (possibly inside a checkpoint write); the newest
    // complete checkpoint still resumes to the same bytes.
    const out = `${dir}/run-twice`;
    const r = await interrupt(trainArgs(`${dir}/model`, out), out, 6, ["SIGINT", "SIGINT"]);
    equal(r.code, 130, r.stderr);
    const resumed = await runCli([...trainArgs(`${dir}/model`, out), "--resume", out]);
    equal(resumed.code, 0, resumed.stderr);
    await assertSameAsReference(out, `${dir}/ref`);
    await Deno.remove(dir, { recursive: true });
  },
);
