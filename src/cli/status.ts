import { HomeLayout } from '../store/home.js'
import { Ledger, type LedgerEntry } from '../store/ledger.js'
import { loadSwarmDefinition } from '../config/swarm.js'
import { loadIdentity, peerIdOf } from '../store/identity.js'
import { ApiClient } from '../api/client.js'
import type { PeersView } from '../api/views.js'
import type { NodeStatus } from '../rounds/status.js'
import { finalEntries } from './mesh-report.js'
import { formatFields, formatTable } from './table.js'

type StatusLike = Partial<NodeStatus> & { peerId: string; swarm: string; round: number; baseHash: string; phase: string; peers: string[] }

export interface StatusReport {
  running: boolean
  api?: string
  status: StatusLike
  peers?: PeersView
  rounds: LedgerEntry[]
}

/** The running node's status from its API, or, if it is not running, what its home records. */
export async function readStatus(home: string): Promise<{ running: boolean; status: StatusLike }> {
  const r = await readReport(home, 0)
  return { running: r.running, status: r.status }
}

/** Status, peers and the last `rounds` ledger entries: from the API if the node runs, else from the home. */
export async function readReport(home: string, rounds: number): Promise<StatusReport> {
  const api = await ApiClient.forHome(home)
  if (api) {
    try {
      const status = await api.get<NodeStatus>('/status')
      const [peers, ledger] = await Promise.all([
        api.get<PeersView>('/peers').catch(() => undefined),
        rounds > 0 ? api.get<LedgerEntry[]>(`/rounds?last=${rounds * 2}`).catch(() => []) : [],
      ])
      return { running: true, api: api.url, status, peers, rounds: ledger }
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
    rounds: ledger.all().slice(-rounds * 2),
  }
}

export async function statusCommand(home: string, json: boolean): Promise<number> {
  if (json) {
    const { status } = await readStatus(home)
    process.stdout.write(JSON.stringify(status, null, 2) + '\n')
    return 0
  }
  process.stdout.write(renderStatus(await readReport(home, 8)) + '\n')
  return 0
}

/** The readable form: the node, then its peers, then its recent rounds. */
export function renderStatus(r: StatusReport): string {
  const s = r.status
  const fields: [string, string][] = [
    ['peer id', s.peerId],
    ['swarm', `${s.swarm}${s.swarmName ? ` (${s.swarmName})` : ''}`],
    ['state', r.running ? `running, ${s.phase}${s.progress && s.phase === 'training' ? ` (step ${s.progress.step}/${s.progress.total})` : ''}` : 'not running'],
    ['round', `${s.round} committed${s.working && s.working > s.round && r.running && s.phase !== 'done' ? `, working on ${s.working}` : ''}`],
    ['base hash', s.baseHash],
  ]
  if (s.backend) fields.push(['backend', `${s.backend}${s.fusionThreads ? `; fusion on ${s.fusionThreads} thread${s.fusionThreads > 1 ? 's' : ''}` : ''}`])
  if (r.running) fields.push(['peers', `${s.peers.length} connected, ${s.members?.length ?? 0} heard on gossip`])
  if (s.addrs?.length) fields.push(['listening', s.addrs.join(' ')])
  if (r.api) fields.push(['api', `${r.api} (dashboard: ${r.api}/)`])
  if (s.transfer) fields.push(['transfer', `${bytes(s.transfer.bytesIn)} in (${s.transfer.fetched} fetched), ${bytes(s.transfer.bytesOut)} out (${s.transfer.served} served)`])
  if (s.lastMetrics?.evalAfter !== undefined) fields.push(['last eval', `${fmt(s.lastMetrics.evalBefore)} before, ${fmt(s.lastMetrics.evalAfter)} after fusion`])
  const rejected = Object.entries(s.rejected ?? {})
  if (rejected.length) fields.push(['rejected', rejected.map(([k, n]) => `${k} ${n}`).join(', ')])
  if (s.divergence?.length) {
    const d = s.divergence[s.divergence.length - 1]
    fields.push(['divergence', `${s.divergence.length} event(s); last: round ${d.round} ${d.action}: ${d.detail}`])
  }
  if (s.startedAt && r.running) fields.push(['started', s.startedAt])
  const parts = [formatFields(fields)]

  if (r.peers && r.peers.peers.length > 0) {
    parts.push(formatTable(['peer', 'link', 'last commit', 'base', 'vs this node'], r.peers.peers.map((p) => [
      p.peerId,
      p.connected ? 'connected' : p.member ? 'gossip only' : 'not connected',
      p.round === undefined ? '-' : String(p.round),
      p.hash ? p.hash.slice(0, 12) : '-',
      p.agreement === undefined ? 'no commit heard' : p.agreement === 'same' ? 'same base' : p.agreement,
    ])))
  }

  const finals = [...finalEntries(r.rounds).values()].sort((a, b) => b.round - a.round).slice(0, 8)
  if (finals.length > 0) {
    const own = new Map(r.rounds.filter((e) => e.kind === 'commit').map((e) => [e.round, e]))
    parts.push(formatTable(['round', 'base hash', 'contributors', 'how', 'eval before > after', 'committed'], finals.map((e) => {
      const m = own.get(e.round)?.local
      return [String(e.round), e.hash.slice(0, 12), String(e.deltas.length), e.kind === 'switch' ? 'adopted' : 'fused', `${fmt(m?.evalBefore)} > ${fmt(m?.evalAfter)}`, e.at.replace('T', ' ').slice(0, 19)]
    })))
  }
  return parts.join('\n\n')
}

function fmt(x: number | undefined): string {
  return x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(3)
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}
