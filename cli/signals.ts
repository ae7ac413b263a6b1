/**
 * Graceful stop on SIGINT / SIGTERM for long commands. The first signal aborts
 * {@linkcode GracefulStop.signal} (the work finishes its current unit, saves and exits with
 * 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM); a second signal exits at once.
 * @module
 */

/** The signals a graceful stop listens to. */
export type StopSignalName = "SIGINT" | "SIGTERM";

/** Exit status after a signal, as shells report it (128 + signal number). */
export const SIGNAL_EXIT: Record<StopSignalName, number> = { SIGINT: 130, SIGTERM: 143 };

/** Listens for SIGINT and SIGTERM until {@linkcode GracefulStop.dispose}. */
export class GracefulStop {
  private readonly controller = new AbortController();
  private readonly handlers: [StopSignalName, () => void][] = [];
  /** The first signal received, if any. */
  received: StopSignalName | null = null;

  /**
   * @param what What the first signal does, printed when it arrives (e.g. "finishing step 12").
   * @param onSecond Runs before the immediate exit on a second signal (cleanup of temporaries).
   */
  constructor(
    private readonly what: () => string,
    private readonly onSecond: () => void = () => {},
  ) {
    for (const name of ["SIGINT", "SIGTERM"] as const) {
      const handler = () => this.handle(name);
      try {
        Deno.addSignalListener(name, handler);
        this.handlers.push([name, handler]);
      } catch { /* SIGTERM cannot be listened to on Windows */ }
    }
  }

  /** Aborted on the first signal. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** 130 after SIGINT, 143 after SIGTERM, 0 when no signal came. */
  get exitCode(): number {
    return this.received ? SIGNAL_EXIT[this.received] : 0;
  }

  private handle(name: StopSignalName): void {
    if (this.received) {
      console.error(`\n${name} again: stopping now`);
      this.onSecond();
      Deno.exit(SIGNAL_EXIT[name]);
    }
    this.received = name;
    console.error(`\n${name}: ${this.what()} (send it again to stop at once)`);
    this.controller.abort(new Error(`interrupted by ${name}`));
  }

  /** Stops listening (the default handlers apply again). */
  dispose(): void {
    for (const [name, handler] of this.handlers.splice(0)) {
      Deno.removeSignalListener(name, handler);
    }
  }
}
