/**
 * The CLI's flag specs are its documentation: every command (and bench subcommand) answers
 * `--help` with status 0 listing every flag of its spec with its default, refuses an unknown flag
 * with status 2 naming it, and the README's command reference is the one the specs generate.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { flagDefaultText } from "../cli/flags.ts";
import { allSpecs, README, renderFlagDocs } from "../scripts/flag_docs.ts";
import { COMMANDS } from "../cli/commands.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const specs = await allSpecs();

Deno.test("every command has a spec, and bench one per subcommand", () => {
  const names = specs.map((s) => s.command);
  for (const c of Object.keys(COMMANDS).filter((c) => c !== "bench")) ok(names.includes(c), c);
  for (const b of ["matmul", "step", "peers", "soak"]) ok(names.includes(`bench ${b}`), b);
  for (const s of specs) {
    ok(s.summary.length > 0 && !s.summary.includes("\n"), `${s.command}: one-line summary`);
    for (const [name, d] of Object.entries(s.flags)) {
      ok(d.description && !d.description.includes("\n"), `${s.command} --${name}: description`);
      if (d.type === "choice") ok(d.choices?.length, `${s.command} --${name}: choices`);
    }
  }
});

Deno.test("README.md's command reference is generated from the specs (deno task docs:flags)", async () => {
  const readme = await Deno.readTextFile(README);
  const want = await renderFlagDocs();
  const a = readme.indexOf("<!-- flags:begin -->");
  const b = readme.indexOf("<!-- flags:end -->") + "<!-- flags:end -->".length;
  ok(a >= 0 && b > a, "README.md has the flags:begin/end markers");
  ok(
    readme.slice(a, b) === want,
    "README.md's command reference is stale: run deno task docs:flags",
  );
});

Deno.test("cli.ts --help lists every command and bench --help every benchmark; none, or a wrong one, exits 2", async () => {
  const r = await cli("--help");
  equal(r.code, 0, r.stderr);
  for (const c of Object.keys(COMMANDS)) ok(r.stdout.includes(`\n  ${c} `), `${c} listed`);
  equal((await cli()).code, 2);
  const b = await cli("bench", "--help");
  equal(b.code, 0, b.stderr);
  for (const s of specs.filter((s) => s.command.startsWith("bench "))) {
    ok(b.stdout.includes(s.command), `${s.command} listed by bench --help`);
  }
  equal((await cli("bench")).code, 2);
  equal((await cli("bench", "nonsense")).code, 2);
});

for (const spec of specs) {
  const words = spec.command.split(" ");
  Deno.test(`${spec.command} --help and -h list every flag with its default, exit 0`, async () => {
    const r = await cli(...words, "--help");
    equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    for (const [name, d] of Object.entries(spec.flags)) {
      const i = lines.findIndex((l) => new RegExp(`^  --${name}(\\s|$)`).test(l));
      ok(i >= 0, `${spec.command} --help lists --${name}:\n${r.stdout}`);
      // The description and the default follow on the same line or, for long flags, the next.
      const text = lines[i] + (lines[i + 1]?.startsWith("  --") ? "" : ` ${lines[i + 1] ?? ""}`);
      ok(text.includes(d.description), `--${name}: description`);
      const def = flagDefaultText(d);
      if (def) ok(text.includes(`default: ${def}`), `--${name}: default ${def} in "${text}"`);
      if (d.required) ok(text.includes("required"), `--${name}: required`);
    }
    const h = await cli(...words, "-h");
    equal(h.code, 0, h.stderr);
    deepEqual(h.stdout, r.stdout);
  });
  Deno.test(`${spec.command}: an unknown flag exits 2 naming it`, async () => {
    const r = await cli(...words, "--no-such-flag", "1");
    equal(r.code, 2, `${spec.command}: exit ${r.code}\n${r.stderr}`);
    ok(r.stderr.includes("--no-such-flag"), r.stderr);
    ok(!r.stderr.includes("    at "), `one line, no stack trace:\n${r.stderr}`);
  });
}
