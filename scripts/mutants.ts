/**
 * Mutation runner (`deno task mutants`): checks that the test suite notices realistic bugs.
 *
 * `tests/mutants.json` lists mutants `{ id, file, find, replace, why, tests }`. For each one, in
 * turn, the runner copies the working tree to a temporary folder (without `.git`, `out/`, `runs/`,
 * `node_modules`), checks that `find` occurs exactly once in `file`, replaces it, regenerates the
 * bundled assets when the file is a `.wgsl` kernel or a report template, and runs
 * `deno test -A --no-check <tests...>` in the copy with a timeout. The result is
 *
 * - `caught`: some test failed on an assertion (`AssertionError` in the failure report);
 * - `missed`: the tests passed;
 * - `error`: anything else (a failure that is not an assertion, such as a TypeError, a missing file
 *   or a broken module; no summary line; a timeout): reported, never counted as a kill;
 * - `invalid`: `find` does not occur exactly once (the mutant no longer applies).
 *
 * The kill rate is caught / total. A JSON report is written atomically to `--report` (default
 * `out/mutants.json`). The exit code is 0 only when every mutant was caught.
 *
 * ```sh
 * deno task mutants                    # all mutants
 * deno task mutants --list             # only check that every mutant applies exactly once
 * deno task mutants --only a,b --keep  # a subset, keeping the temporary copies
 * ```
 * @module
 */
import { parseArgs } from "node:util";

/** One mutant of `tests/mutants.json`. */
export interface Mutant {
  /** Unique name (used by `--only`). */
  id: string;
  /** File to mutate, relative to the repository root. */
  file: string;
  /** Text that must occur exactly once in `file`. */
  find: string;
  /** What it is replaced with. */
  replace: string;
  /** The bug this stands for, in words. */
  why: string;
  /** Test files (relative to the root) that should catch it. */
  tests: string[];
}

/** Outcome of one mutant. */
export type Status = "caught" | "missed" | "error" | "invalid";

/** One line of the report. */
export interface MutantResult {
  id: string;
  file: string;
  status: Status;
  seconds: number;
  why: string;
  tests: string[];
  /** Why it is an error or invalid, or notes (missing test files, a timeout). */
  reason?: string;
  /** The first relevant lines of the test output (for missed and error). */
  excerpt?: string[];
  /** The temporary copy, when kept. */
  dir?: string;
}

/** Top-level entries of the working tree that are never copied. */
const SKIP_TOP = new Set(["out", "runs"]);
/** Entries never copied at any depth. */
const SKIP_ANY = new Set([".git", "node_modules"]);
/** Generated asset modules, rebuilt in the copy when a mutant edits one of their sources. */
const GENERATED = ["kernels/_wgsl.gen.ts", "eval/_templates.gen.ts"];

const ROOT = new URL("../", import.meta.url);
const HELP = `usage: deno task mutants [options]
  --only ID[,ID...]  run only these mutants
  --list             check that every mutant applies exactly once; run no tests
  --timeout S        seconds per mutant (default 600)
  --report FILE      JSON report (default out/mutants.json)
  --baseline         first run the selected mutants' tests on the unmutated copy
  --keep             keep the temporary copies
  --data FILE        mutant list (default tests/mutants.json)`;

/** How many times `needle` occurs in `haystack` (overlapping occurrences count). */
export function countOccurrences(haystack: string, needle: string): number {
  if (needle === "") return Infinity;
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) n++;
  return n;
}

