import type { ConnectionGater, PeerId } from '@libp2p/interface'

/**
 * Peers that keep sending invalid messages are disconnected and refused for a while. Gossipsub's
 * own score punishes them too; this makes the cut explicit, logged and visible in status.
 */
export class BanList {
  private readonly until = new Map<string, number>()
  private readonly offenses = new Map<string, number>()

  constructor(private readonly threshold = 10, private readonly banMs = 10 * 60_000) {}

  /** Count an offense; true when the peer just crossed the threshold and is now banned. */
  offend(peer: string): boolean {
    const n = (this.offenses.get(peer) ?? 0) + 1
    this.offenses.set(peer, n)
    if (n < this.threshold || this.isBanned(peer)) return false
    this.until.set(peer, Date.now() + this.banMs)
    this.offenses.delete(peer)
    return true
  }

  isBanned(peer: string): boolean {
    const t = this.until.get(peer)
    if (t === undefined) return false
    if (Date.now() < t) return true
    this.until.delete(peer)
    return false
  }

  banned(): string[] {
    return [...this.until.keys()].filter((p) => this.isBanned(p))
  }

  gater(inner?: ConnectionGater): ConnectionGater {
    const denied = (peer: PeerId): boolean => this.isBanned(peer.toString())
    return {
      ...inner,
      denyDialPeer: async (peer) => denied(peer) || Boolean(await inner?.denyDialPeer?.(peer)),
      denyInboundEncryptedConnection: async (peer, conn) => denied(peer) || Boolean(await inner?.denyInboundEncryptedConnection?.(peer, conn)),
      denyOutboundEncryptedConnection: async (peer, conn) => denied(peer) || Boolean(await inner?.denyOutboundEncryptedConnection?.(peer, conn)),
    }
  }
}
