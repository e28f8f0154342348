import type { NodeStatus } from '../rounds/status.js'
import type { SwarmHistory } from './history.js'

export interface PeerInfo {
  peerId: string
  /** An open libp2p connection to it. */
  connected: boolean
  /** Subscribed to the swarm's announce topic (we hear it). */
  member: boolean
  /** Its latest commit heard: the round and the base it produced. */
  round?: number
  hash?: string
  /** same: on our base; behind/ahead: its latest commit is for an earlier/later round; diverged: same round, other base. */
  agreement?: 'same' | 'behind' | 'ahead' | 'diverged'
}

export interface PeersView {
  connected: string[]
  members: string[]
  peers: PeerInfo[]
}

/** GET /peers: who we are connected to, who we hear, and which base each one committed last. */
export function peersView(s: NodeStatus, history?: SwarmHistory): PeersView {
  const commits = history?.latestCommits() ?? new Map<string, { round: number; hash: string }>()
  const ids = [...new Set([...s.peers, ...s.members, ...commits.keys()])].filter((p) => p !== s.peerId).sort()
  const peers = ids.map((peerId): PeerInfo => {
    const c = commits.get(peerId)
    const info: PeerInfo = { peerId, connected: s.peers.includes(peerId), member: s.members.includes(peerId) }
    if (c) {
      info.round = c.round
      info.hash = c.hash
      info.agreement = c.round < s.round ? 'behind' : c.round > s.round ? 'ahead' : c.hash === s.baseHash ? 'same' : 'diverged'
    }
    return info
  })
  return { connected: s.peers, members: s.members, peers }
}