/** Parses and validates the mutant list; throws naming every problem. */
export function parseMutants(text: string, where: string): Mutant[] {
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error(`${where}: expected a JSON array of mutants`);
  const problems: string[] = [];
  const seen = new Set<string>();
  const out: Mutant[] = [];
  data.forEach((m: Record<string, unknown>, i) => {
    const at = `${where}[${i}]${typeof m?.id === "string" ? ` (${m.id})` : ""}`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      problems.push(`${at}: not an object`);
      return;
    }
    for (const k of ["id", "file", "find", "replace", "why"]) {
      if (typeof m[k] !== "string") problems.push(`${at}: "${k}" must be a string`);
    }
    const tests = m.tests;
    if (
      !Array.isArray(tests) || tests.length === 0 || !tests.every((t) => typeof t === "string")
    ) problems.push(`${at}: "tests" must be a non-empty list of test files`);
    const extra = Object.keys(m).filter(
      (k) => !["id", "file", "find", "replace", "why", "tests"].includes(k),
    );
    if (extra.length) problems.push(`${at}: unknown field(s) ${extra.join(", ")}`);
    if (typeof m.id === "string") {
      if (!/^[A-Za-z0-9._-]+$/.test(m.id)) problems.push(`${at}: id must match [A-Za-z0-9._-]+`);
      if (seen.has(m.id)) problems.push(`${at}: duplicate id`);
      seen.add(m.id);
    }
    if (m.find === "") problems.push(`${at}: "find" is empty`);
    if (m.find === m.replace) problems.push(`${at}: "replace" equals "find"`);
    for (const p of [m.file, ...(Array.isArray(tests) ? tests : [])]) {
      if (typeof p === "string" && (p.startsWith("/") || p.split("/").includes(".."))) {
        problems.push(`${at}: ${p} must be relative to the repository root`);
      }
    }
    out.push(m as unknown as Mutant);
  });
  if (problems.length) throw new Error(problems.join("\n"));
  return out;
}

/** Why `find` does not apply to `text` exactly once, or null when it does. */
export function applyProblem(text: string | null, m: Mutant): string | null {
  if (text === null) return `invalid: file not found (${m.file})`;
  const n = countOccurrences(text, m.find);
  if (n === 0) return "invalid: text not found";
  if (n > 1) return `invalid: text ambiguous (${n} occurrences)`;
  return null;
}

/** How a finished `deno test` run is classified. */
export interface Classification {
  status: "caught" | "missed" | "error";
  reason?: string;
  excerpt: string[];
}

/** The lines between the ` ERRORS ` and ` FAILURES ` headings of `deno test` output. */
function errorsSection(lines: string[]): string[] {
  const start = lines.findLastIndex((l) => l.trim() === "ERRORS");
  if (start < 0) return [];
  let end = lines.findIndex((l, i) => i > start && l.trim() === "FAILURES");
  if (end < 0) end = lines.length;
  return lines.slice(start + 1, end);
}

