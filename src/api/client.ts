import { readFile } from 'node:fs/promises'
import { HomeLayout } from '../store/home.js'
import { loadNodeConfig } from '../config/node.js'
import { readToken } from './token.js'

/** A client of a node's HTTP API (the CLI's `status` and `check`), with its bearer token if any. */
export class ApiClient {
  constructor(readonly url: string, private readonly token?: string) {}

  /** The running node of a home (run/api.json), or undefined if it is not running. */
  static async forHome(home: string): Promise<ApiClient | undefined> {
    const L = new HomeLayout(home)
    let api: { url: string }
    try {
      api = JSON.parse(await readFile(L.apiFile, 'utf8')) as { url: string }
    } catch {
      return undefined
    }
    // The token matters only off loopback; a config or token file we cannot read means none.
    const config = await loadNodeConfig(L.config).catch(() => undefined)
    const token = config ? await readToken(home, config.api).catch(() => undefined) : undefined
    return new ApiClient(api.url.replace('://0.0.0.0:', '://127.0.0.1:').replace('://[::]:', '://[::1]:'), token)
  }

  async get<T>(path: string, timeoutMs = 3000): Promise<T> {
    const res = await fetch(this.url + path, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
    })
    if (!res.ok) {
      const body = await res.text().catch(() => '')
      throw new Error(`${this.url}${path}: HTTP ${res.status}${body ? ` ${body.slice(0, 200)}` : ''}`)
    }
    return (await res.json()) as T
  }
}
