/**
 * `defineFlags`: one spec gives typed, checked values with defaults, the raw record older code
 * reads, usage errors naming the flag, and the --help text.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { defineFlags, flagValues, HelpRequested, parseFlags, UsageError } from "../cli/flags.ts";

const spec = defineFlags({
  command: "demo",
  summary: "an example",
  positionals: "A B",
  flags: {
    out: { type: "string", required: true, arg: "DIR", description: "output folder" },
    model: { type: "string", required: true, description: "model" },
    runs: { type: "integer", min: 1, default: 5, description: "timed runs" },
    scale: { type: "number", min: 0, max: 1, description: "a fraction" },
    pooling: {
      type: "choice",
      choices: ["cls", "mean"],
      defaultText: "the model's",
      description: "pooling",
    },
    langs: { type: "list", default: ["en", "de"], description: "languages" },
    quick: { type: "boolean", description: "quick" },
    limit: {
      type: "integer",
      min: 2,
      description: "a limit",
      message: "demo: --limit must be an integer ≥ 2, got {value}",
    },
  },
});
const base = ["--out", "o", "--model", "m"];

Deno.test("parse: typed values, defaults applied, absent optional flags undefined", () => {
  const f = spec.parse([...base, "--scale", "0.25", "--pooling", "mean"]);
  deepEqual(f, {
    out: "o",
    model: "m",
    runs: 5,
    scale: 0.25,
    pooling: "mean",
    langs: ["en", "de"],
    quick: false,
    limit: undefined,
  });
  equal(spec.parse([...base, "--quick", "--runs", "7", "--langs", "fr"]).runs, 7);
  deepEqual(spec.parse([...base, "--langs", "fr, it"]).langs, ["fr", "it"]);
});

Deno.test("parseRaw: the record as given, with defaults filled in as text", () => {
  const raw = spec.parseRaw([...base, "--scale", "0.5"]);
  deepEqual(raw, { out: "o", model: "m", scale: "0.5", runs: "5", langs: "en,de" });
  deepEqual(spec.parsePositionals([...base, "x", "y"]).positionals, ["x", "y"]);
  const all = spec.parseAll([...base]);
  equal(all.values.runs, 5);
  equal(all.raw.runs, "5");
});

Deno.test("usage errors name the flag, with the helpers' texts", () => {
  const err = (args: string[], re: RegExp) =>
    throws(() => spec.parse(args), (e) => {
      ok(e instanceof UsageError, String(e));
      ok(re.test((e as Error).message), (e as Error).message);
      return true;
    });
  err(["--out", "o"], /^demo: --model is required$/);
  err([], /^demo: --out and --model are required$/);
  err([...base, "--bogus"], /^demo: Unknown option '--bogus'/);
  err([...base, "--runs"], /--runs/);
  err([...base, "--runs", "x"], /^--runs: expected a number, got "x"$/);
  err([...base, "--runs", "1.5"], /^--runs: expected an integer, got "1.5"$/);
  err([...base, "--runs", "0"], /^--runs: must be ≥ 1$/);
  err([...base, "--scale", "2"], /^--scale: must be ≤ 1$/);
  err([...base, "--pooling", "max"], /^--pooling: expected one of cls\|mean, got "max"$/);
  err([...base, "--langs", ","], /^--langs: empty list$/);
  err([...base, "--limit", "1"], /^demo: --limit must be an integer ≥ 2, got 1$/);
  err([...base, "stray"], /stray/);
});

Deno.test("--help and -h: every flag with its default, required marks, exit through HelpRequested", () => {
  for (const h of ["--help", "-h"]) {
    throws(() => spec.parse(["--bogus", h]), (e) => {
      ok(e instanceof HelpRequested);
      const text = (e as HelpRequested).text;
      ok(text.startsWith("usage: deno run -A cli.ts demo A B [flags]\n\nan example\n"), text);
      ok(/--out DIR +output folder \(required\)/.test(text), text);
      ok(/--runs N +timed runs \(default: 5\)/.test(text), text);
      ok(/--pooling cls\|mean +pooling \(default: the model's\)/.test(text), text);
      ok(/--langs A,B,… +languages \(default: en,de\)/.test(text), text);
      ok(/--quick +quick$/m.test(text), text);
      ok(/-h, --help +print this help and exit/.test(text), text);
      return true;
    });
  }
  // After "--" it is a positional, not a request for help.
  deepEqual(spec.parsePositionals([...base, "--", "-h"]).positionals, ["-h"]);
});

Deno.test("a spec's records work with parseFlags and flagValues (commands migrate one by one)", () => {
  const raw = parseFlags("demo", [...base, "--runs", "3", "--quick"], spec.flags);
  deepEqual(raw, { out: "o", model: "m", runs: "3", quick: true });
  const v = flagValues(spec.flags, raw);
  equal(v.runs, 3);
  equal(v.quick, true);
  equal(v.scale, undefined);
  throws(
    () => flagValues(spec.flags, { limit: "x" }),
    /demo: --limit must be an integer ≥ 2, got x/,
  );
});
