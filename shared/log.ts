import { pino, type Logger } from 'pino';

/**
 * JSON lines to stderr (journald keeps them as they are); pretty when a person is at a
 * terminal. stdout stays free for the command's own output (graphs, tables).
 */
export function createLogger(opts: { level?: string; pretty?: boolean } = {}): Logger {
  const level = opts.level ?? process.env.DISTAPPGUARD_LOG_LEVEL ?? 'info';
  const pretty = opts.pretty ?? (process.stderr.isTTY === true && process.env.NO_PRETTY !== '1');
  if (pretty) {
    return pino({
      level,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: false }));
}

export type { Logger };
