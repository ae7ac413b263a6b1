/**
 * The README's command reference, generated from the flag specs of the commands (`cli/*.ts`,
 * listed in `cli/commands.ts`): rewrites the part of README.md between `<!-- flags:begin -->` and
 * `<!-- flags:end -->`. `deno task docs:flags` writes it; `--check` only says whether it is stale
 * (exit 1). `tests/cli_help_test.ts` fails while it is stale.
 * @module
 */
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../cli/commands.ts";
import { type FlagDef, flagDefaultText, type FlagParser, flagUsage } from "../cli/flags.ts";

/** The README this script maintains. */
export const README = fileURLToPath(new URL("../README.md", import.meta.url));
const BEGIN = "<!-- flags:begin -->";
const END = "<!-- flags:end -->";

const cell = (s: string) => s.replaceAll("|", "\\|");

/** Every command's specs, in `cli.ts --help` order (bench: one per subcommand). */
export async function allSpecs(): Promise<FlagParser<Record<string, FlagDef>>[]> {
  const out: FlagParser<Record<string, FlagDef>>[] = [];
  for (const load of Object.values(COMMANDS)) out.push(...(await load()).specs);
  return out;
}

/** One command's table. */
function section(spec: FlagParser<Record<string, FlagDef>>): string {
  const pos = spec.positionals ? ` ${spec.positionals}` : "";
  const rows = Object.entries(spec.flags).map(([name, d]) => {
    const def = d.required ? "required" : flagDefaultText(d);
    return `| \`${cell(flagUsage(name, d))}\` | ${cell(def)} | ${cell(d.description)} |`;
  });
  const table = rows.length
    ? ["| flag | default | description |", "| --- | --- | --- |", ...rows].join("\n")
    : "No flags.";
  return `### \`${spec.command}${pos}\`\n\n${spec.summary}.\n\n${table}\n`;
}

/** Markdown as `deno fmt` writes it (the README is kept formatted). */
async function fmt(md: string): Promise<string> {
  const p = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(md));
  await w.close();
  const out = await p.output();
  if (!out.success) throw new Error(`deno fmt: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** The generated section, markers included. */
export async function renderFlagDocs(): Promise<string> {
  const specs = await allSpecs();
  const body = specs.map(section).join("\n");
  const note = "<!-- generated from the flag specs in cli/ by `deno task docs:flags`; " +
    "do not edit by hand -->";
  return `${BEGIN}\n${note}\n\n${(await fmt(body)).trim()}\n\n${END}`;
}

/** `readme` with its section between the markers replaced by `section`. */
export function replaceSection(readme: string, section: string): string {
  const a = readme.indexOf(BEGIN), b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md: no ${BEGIN} … ${END} section`);
  return readme.slice(0, a) + section + readme.slice(b + END.length);
}

if (import.meta.main) {
  const readme = await Deno.readTextFile(README);
  const updated = replaceSection(readme, await renderFlagDocs());
  if (Deno.args.includes("--check")) {
    if (updated !== readme) {
      console.error("README.md: the command reference is stale; run deno task docs:flags");
      Deno.exit(1);
    }
    console.log("README.md: the command reference is up to date");
  } else if (updated !== readme) {
    await Deno.writeTextFile(README, updated);
    console.log("README.md: command reference rewritten");
  } else console.log("README.md: command reference already up to date");
}
