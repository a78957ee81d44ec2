// How the relay and the bridge run as processes, written once: a configuration problem is one line and
// exit code 2 (a supervisor should not restart a service whose settings are wrong), any other failure
// prints its stack and exits 1, and SIGTERM/SIGINT close the service once, gracefully, then exit.

import { ConfigError } from './errors.ts';

/** Runs `main`; a ConfigError becomes `configuration error: …` and exit 2, anything else exit 1. */
export function runService(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  });
}

/**
 * On the first SIGTERM or SIGINT: `announce(signal)`, then `close()`, then exit 0 (1 if closing failed).
 * Later signals are ignored while closing, so a second Ctrl-C does not cut a graceful shutdown short.
 */
export function closeOnSignals(close: () => Promise<void>, announce: (signal: string) => void): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    announce(signal);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
