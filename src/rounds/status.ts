/** What a node is doing, as `status --json` and the HTTP API show it. */
export type Phase = 'starting' | 'syncing' | 'training' | 'collecting' | 'stalled' | 'voting' | 'fusing' | 'committing' | 'done' | 'stopping' | 'stopped'

export interface DivergenceEvent {
  round: number
  at: string
  ours: string
  theirs: string
  action: 'detected' | 'switched' | 'kept'
  detail: string
}

export interface NodeStatus {
  peerId: string
  swarm: string
  swarmName: string
  /** Last committed round (0: none yet). */
  round: number
  baseHash: string
  phase: Phase
  /** The round being worked on. */
  working: number
  progress?: { step: number; total: number }
  peers: string[]
  members: string[]
  addrs: string[]
  backend: string
  /** Threads fusion uses, this node's own included (1 when helper threads are off or failed to start). */
  fusionThreads?: number
  lastMetrics?: { evalBefore?: number; evalLocal?: number; evalAfter?: number }
  divergence: DivergenceEvent[]
  rejected: Record<string, number>
  /** Peers cut off for repeated invalid messages. */
  banned?: string[]
  transfer: { bytesIn: number; bytesOut: number; served: number; fetched: number }
  startedAt: string
}
