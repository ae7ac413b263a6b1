/**
 * Flag parsing shared by the commands: `node:util` parseArgs in strict mode, with numbers and
 * enumerations checked so that a bad value fails naming the flag.
 * @module
 */
import { parseArgs } from "node:util";

/** A flag error: the CLI prints its message without a stack trace and exits with status 2. */
export class UsageError extends Error {}

/**
 * Flag spec of {@linkcode parseFlags}: name → type (and whether it may repeat). Every type but
 * "boolean" takes a value, returned as given; a {@linkcode FlagDef} record is one too.
 */
export type FlagSpec = Record<
  string,
  { type: "string" | "boolean" | FlagType; multiple?: boolean }
>;

/**
 * Parses `args` strictly against `spec`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const f = parseFlags("demo", ["--out", "x"], { out: { type: "string" } });
 * console.log(f.out); // "x"
 * ```
 */
export function parseFlags(
  command: string,
  args: string[],
  spec: FlagSpec,
): Record<string, string | boolean | undefined> {
  try {
    const options = Object.fromEntries(
      Object.entries(spec).map(([name, { type, multiple }]) => [
        name,
        {
          type: type === "boolean" ? "boolean" as const : "string" as const,
          ...(multiple === undefined ? {} : { multiple }),
        },
      ]),
    );
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}

/** The string value of a required flag. */
export function required(command: string, flags: Record<string, unknown>, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`${command}: --${name} is required`);
  return v;
}

