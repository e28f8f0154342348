import pino, { type Logger } from 'pino'

export type { Logger }

/**
 * Structured logs (JSON lines). Daemons log to stderr so stdout stays free for command output;
 * COLDFUSIOND_LOG_LEVEL or --log-level set the level.
 */
export function createLogger(opts: { level?: string; name?: string; destination?: number | string } = {}): Logger {
  const level = opts.level ?? process.env.COLDFUSIOND_LOG_LEVEL ?? 'info'
  const dest = pino.destination({ dest: opts.destination ?? 2, sync: true })
  return pino({ level, name: opts.name ?? 'coldfusiond', base: { pid: process.pid } }, dest)
}

/** A logger that drops everything: for library callers and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
