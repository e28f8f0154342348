import type { Logger } from '../util/log.js'

/**
 * The node's recent warnings and errors, for the dashboard: a bounded ring filled by a logger
 * wrapper, so every component that logs a warning shows up without knowing about the dashboard
 * (and independently of the log level, which may silence the log itself).
 */

export interface Warning {
  at: string
  level: 'warn' | 'error' | 'fatal'
  msg: string
  /** Structured fields of the log line as `key=value` pairs (round, peer, reason, ...). */
  detail: string
}

const CAPTURED = new Set(['warn', 'error', 'fatal'])
const NOISE = new Set(['pid', 'hostname', 'name', 'level', 'time', 'msg'])

export class WarningLog {
  private readonly items: Warning[] = []

  constructor(private readonly capacity = 100) {}

  /** Newest last. */
  list(): readonly Warning[] {
    return this.items
  }

  add(w: Warning): void {
    this.items.push(w)
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity)
  }

  /** A logger that behaves exactly like `log` and also records its warnings here (children too). */
  capture(log: Logger): Logger {
    return new Proxy(log, {
      get: (target, prop) => {
        if (typeof prop === 'string' && CAPTURED.has(prop)) {
          const fn = Reflect.get(target, prop, target) as (...args: unknown[]) => void
          return (...args: unknown[]) => {
            this.record(prop as Warning['level'], target.bindings(), args)
            return fn.apply(target, args)
          }
        }
        if (prop === 'child') {
          return (...args: Parameters<Logger['child']>) => this.capture(target.child(...args) as unknown as Logger)
        }
        const v = Reflect.get(target, prop, target) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    })
  }

  private record(level: Warning['level'], bindings: Record<string, unknown>, args: unknown[]): void {
    let obj: Record<string, unknown> = {}
    let msg = ''
    if (typeof args[0] === 'string') msg = args[0]
    else {
      if (args[0] instanceof Error) obj = { err: args[0] }
      else if (args[0] && typeof args[0] === 'object') obj = args[0] as Record<string, unknown>
      msg = typeof args[1] === 'string' ? args[1] : obj.err instanceof Error ? obj.err.message : ''
    }
    const fields = { ...bindings, ...obj }
    const detail = Object.entries(fields)
      .filter(([k, v]) => !NOISE.has(k) && v !== undefined)
      .map(([k, v]) => `${k}=${format(v)}`)
      .join(' ')
    this.add({ at: new Date().toISOString(), level, msg, detail: detail.length > 400 ? detail.slice(0, 399) + '…' : detail })
  }
}

function format(v: unknown): string {
  if (v instanceof Error) return v.message
  if (typeof v === 'string') return v
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}