/** `deno test`'s final summary line, e.g. `FAILED | 3 passed | 1 failed (2s)`. */
const SUMMARY = /^(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/;
/** An error line of the failure report that is an assertion failure. */
const ASSERTION = /^error: (?:\(in promise\) )?(?:Uncaught )?AssertionError\b/;
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Classifies the output of one `deno test` run: caught when a test failed on an
 * `AssertionError`, missed when the run passed, error otherwise.
 */
export function classify(output: string, code: number, timedOut: boolean): Classification {
  const lines = output.replace(ANSI, "").split(/\r?\n/);
  const tail = (n: number) => lines.filter((l) => l.trim() !== "").slice(-n);
  if (timedOut) return { status: "error", reason: "timeout", excerpt: tail(15) };
  const summaries = lines.map((l) => SUMMARY.exec(l.trim())).filter((m) => m !== null);
  const summary = summaries.at(-1);
  const errs = errorsSection(lines);
  const errorLines = errs.filter((l) => l.startsWith("error: "));
  if (!summary) {
    const first = lines.findIndex((l) => /^error: /.test(l) && !/^error: Test failed/.test(l));
    return {
      status: "error",
      reason: `no test summary line (exit code ${code})`,
      excerpt: first >= 0 ? lines.slice(first, first + 12) : tail(15),
    };
  }
  const failed = Number(summary[3]), passed = Number(summary[2]);
  if (failed === 0) {
    if (code !== 0) {
      return { status: "error", reason: `tests passed but exit code ${code}`, excerpt: tail(15) };
    }
    if (passed === 0) return { status: "error", reason: "no test ran", excerpt: tail(5) };
    const running = lines.filter((l) => /^running \d+ tests? from /.test(l));
    return { status: "missed", excerpt: [...running, summary[0]] };
  }
  // Each failed test's block: "name => file:line:col", "error: ...", source, stack.
  const blocks: string[] = [];
  errs.forEach((l, i) => {
    if (!l.startsWith("error: ")) return;
    const head = errs[i - 1] && !errs[i - 1].startsWith(" ") ? `${errs[i - 1]}: ` : "";
    blocks.push(`${head}${l}`);
  });
  if (errorLines.some((l) => ASSERTION.test(l))) {
    return {
      status: "caught",
      excerpt: blocks.filter((b) => ASSERTION.test(b.slice(b.indexOf("error: ")))),
    };
  }
  return {
    status: "error",
    reason: `${failed} test(s) failed, none on an assertion`,
    excerpt: blocks.length ? blocks.slice(0, 10) : tail(15),
  };
}

/** Copies the working tree at `from` to `to` (both folders), skipping SKIP_TOP and SKIP_ANY. */
export async function copyTree(from: string, to: string, top = true): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  const jobs: Promise<void>[] = [];
  for await (const e of Deno.readDir(from)) {
    if (SKIP_ANY.has(e.name) || (top && SKIP_TOP.has(e.name))) continue;
    const src = `${from}/${e.name}`, dst = `${to}/${e.name}`;
    let job: Promise<void> | null = null;
    if (e.isSymlink) job = Deno.readLink(src).then((t) => Deno.symlink(t, dst));
    else if (e.isDirectory) job = copyTree(src, dst, false);
    else if (e.isFile) job = Deno.copyFile(src, dst);
    // A file deleted while we copy (someone else is editing the tree) is simply not copied.
    if (job) {
      jobs.push(job.catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }));
    }
  }
  await Promise.all(jobs);
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) return null;
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The running child (its process group) and temporary copy, so that SIGINT can clean up. */
let current: { pid: number } | null = null;
let currentDir: string | null = null;

function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
}

/** Output kept per stream: the start and the end (the failure report is at the end). */
const KEEP_HEAD = 256 * 1024, KEEP_TAIL = 1024 * 1024;

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  const dec = new TextDecoder();
  let head = "", tail = "", dropped = 0;
  for await (const chunk of stream) {
    const s = dec.decode(chunk, { stream: true });
    if (head.length < KEEP_HEAD) head += s;
    else {
      tail += s;
      if (tail.length > 2 * KEEP_TAIL) {
        dropped += tail.length - KEEP_TAIL;
        tail = tail.slice(-KEEP_TAIL);
      }
    }
  }
  return dropped ? `${head}\n[... ${dropped} characters left out ...]\n${tail}` : head + tail;
}

/** Runs a command in its own process group with a timeout; output is stdout then stderr. */
async function runCommand(
  args: string[],
  cwd: string,
  timeoutS: number,
): Promise<{ code: number; output: string; timedOut: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  current = child;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, timeoutS * 1000);
  try {
    const [out, err, status] = await Promise.all([
      collect(child.stdout),
      collect(child.stderr),
      child.status,
    ]);
    return { code: status.code, output: err.trim() ? `${out}\n${err}` : out, timedOut };
  } finally {
    clearTimeout(timer);
    current = null;
  }
}

/** Regenerates the bundled assets in `dir`; returns an error text or null. */
async function regenerateAssets(dir: string, timeoutS: number): Promise<string | null> {
  if (!(await exists(`${dir}/scripts/bundle_assets.ts`))) return null;
  const before = await Promise.all(GENERATED.map((g) => readOrNull(`${dir}/${g}`)));
  const r = await runCommand(["run", "-A", "scripts/bundle_assets.ts"], dir, timeoutS);
  if (r.timedOut || r.code !== 0) {
    const last = r.output.trim().split("\n").slice(-5).join(" | ");
    return `asset bundling failed (exit ${r.code}${r.timedOut ? ", timeout" : ""}): ${last}`;
  }
  const after = await Promise.all(GENERATED.map((g) => readOrNull(`${dir}/${g}`)));
  if (before.every((b, i) => b === after[i])) return "asset bundling changed no generated module";
  return null;
}

