import { HomeLayout } from '../store/home.js'
import { Ledger } from '../store/ledger.js'
import { loadSwarmDefinition } from '../config/swarm.js'
import { loadIdentity, peerIdOf } from '../store/identity.js'
import { readApiUrl } from './init.js'
import type { NodeStatus } from '../rounds/status.js'

/** The running node's status from its API, or, if it is not running, what its home records. */
export async function readStatus(home: string): Promise<{ running: boolean; status: Partial<NodeStatus> & { peerId: string; swarm: string; round: number; baseHash: string; phase: string; peers: string[] } }> {
  const api = await readApiUrl(home)
  if (api) {
    try {
      const res = await fetch(`${api.url}/status`, { signal: AbortSignal.timeout(3000) })
      if (res.ok) return { running: true, status: (await res.json()) as NodeStatus }
    } catch {
      // not reachable: fall back to the files
    }
  }
  const L = new HomeLayout(home)
  const { def, id } = await loadSwarmDefinition(L.swarm)
  const peerId = peerIdOf(await loadIdentity(L.identity))
  const ledger = await Ledger.open(L.ledger, def.model.base.hash)
  return {
    running: false,
    status: { peerId, swarm: id, swarmName: def.name, round: ledger.headRound(), baseHash: ledger.headHash(), phase: 'stopped', peers: [] },
  }
}

export async function statusCommand(home: string, json: boolean): Promise<number> {
  const { status: s } = await readStatus(home)
  if (json) {
    process.stdout.write(JSON.stringify(s, null, 2) + '\n')
    return 0
  }
  const rows: [string, string][] = [
    ['peer id', s.peerId],
    ['swarm', `${s.swarm}${s.swarmName ? ` (${s.swarmName})` : ''}`],
    ['phase', s.phase + (s.progress ? ` (step ${s.progress.step}/${s.progress.total})` : '')],
    ['round', `${s.round} committed${s.working && s.phase !== 'done' && s.phase !== 'stopped' ? `, working on ${s.working}` : ''}`],
    ['base hash', s.baseHash],
    ['peers', `${s.peers.length}${s.peers.length ? ': ' + s.peers.join(', ') : ''}`],
  ]
  if (s.addrs?.length) rows.push(['listening', s.addrs.join(' ')])
  if (s.backend) rows.push(['backend', s.backend])
  if (s.lastMetrics?.evalAfter !== undefined) rows.push(['last eval', `${fmt(s.lastMetrics.evalBefore)} before, ${fmt(s.lastMetrics.evalAfter)} after fusion`])
  if (s.divergence?.length) {
    const d = s.divergence[s.divergence.length - 1]
    rows.push(['divergence', `${s.divergence.length} event(s); last: round ${d.round} ${d.action}: ${d.detail}`])
  }
  const w = Math.max(...rows.map((r) => r[0].length))
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`)
  return 0
}

function fmt(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3)
}
