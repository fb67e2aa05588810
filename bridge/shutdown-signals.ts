/**
 * Ctrl-C and SIGTERM for the product's command-line programs (bridge, cloud server, proxy,
 * headless stack): the first signal runs the graceful stop once, a second one while it runs
 * exits at once (a stop that hangs on a dead peer must not trap the person at the terminal).
 */
export function onShutdownSignal(stop: (signal: NodeJS.Signals) => Promise<unknown> | void, exitCode: () => number = () => Number(process.exitCode ?? 0)): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        process.stderr.write(`${signal} again: exiting without waiting for the stop to finish\n`);
        process.exit(130);
      }
      stopping = true;
      void Promise.resolve()
        .then(() => stop(signal))
        .catch((e: unknown) => process.stderr.write(`stopping failed: ${e instanceof Error ? e.message : String(e)}\n`))
        .finally(() => process.exit(exitCode()));
    });
  }
}
