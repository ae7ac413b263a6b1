/**
 * Progress for long phases (embedding): on a terminal one live line with rate and ETA, otherwise
 * sparse plain lines (every 25% and at most one per 30 s), nothing with `--quiet`.
 * @module
 */

/** A progress reporter for one phase of `total` units. */
export interface Progress {
  update(done: number): void;
  done(): void;
}

/** Options of {@linkcode progress}. */
export interface ProgressOptions {
  /** Units shown after the counts ("texts"). */
  unit?: string;
  quiet?: boolean;
  /** Force the terminal or the plain form (default: whether stderr is a terminal). */
  tty?: boolean;
  /** Where lines go (default stderr). */
  write?: (s: string) => void;
  now?: () => number;
}

function isTty(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** Seconds as `42 s`, `3 min 05 s`, `1 h 02 min`. */
export function formatDuration(secs: number): string {
  if (!Number.isFinite(secs) || secs < 0) return "?";
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) {
    const m = Math.floor(secs / 60);
    return `${m} min ${String(Math.round(secs - 60 * m)).padStart(2, "0")} s`;
  }
  const h = Math.floor(secs / 3600);
  return `${h} h ${String(Math.round((secs - 3600 * h) / 60)).padStart(2, "0")} min`;
}

/**
 * A reporter for `label` over `total` units.
 *
 * @example
 * ```ts
 * import { progress } from "./progress.ts";
 * const lines: string[] = [];
 * let t = 0;
 * const p = progress("embedding en", 100, { tty: false, write: (s) => lines.push(s), now: () => t });
 * for (let i = 10; i <= 100; i += 10) { t += 1000; p.update(i); }
 * p.done();
 * console.log(lines.at(-1)); // "embedding en: 100/100 texts (100%) 10.0 texts/s, 10 s"
 * ```
 */
export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet || total <= 0) return { update: () => {}, done: () => {} };
  const tty = opts.tty ?? isTty();
  const enc = new TextEncoder();
  const write = opts.write ?? ((s: string) => {
    if (tty) Deno.stderr.writeSync(enc.encode(s));
    else console.error(s);
  });
  const now = opts.now ?? (() => performance.now());
  const unit = opts.unit ?? "texts";
  const t0 = now();
  let last = -Infinity, lastQuarter = 0, current = 0, finished = false;
  const line = (n: number, end: boolean) => {
    const secs = (now() - t0) / 1000;
    const rate = secs > 0 ? n / secs : 0;
    const pct = Math.floor(100 * n / total);
    const tail = end
      ? `${formatDuration(secs)}`
      : `ETA ${rate > 0 ? formatDuration((total - n) / rate) : "?"}`;
    return `${label}: ${n}/${total} ${unit} (${pct}%) ${rate.toFixed(1)} ${unit}/s, ${tail}`;
  };
  return {
    update(n: number) {
      current = Math.min(n, total);
      const t = now();
      if (tty) {
        if (t - last < 200 && current < total) return;
        last = t;
        write(`\r\x1b[2K${line(current, false)}`);
      } else {
        const quarter = Math.floor(4 * current / total);
        if (current >= total || (quarter <= lastQuarter && t - last < 30_000)) return;
        lastQuarter = Math.max(lastQuarter, quarter);
        last = t;
        write(line(current, false));
      }
    },
    done() {
      if (finished) return;
      finished = true;
      write(tty ? `\r\x1b[2K${line(current || total, true)}\n` : line(current || total, true));
    },
  };
}