/** A number flag (integer when `integer`), within [min, max]; undefined when absent. */
export function numberFlag(
  flags: Record<string, unknown>,
  name: string,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name}: expected a number, got "${v}"`);
  }
  if (opts.integer && !Number.isInteger(n)) {
    throw new UsageError(`--${name}: expected an integer, got "${v}"`);
  }
  if (opts.min !== undefined && n < opts.min) {
    throw new UsageError(`--${name}: must be ≥ ${opts.min}`);
  }
  if (opts.max !== undefined && n > opts.max) {
    throw new UsageError(`--${name}: must be ≤ ${opts.max}`);
  }
  return n;
}

/** A flag restricted to `choices`; undefined when absent. */
export function choiceFlag<T extends string>(
  flags: Record<string, unknown>,
  name: string,
  choices: readonly T[],
): T | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (!choices.includes(v as T)) {
    throw new UsageError(`--${name}: expected one of ${choices.join("|")}, got "${v}"`);
  }
  return v as T;
}

/** A comma-separated list flag (`--langs ar,de`). */
export function listFlag(flags: Record<string, unknown>, name: string): string[] | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const list = String(v).split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError(`--${name}: empty list`);
  return list;
}

/** What a flag holds: the parser checks numbers, integers, choices and lists by this type. */
export type FlagType = "string" | "boolean" | "number" | "integer" | "choice" | "list";

/**
 * One flag of a command's spec. The spec drives parsing, validation, `--help` and the README's
 * flag tables (`deno task docs:flags`).
 */
export interface FlagDef {
  type: FlagType;
  /** One line for `--help` and the README. */
  description: string;
  /** Refused when absent (or empty). */
  required?: boolean;
  /** Applied when the flag is absent, and shown as the default. */
  default?: string | number | readonly string[];
  /** The default in words, where it depends on other flags or files (shown; not applied). */
  defaultText?: string;
  /** Allowed values of a `choice` flag. */
  choices?: readonly string[];
  /** Bounds of a `number`/`integer` flag. */
  min?: number;
  max?: number;
  /** The value's placeholder in the help (`DIR`, `FILE.json`); by type when omitted. */
  arg?: string;
  /** Error text for an invalid value, replacing the generic one (`{value}` is the value given). */
  message?: string;
}

/** A command's flags, its name as typed (`"bench matmul"`) and what it does, in one line. */
export interface CommandSpec<F extends Record<string, FlagDef>> {
  command: string;
  summary: string;
  /** Positional arguments, as the usage line shows them (`RUN_A RUN_B`); none when omitted. */
  positionals?: string;
  flags: F;
}

type FlagValue<D extends FlagDef> = D["type"] extends "boolean" ? boolean
  : D["type"] extends "number" | "integer" ? number
  : D["type"] extends "list" ? string[]
  : D extends { choices: readonly (infer C extends string)[] } ? C
  : string;

/** The parsed values of a spec's flags (absent optional flags without a default: undefined). */
export type FlagValues<F extends Record<string, FlagDef>> = {
  -readonly [K in keyof F]: F[K] extends { required: true } | { default: unknown } | {
    type: "boolean";
  } ? FlagValue<F[K]>
    : FlagValue<F[K]> | undefined;
};

/** Thrown by a parser on `--help`/`-h`: the CLI prints {@linkcode HelpRequested.text} and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly text: string) {
    super(text);
  }
}

/** The parser {@linkcode defineFlags} returns. */
export interface FlagParser<F extends Record<string, FlagDef>> extends CommandSpec<F> {
  /** Checked values, with defaults applied; throws UsageError (exit 2) or HelpRequested. */
  parse(args: string[]): FlagValues<F>;
  /** Both forms at once: the typed values and the raw record (as {@linkcode FlagParser.parseRaw}). */
  parseAll(args: string[]): {
    values: FlagValues<F>;
    raw: Record<string, string | boolean | undefined>;
    positionals: string[];
  };
  /** As {@linkcode FlagParser.parse}, for a spec with `positionals`. */
  parsePositionals(args: string[]): { values: FlagValues<F>; positionals: string[] };
  /**
   * The flags as given (strings and booleans, as {@linkcode parseFlags} returns them), after the
   * same checks, with defaults filled in as text: for commands that still read the raw record.
   */
  parseRaw(args: string[]): Record<string, string | boolean | undefined>;
  /** The `--help` text. */
  help(): string;
}

/** The placeholder of a flag's value in the help (`N`, `cls|mean`, `DIR`). */
export function flagArg(d: FlagDef): string {
  if (d.arg) return d.arg;
  switch (d.type) {
    case "boolean":
      return "";
    case "integer":
      return "N";
    case "number":
      return "X";
    case "choice":
      return (d.choices ?? []).join("|");
    case "list":
      return "A,B,…";
    default:
      return "VALUE";
  }
}

/** A flag's default as text ("" when it has none). */
export function flagDefaultText(d: FlagDef): string {
  if (d.defaultText !== undefined) return d.defaultText;
  if (d.default === undefined) return "";
  if (Array.isArray(d.default)) return d.default.join(",");
  return d.default === "" ? '""' : String(d.default);
}

/** `--name ARG` as the help and the README show it. */
export function flagUsage(name: string, d: FlagDef): string {
  const arg = flagArg(d);
  return arg ? `--${name} ${arg}` : `--${name}`;
}

function wantsHelp(args: string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

/**
 * A command's flag spec, as a parser: strict parsing (unknown flags, missing values and stray
 * positionals are usage errors naming the flag), values checked by type, defaults applied, and
 * `--help` generated from the same spec.
 *
 * @example
 * ```ts
 * import { defineFlags } from "./flags.ts";
 * const spec = defineFlags({
 *   command: "demo",
 *   summary: "an example",
 *   flags: {
 *     out: { type: "string", description: "output folder", required: true, arg: "DIR" },
 *     runs: { type: "integer", description: "timed runs", min: 1, default: 5 },
 *     pooling: { type: "choice", choices: ["cls", "mean"], description: "pooling" },
 *   },
 * });
 * const f = spec.parse(["--out", "x", "--pooling", "mean"]);
 * console.log(f.out, f.runs, f.pooling); // "x" 5 "mean"
 * ```
 */
export function defineFlags<const F extends Record<string, FlagDef>>(
  spec: CommandSpec<F>,
): FlagParser<F> {
  const { command, flags } = spec;
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const [name, d] of Object.entries(flags)) {
    options[name] = { type: d.type === "boolean" ? "boolean" : "string" };
  }
  const check = (args: string[], allowPositionals: boolean) => {
    if (wantsHelp(args)) throw new HelpRequested(parser.help());
    let parsed;
    try {
      parsed = parseArgs({ args, options, strict: true, allowPositionals });
    } catch (e) {
      throw new UsageError(
        `${command}: ${
          (e as Error).message
        }\n(deno run -A cli.ts ${command} --help lists its flags)`,
      );
    }
    const raw = parsed.values as Record<string, string | boolean | undefined>;
    const missing = Object.entries(flags).filter(([n, d]) =>
      d.required && (raw[n] === undefined || raw[n] === "")
    ).map(([n]) => `--${n}`);
    if (missing.length === 1) throw new UsageError(`${command}: ${missing[0]} is required`);
    if (missing.length > 1) {
      throw new UsageError(
        `${command}: ${missing.slice(0, -1).join(", ")} and ${missing.at(-1)} are required`,
      );
    }
    for (const [name, d] of Object.entries(flags)) {
      if (raw[name] === undefined && d.default !== undefined) {
        raw[name] = Array.isArray(d.default) ? d.default.join(",") : String(d.default);
      }
    }
    return { raw, values: flagValues(flags, raw), positionals: parsed.positionals };
  };
  const parser: FlagParser<F> = {
    ...spec,
    parse: (args) => check(args, false).values,
    parsePositionals: (args) => {
      const { values, positionals } = check(args, spec.positionals !== undefined);
      return { values, positionals };
    },
    parseRaw: (args) => check(args, spec.positionals !== undefined).raw,
    parseAll: (args) => check(args, spec.positionals !== undefined),
    help: () => formatHelp(spec),
  };
  return parser;
}

/**
 * The typed values of a raw record (as {@linkcode parseFlags} returns it) under a spec's flags,
 * checked as {@linkcode defineFlags}'s parser checks them (no required check; defaults are not
 * filled in): for code that receives the raw record, as `trainOptionsFromFlags` does.
 */
export function flagValues<F extends Record<string, FlagDef>>(
  flags: F,
  raw: Record<string, string | boolean | undefined>,
): FlagValues<F> {
  const values: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(flags)) {
    try {
      values[name] = typedValue(raw, name, d);
    } catch (e) {
      if (d.message !== undefined && e instanceof UsageError) {
        throw new UsageError(d.message.replaceAll("{value}", String(raw[name])));
      }
      throw e;
    }
  }
  return values as FlagValues<F>;
}

function typedValue(raw: Record<string, unknown>, name: string, d: FlagDef): unknown {
  const v = raw[name];
  switch (d.type) {
    case "boolean":
      return v === true;
    case "number":
    case "integer":
      return numberFlag(raw, name, { integer: d.type === "integer", min: d.min, max: d.max });
    case "choice":
      return choiceFlag(raw, name, d.choices ?? []);
    case "list":
      return listFlag(raw, name);
    default:
      return v;
  }
}

/** The `--help` text of a command spec: usage, summary, and one line per flag. */
export function formatHelp<F extends Record<string, FlagDef>>(spec: CommandSpec<F>): string {
  const rows = Object.entries(spec.flags).map(([name, d]) => {
    const def = flagDefaultText(d);
    const notes = [d.required ? "required" : "", def ? `default: ${def}` : ""].filter(Boolean);
    return [
      flagUsage(name, d),
      notes.length ? `${d.description} (${notes.join("; ")})` : d.description,
    ];
  });
  rows.push(["-h, --help", "print this help and exit"]);
  const width = Math.min(34, Math.max(...rows.map(([l]) => l.length)));
  const lines = rows.map(([l, r]) =>
    l.length > width ? `  ${l}\n  ${" ".repeat(width)}  ${r}` : `  ${l.padEnd(width)}  ${r}`
  );
  const pos = spec.positionals ? ` ${spec.positionals}` : "";
  return `usage: deno run -A cli.ts ${spec.command}${pos} [flags]\n\n${spec.summary}\n\nflags:\n` +
    lines.join("\n");
}