function isAssetSource(file: string): boolean {
  return /^kernels\/[^/]+\.wgsl$/.test(file) || /^eval\/templates\/[^/]+$/.test(file);
}

function fmtDuration(s: number): string {
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}

/** Runs one mutant in a fresh copy of `root`. */
async function runMutant(
  root: string,
  m: Mutant,
  opts: { timeoutS: number; keep: boolean },
): Promise<MutantResult> {
  const t0 = performance.now();
  const base = { id: m.id, file: m.file, why: m.why, tests: m.tests };
  const seconds = () => Math.round((performance.now() - t0) / 100) / 10;
  const dir = await Deno.makeTempDir({ prefix: `mutant-${m.id}-` });
  currentDir = opts.keep ? null : dir;
  try {
    await copyTree(root, dir);
    const path = `${dir}/${m.file}`;
    const text = await readOrNull(path);
    const problem = applyProblem(text, m);
    if (problem) return { ...base, status: "invalid", seconds: seconds(), reason: problem };
    await Deno.writeTextFile(path, text!.replace(m.find, () => m.replace));
    if (isAssetSource(m.file)) {
      const err = await regenerateAssets(dir, opts.timeoutS);
      if (err) return { ...base, status: "error", seconds: seconds(), reason: err };
    }
    const present: string[] = [], missing: string[] = [];
    for (const t of m.tests) (await exists(`${dir}/${t}`) ? present : missing).push(t);
    if (!present.length) {
      return {
        ...base,
        status: "error",
        seconds: seconds(),
        reason: `test file(s) not found: ${missing.join(", ")}`,
      };
    }
    const left = Math.max(1, opts.timeoutS - (performance.now() - t0) / 1000);
    const r = await runCommand(["test", "-A", "--no-check", ...present], dir, left);
    const c = classify(r.output, r.code, r.timedOut);
    const result: MutantResult = {
      ...base,
      status: c.status,
      seconds: seconds(),
      excerpt: c.excerpt,
    };
    if (c.reason) result.reason = c.reason;
    if (missing.length) {
      const note = `test file(s) not found: ${missing.join(", ")}`;
      // A kill by the files that exist still counts; a pass proves nothing about the missing ones.
      if (c.status === "missed") {
        result.status = "error";
        result.reason = `${note}; the others passed`;
      } else result.reason = result.reason ? `${result.reason}; ${note}` : note;
    }
    if (r.timedOut) result.reason = `timeout after ${opts.timeoutS} s`;
    return result;
  } finally {
    currentDir = null;
    if (opts.keep) console.log(`    kept ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

function printResult(r: MutantResult): void {
  const pad = r.status.padEnd(7);
  console.log(`${pad}  ${r.id}  (${r.seconds.toFixed(1)} s)  ${r.why}`);
  if (r.status === "caught") return;
  if (r.reason) console.log(`         ${r.reason}`);
  for (const l of (r.excerpt ?? []).slice(0, 12)) console.log(`         | ${l.slice(0, 300)}`);
}

/** Command-line entry point; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        only: { type: "string" },
        list: { type: "boolean", default: false },
        timeout: { type: "string", default: "600" },
        report: { type: "string" },
        keep: { type: "boolean", default: false },
        baseline: { type: "boolean", default: false },
        data: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) {
    console.error(`--timeout must be a positive number of seconds, got ${values.timeout}`);
    return 2;
  }
  const root = decodeURIComponent(ROOT.pathname).replace(/\/$/, "");
  // Paths given on the command line are relative to the current folder; defaults to the root.
  const resolve = (p: string | undefined, dflt: string) =>
    p === undefined ? `${root}/${dflt}` : p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  const dataPath = resolve(values.data, "tests/mutants.json");
  const reportPath = resolve(values.report, "out/mutants.json");
  let mutants: Mutant[];
  try {
    mutants = parseMutants(await Deno.readTextFile(dataPath), dataPath);
  } catch (e) {
    console.error(`bad mutant list: ${(e as Error).message}`);
    return 2;
  }
  if (values.only !== undefined) {
    const ids = values.only.split(",").map((s) => s.trim()).filter((s) => s);
    const known = new Set(mutants.map((m) => m.id));
    const unknown = ids.filter((id) => !known.has(id));
    if (unknown.length || !ids.length) {
      console.error(`--only: unknown mutant id(s): ${unknown.join(", ") || "(none given)"}`);
      return 2;
    }
    const want = new Set(ids);
    mutants = mutants.filter((m) => want.has(m.id));
  }

  if (values.list) {
    let bad = 0;
    for (const m of mutants) {
      const problem = applyProblem(await readOrNull(`${root}/${m.file}`), m);
      const missing: string[] = [];
      for (const t of m.tests) if (!(await exists(`${root}/${t}`))) missing.push(t);
      if (problem) bad++;
      const note = missing.length ? `  (test file(s) not present yet: ${missing.join(", ")})` : "";
      console.log(`${problem ? "invalid" : "ok     "}  ${m.id}  ${m.file}${note}`);
      if (problem) console.log(`         ${problem}: ${JSON.stringify(m.find)}`);
    }
    console.log(
      `${mutants.length} mutants, ${mutants.length - bad} apply exactly once, ${bad} invalid`,
    );
    return bad ? 1 : 0;
  }

  const onSigint = () => {
    if (current) killGroup(current.pid);
    if (currentDir) {
      try {
        Deno.removeSync(currentDir, { recursive: true });
      } catch { /* best effort */ }
    }
    console.error("\ninterrupted");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSigint);

  const started = new Date();
  const t0 = performance.now();
  if (values.baseline) {
    const tests = [...new Set(mutants.flatMap((m) => m.tests))];
    const present: string[] = [];
    for (const t of tests) if (await exists(`${root}/${t}`)) present.push(t);
    console.log(`baseline: ${present.length} test files on the unmutated tree ...`);
    const dir = await Deno.makeTempDir({ prefix: "mutant-baseline-" });
    try {
      await copyTree(root, dir);
      const r = await runCommand(["test", "-A", "--no-check", ...present], dir, timeoutS);
      const c = classify(r.output, r.code, r.timedOut);
      if (c.status !== "missed") {
        console.log(`baseline FAILED (${c.reason ?? c.status}): fix the tests before mutating`);
        for (const l of c.excerpt.slice(0, 20)) console.log(`  | ${l}`);
        return 1;
      }
      console.log(`baseline ok (${fmtDuration((performance.now() - t0) / 1000)})`);
    } finally {
      if (!values.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  const results: MutantResult[] = [];
  const mt0 = performance.now();
  for (const [i, m] of mutants.entries()) {
    const elapsed = (performance.now() - t0) / 1000;
    const done = (performance.now() - mt0) / 1000;
    const eta = i ? ` ETA ${fmtDuration((done / i) * (mutants.length - i))}` : "";
    console.log(`[${i + 1}/${mutants.length}] ${m.id}  (elapsed ${fmtDuration(elapsed)}${eta})`);
    const r = await runMutant(root, m, { timeoutS, keep: values.keep });
    results.push(r);
    printResult(r);
  }
  Deno.removeSignalListener("SIGINT", onSigint);

  const count = (s: Status) => results.filter((r) => r.status === s).length;
  const counts = {
    caught: count("caught"),
    missed: count("missed"),
    error: count("error"),
    invalid: count("invalid"),
  };
  const total = results.length;
  const killRate = total ? counts.caught / total : 0;
  const wall = (performance.now() - t0) / 1000;
  console.log(
    `\nkill rate ${(100 * killRate).toFixed(1)}% (${counts.caught}/${total}): ` +
      `${counts.caught} caught, ${counts.missed} missed, ${counts.error} error, ` +
      `${counts.invalid} invalid, in ${fmtDuration(wall)}`,
  );
  const report = {
    started: started.toISOString(),
    wallSeconds: Math.round(wall * 10) / 10,
    timeoutSeconds: timeoutS,
    total,
    counts,
    killRate,
    results,
  };
  await writeAtomic(reportPath, JSON.stringify(report, null, 2) + "\n");
  console.log(`report: ${reportPath}`);
  return counts.caught === total ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
