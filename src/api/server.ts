import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { NodeStatus } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import type { Logger } from '../util/log.js'

export interface ApiSources {
  status: () => NodeStatus
  rounds: () => readonly LedgerEntry[]
}

/**
 * The daemon's local HTTP API (read-only): GET /status, /rounds, /peers as JSON.
 * Bound to loopback by default; `coldfusiond status` and `mesh` read it.
 */
export class ApiServer {
  private server?: Server

  constructor(private readonly src: ApiSources, private readonly log: Logger) {}

  async listen(host: string, port: number): Promise<string> {
    this.server = createServer((req, res) => this.route(req, res))
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

  private route(req: IncomingMessage, res: ServerResponse): void {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (req.method !== 'GET') return send(res, 405, { error: 'only GET is supported' })
      switch (url.pathname) {
        case '/status':
          return send(res, 200, this.src.status())
        case '/rounds':
          return send(res, 200, this.src.rounds())
        case '/peers': {
          const s = this.src.status()
          return send(res, 200, { connected: s.peers, members: s.members })
        }
        default:
          return send(res, 404, { error: `no such endpoint: ${url.pathname} (try /status, /rounds, /peers)` })
      }
    } catch (err) {
      this.log.error({ err }, 'API request failed')
      send(res, 500, { error: 'internal error' })
    }
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(text)
}
