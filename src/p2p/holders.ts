import { createHash } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { BusyError, type ContentKind, type ContentProtocol } from './fetch.js'
import { PayloadError } from '../util/errors.js'

/**
 * Which peer to fetch content from. Any peer that holds a content-addressed payload can serve
 * it (the sha256 is checked on arrival), so a node spreads its fetches: connected holders
 * first (a new connection costs a handshake, and in a sparse swarm a neighbour soon holds what
 * a far author announced), then the holder with the fewest of this node's fetches in flight,
 * ties broken by an order that differs per node and per content (a hash of both ids), so that
 * not every node starts at the origin.
 */
export class HolderPicker {
  private readonly load = new Map<string, number>()

  constructor(
    private readonly self: string,
    private readonly isConnected: (peer: string) => boolean = () => true,
  ) {}

  /** Candidates for `id`, best first; excludes this node and `skip`. */
  order(id: string, holders: Iterable<string>, skip: ReadonlySet<string> = new Set()): string[] {
    const rank = new Map<string, string>()
    const far = new Set<string>()
    for (const h of holders) {
      if (h === this.self || skip.has(h)) continue
      rank.set(h, tieBreak(this.self, id, h))
      if (!this.isConnected(h)) far.add(h)
    }
    return [...rank.keys()].sort((a, b) => (Number(far.has(a)) - Number(far.has(b))) || (this.inFlight(a) - this.inFlight(b)) || (rank.get(a)! < rank.get(b)! ? -1 : 1))
  }

  inFlight(peer: string): number {
    return this.load.get(peer) ?? 0
  }

  /**
   * Fetch `id` from the best holder, falling back to the next on any failure (transfer, or
   * `check` throwing). `holders` is re-read before each attempt, so peers that advertise the
   * content meanwhile are candidates. Resolves with the verified bytes and the peer that served
   * them; throws the last error when every holder failed. With `connectedWaitMs`, a holder this
   * node is not connected to is dialed only after that long without a connected one. A holder
   * that answers 'busy' names the peers it is sending the content to: they relay it as it
   * arrives, so they become candidates, and busy holders are asked again after a short wait
   * (within `busyRetries` rounds) once every candidate has been tried.
   */
  async fetch(content: ContentProtocol, kind: ContentKind, id: string, holders: () => Iterable<string>, maxBytes: number, signal: AbortSignal,
    opts: { attemptMs?: number; connectedWaitMs?: number; busyRetries?: number; check?: (bytes: Uint8Array) => void; onError?: (peer: string, err: Error) => void } = {}): Promise<{ bytes: Uint8Array; from: string }> {
    const tried = new Set<string>()
    const relays = new Set<string>()
    const busy = new Set<string>()
    let busyRounds = 0
    let last: Error = new PayloadError(`no peer holds ${kind} ${id.slice(0, 12)}`, 'not-found')
    const dialFarAt = Date.now() + (opts.connectedWaitMs ?? 0)
    while (!signal.aborted) {
      const peer = this.order(id, [...holders(), ...relays], tried)[0]
      if (peer === undefined) {
        // Only busy holders left: their transfers end soon, or the peers they feed start relaying.
        if (busy.size === 0 || busyRounds++ >= (opts.busyRetries ?? 20)) break
        await delay(BUSY_WAIT_MS, undefined, { signal }).catch(() => undefined)
        for (const p of busy) tried.delete(p)
        busy.clear()
        continue
      }
      if (Date.now() < dialFarAt && !this.isConnected(peer)) {
        await delay(Math.min(250, dialFarAt - Date.now()), undefined, { signal }).catch(() => undefined)
        continue
      }
      tried.add(peer)
      this.load.set(peer, this.inFlight(peer) + 1)
      try {
        const attempt = opts.attemptMs ? AbortSignal.any([signal, AbortSignal.timeout(opts.attemptMs)]) : signal
        const bytes = await content.fetch(peer, kind, id, maxBytes, attempt)
        opts.check?.(bytes)
        return { bytes, from: peer }
      } catch (err) {
        last = err as Error
        if (last instanceof BusyError) for (const p of last.peers) if (p !== this.self) relays.add(p)
        // A relay whose own transfer had not started yet said not-found: ask it again, as a busy
        // holder. One that failed otherwise (bad bytes, cut off) is not asked again.
        const notYet = relays.has(peer) && last instanceof PayloadError && last.reason === 'not-found'
        if (last instanceof BusyError || notYet) busy.add(peer)
        opts.onError?.(peer, last)
      } finally {
        const n = this.inFlight(peer) - 1
        if (n > 0) this.load.set(peer, n)
        else this.load.delete(peer)
      }
    }
    throw last
  }
}

/** Pause before asking busy holders again. */
const BUSY_WAIT_MS = 20

function tieBreak(self: string, id: string, holder: string): string {
  return createHash('sha256').update(`${self}\n${id}\n${holder}`).digest('hex')
}
