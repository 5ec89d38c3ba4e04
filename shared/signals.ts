import type { Logger } from 'pino';

/**
 * Calls `stop` once, on the first SIGINT or SIGTERM (systemd stops services with SIGTERM,
 * a person with Ctrl-C). Returns a function that removes the handlers.
 */
export function onStopSignal(log: Logger, message: string, stop: (signal: string) => void): () => void {
  const h = (sig: string): void => {
    dispose();
    log.info({ signal: sig }, message);
    stop(sig);
  };
  const dispose = (): void => {
    process.off('SIGINT', h);
    process.off('SIGTERM', h);
  };
  process.on('SIGINT', h);
  process.on('SIGTERM', h);
  return dispose;
}
