import { createHash } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerInfo } from '@libp2p/interface'
import type { SwarmLibp2p } from './node.js'
import type { Logger } from '../util/log.js'

/**
 * Keeps this node connected to its bootstrap peers and to peers found by mDNS or named in
 * announcements, up to `maxPeers` connections: a full mesh costs every node a connection (and a
 * copy of each gossip message) per member, so large swarms stay a sparse, connected graph and
 * gossip relays through it. Peers may start in any order, so dialing retries with backoff
 * instead of giving up after one failure.
 */
export class PeerKeeper {
  private timer?: NodeJS.Timeout
  private readonly backoff = new Map<string, { next: number; delay: number }>()
  private readonly known = new Map<string, string[]>()

  constructor(
    private readonly node: SwarmLibp2p,
    private readonly bootstrap: string[],
    private readonly log: Logger,
    private readonly maxPeers = Infinity,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    for (const addr of this.bootstrap) {
      const peer = multiaddr(addr).getPeerId()
      if (peer && peer !== this.node.peerId.toString()) this.known.set(peer, [addr])
    }
    this.node.addEventListener('peer:discovery', this.onDiscovery)
    void this.tick()
    this.timer = setInterval(() => void this.tick(), this.intervalMs)
  }

  stop(): void {
    clearInterval(this.timer)
    this.node.removeEventListener('peer:discovery', this.onDiscovery)
  }

  /** Remember a peer's addresses (e.g. from an announcement) so it is dialed too. */
  learn(peer: string, addrs: string[]): void {
    if (peer === this.node.peerId.toString() || this.known.has(peer)) return
    const valid = addrs.filter((a) => {
      try {
        multiaddr(a)
        return true
      } catch {
        return false
      }
    })
    if (valid.length > 0) this.known.set(peer, valid.map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${peer}`)))
  }

  /** Where `peer` can be dialed, as learned from bootstrap, discovery, hello or announcements. */
  addressesOf(peer: string): string[] | undefined {
    return this.known.get(peer)
  }

  /**
   * A fetch opened a connection to a far holder: keep it only while this node has room for it,
   * so fetches do not grow the graph past maxPeers (each connection costs gossip copies).
   */
  releaseFar(peer: string): void {
    if (this.node.getPeers().length <= this.maxPeers) return
    void this.node.hangUp(peerIdFromString(peer)).catch(() => {})
  }

  connectedPeers(): string[] {
    return this.node.getPeers().map((p) => p.toString())
  }

  private readonly onDiscovery = (evt: CustomEvent<PeerInfo>): void => {
    const id = evt.detail.id.toString()
    if (id === this.node.peerId.toString()) return
    const addrs = evt.detail.multiaddrs.map((m) => m.toString())
    // A peer can enter the peer store without addresses (e.g. as a gossip author): that says
    // nothing about how to reach it, so keep what bootstrap or announcements gave us.
    if (addrs.length === 0) return
    if (!this.known.has(id)) this.log.info({ peer: id }, 'discovered peer')
    this.known.set(id, addrs.map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${id}`)))
  }

  isConnected(peer: string): boolean {
    // Asked per holder per fetch attempt: one id parse, not a string per open connection.
    try {
      return this.node.getConnections(peerIdFromString(peer)).length > 0
    } catch {
      return false
    }
  }

  /**
   * Bootstrap peers first, then the others in an order of their own per node (a hash of both
   * ids): were every node to dial peers in the order they were learned, the first announcers
   * would collect the whole swarm's connections.
   */
  private dialOrder(): [string, string[]][] {
    const self = this.node.peerId.toString()
    const boot = new Set(this.bootstrap.map((a) => multiaddr(a).getPeerId()))
    const rank = (p: string) => (boot.has(p) ? '0' : '1') + createHash('sha256').update(`${self}\n${p}`).digest('hex')
    return [...this.known].map(([p, a]) => [rank(p), p, a] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([, p, a]) => [p, a])
  }

  private ticking = false

  private async tick(): Promise<void> {
    // Dials of one tick can outlast the interval: never run two ticks at once.
    if (this.ticking) return
    this.ticking = true
    try {
      await this.dialSome()
    } finally {
      this.ticking = false
    }
  }

  private async dialSome(): Promise<void> {
    const connected = new Set(this.connectedPeers())
    const now = Date.now()
    for (const [peer, addrs] of this.dialOrder()) {
      if (connected.has(peer)) {
        this.backoff.delete(peer)
        continue
      }
      if (connected.size >= this.maxPeers) break
      const b = this.backoff.get(peer) ?? { next: 0, delay: this.intervalMs }
      if (now < b.next) continue
      try {
        await this.node.dial(addrs.map((a) => multiaddr(a)), { signal: AbortSignal.timeout(5000) })
        this.log.info({ peer }, 'connected to peer')
        this.backoff.delete(peer)
        connected.add(peer)
      } catch (err) {
        // Short cap: a healed partition must reconnect within a round or two, and a failed dial
        // to a known peer is cheap.
        const delay = Math.min(b.delay * 2, 2 * this.intervalMs)
        this.backoff.set(peer, { next: now + b.delay, delay })
        this.log.debug({ peer, err: (err as Error).message }, 'dial failed, will retry')
      }
    }
  }
}

export function isPeerId(s: string): boolean {
  try {
    peerIdFromString(s)
    return true
  } catch {
    return false
  }
}
