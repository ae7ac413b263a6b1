/**
 * Command-line entry point: `deno run -A cli.ts <command> [flags]`. Each command lives in
 * `cli/<command>.ts` (listed in `cli/commands.ts`); this file only dispatches and turns errors into
 * one clear line: usage errors exit 2, `--help` prints the command's flags and exits 0.
 * @module
 */
import { HelpRequested, UsageError } from "./cli/flags.ts";
import { COMMANDS } from "./cli/commands.ts";

async function usage(): Promise<string> {
  const lines: string[] = [];
  for (const [name, load] of Object.entries(COMMANDS)) {
    lines.push(`  ${name.padEnd(9)} ${(await load()).summary}`);
  }
  return `usage: deno run -A cli.ts <command> [flags]\n\ncommands:\n${lines.join("\n")}\n\n` +
    "deno run -A cli.ts <command> --help lists a command's flags with their defaults.";
}

if (import.meta.main) {
  Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const [name, ...args] = Deno.args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    // `help <command> [subcommand]` is `<command> [subcommand] --help`.
    if (name !== "help" || !args[0] || !Object.hasOwn(COMMANDS, args[0])) {
      console.log(await usage());
      Deno.exit(name ? 0 : 2);
    }
  }
  const [command, ...rest] = name === "help" ? [...args, "--help"] : [name, ...args];
  if (!Object.hasOwn(COMMANDS, command)) {
    console.error(`unknown command "${command}"\n\n${await usage()}`);
    Deno.exit(2);
  }
  try {
    await (await COMMANDS[command]()).run(rest);
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(e.text);
      Deno.exit(0);
    }
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    console.error(`error: ${(e as Error).message}`);
    if (Deno.env.get("DEBUG")) console.error(e);
    Deno.exit(1);
  }
}
