/**
 * Flag parsing shared by the commands: `node:util` parseArgs in strict mode, with numbers and
 * enumerations checked so that a bad value fails naming the flag.
 * @module
 */
import { parseArgs } from "node:util";

/** A flag error: the CLI prints its message without a stack trace and exits with status 2. */
export class UsageError extends Error {}

/** Flag spec: name → "string" | "boolean" (and whether it may repeat). */
export type FlagSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

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
    const { values } = parseArgs({ args, options: spec, strict: true, allowPositionals: false });
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
