import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { NodeStatus } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import type { Logger } from '../util/log.js'
import type { NodeTelemetry } from './telemetry.js'
import { bearerMatches, isLoopbackHost } from './token.js'
import { peersView } from './views.js'
import { dashboardPage, dashboardScript } from './dashboard/assets.js'

export interface ApiSources {
  status: () => NodeStatus
  rounds: () => readonly LedgerEntry[]
  /** Metrics, round history and warnings; without it /metrics, /history and /warnings answer 404. */
  telemetry?: NodeTelemetry
}

export interface ApiOptions {
  /** Clients must send `Authorization: Bearer <token>` for data (required off loopback). */
  token?: string
}

const ENDPOINTS = '/status, /rounds, /peers, /history, /warnings, /metrics, /healthz; the dashboard is at /'

/**
 * The daemon's local HTTP API (read-only): JSON at /status, /rounds, /peers, /history, /warnings,
 * Prometheus text at /metrics, a liveness probe at /healthz and the dashboard at /. Bound to
 * loopback by default; bound elsewhere, data needs the bearer token (the dashboard page itself and
 * /healthz hold no data and stay open, so a browser can load the page and then ask for the token).
 */
export class ApiServer {
  private server?: Server
  private loopback = true

  constructor(private readonly src: ApiSources, private readonly log: Logger, private readonly opts: ApiOptions = {}) {}

  async listen(host: string, port: number): Promise<string> {
    this.loopback = isLoopbackHost(host)
    if (!this.loopback && !this.opts.token) throw new Error(`refusing to serve the API on ${host} (not loopback) without a bearer token`)
    this.server = createServer((req, res) => void this.route(req, res))
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(port, host, () => resolve())
    })
    const addr = this.server.address() as AddressInfo
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    return `http://${h}:${addr.port}`
  }

  async close(): Promise<void> {
    if (!this.server) return
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server!.close(() => resolve()))
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'only GET is supported' }, { allow: 'GET, HEAD' })
      // A page on another site must not read a loopback API through a rebound DNS name.
      if (this.loopback && !isLoopbackHost(hostOf(req.headers.host))) {
        return send(res, 403, { error: `the API is bound to loopback; address it as 127.0.0.1 or localhost, not ${req.headers.host}` })
      }
      switch (url.pathname) {
        case '/':
        case '/index.html':
          return sendText(res, 200, dashboardPage(), 'text/html; charset=utf-8', {
            'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          })
        case '/dashboard.js':
          return sendText(res, 200, await dashboardScript(), 'text/javascript; charset=utf-8')
        case '/healthz': {
          const s = this.src.status()
          return send(res, 200, { status: 'ok', phase: s.phase, round: s.round })
        }
      }
      if (this.opts.token && !bearerMatches(req.headers.authorization, this.opts.token)) {
        return send(res, 401, { error: 'this API needs `Authorization: Bearer <token>` (api.token in config.yaml, or the api-token file in the node home)' }, { 'www-authenticate': 'Bearer realm="coldfusiond"' })
      }
      const t = this.src.telemetry
      switch (url.pathname) {
        case '/status':
          return send(res, 200, this.src.status())
        case '/rounds': {
          const last = intParam(url, 'last')
          const all = this.src.rounds()
          return send(res, 200, last === undefined ? all : all.slice(Math.max(0, all.length - last)))
        }
        case '/peers':
          return send(res, 200, peersView(this.src.status(), t?.history))
        case '/history':
          if (!t) break
          return send(res, 200, { self: this.src.status().peerId, rounds: t.history.view(this.src.rounds(), Math.min(intParam(url, 'limit') ?? 30, 500)) })
        case '/warnings':
          if (!t) break
          return send(res, 200, t.warnings.list())
        case '/metrics': {
          if (!t) break
          const m = await t.metrics.expose()
          return sendText(res, 200, m.body, m.contentType)
        }
      }
      return send(res, 404, { error: `no such endpoint: ${url.pathname} (try ${ENDPOINTS})` })
    } catch (err) {
      this.log.error({ err }, 'API request failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
      else res.destroy()
    }
  }
}

function hostOf(header: string | undefined): string {
  if (!header) return 'localhost'
  const m = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(header)
  return m ? m[1] : header
}

function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name)
  if (v === null) return undefined
  const n = Number(v)
  return Number.isInteger(n) && n >= 0 ? n : undefined
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, code, JSON.stringify(body), 'application/json', headers)
}

function sendText(res: ServerResponse, code: number, text: string, type: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}
