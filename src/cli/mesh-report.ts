import type { LedgerEntry } from '../store/ledger.js'

export interface MeshNodeResult {
  name: string
  task: string
  peerId: string
  ledger: LedgerEntry[]
}

export interface MeshJson {
  agreed: boolean
  dir: string
  seconds: number
  nodes: { name: string; task: string; peerId: string }[]
  rounds: {
    round: number
    contributors: number
    hashes: Record<string, string>
    deltas: Record<string, string[]>
    metrics: Record<string, { before?: number; local?: number; after?: number }>
  }[]
}

export interface MeshReport {
  json: MeshJson
  table: string
}

/** The entry each node ended with for a round: a later switch supersedes an earlier commit. */
export function finalEntries(ledger: LedgerEntry[]): Map<number, LedgerEntry> {
  const out = new Map<number, LedgerEntry>()
  for (const e of ledger) out.set(e.round, e)
  return out
}

/** Compare the nodes' ledgers round by round and render the table users read. */
export function meshReport(nodes: MeshNodeResult[], rounds: number, seconds: number, dir: string): MeshReport {
  const finals = nodes.map((n) => finalEntries(n.ledger))
  const out: MeshJson = { agreed: true, dir, seconds: Math.round(seconds * 10) / 10, nodes: nodes.map(({ name, task, peerId }) => ({ name, task, peerId })), rounds: [] }
  for (let r = 1; r <= rounds; r++) {
    const hashes: Record<string, string> = {}
    const deltas: Record<string, string[]> = {}
    const metrics: MeshJson['rounds'][number]['metrics'] = {}
    let contributors = 0
    nodes.forEach((n, i) => {
      const e = finals[i].get(r)
      hashes[n.peerId] = e?.hash ?? ''
      deltas[n.peerId] = e?.deltas.map((d) => d.id) ?? []
      contributors = Math.max(contributors, e?.deltas.length ?? 0)
      // Metrics of the node's own commit for the round (a switch entry carries none).
      const own = n.ledger.find((x) => x.round === r && x.kind === 'commit')
      metrics[n.peerId] = { before: own?.local?.evalBefore, local: own?.local?.evalLocal, after: own?.local?.evalAfter }
    })
    const values = Object.values(hashes)
    const sets = Object.values(deltas).map((d) => d.join(','))
    if (values.some((h) => h === '' || h !== values[0]) || sets.some((s) => s !== sets[0])) out.agreed = false
    out.rounds.push({ round: r, contributors, hashes, deltas, metrics })
  }

  const header = ['round', 'contributors', 'base hash', ...nodes.map((n) => `${n.name} ${n.task} (before > after)`)]
  const lines: string[][] = [header]
  for (const r of out.rounds) {
    const hs = Object.values(r.hashes)
    const agree = hs.every((h) => h === hs[0] && h !== '')
    lines.push([
      String(r.round),
      `${r.contributors}/${nodes.length}`,
      agree ? hs[0].slice(0, 12) : 'DIVERGED',
      ...nodes.map((n) => {
        const m = r.metrics[n.peerId]
        return `${pct(m.before)} > ${pct(m.after)}`
      }),
    ])
  }
  const widths = header.map((_, c) => Math.max(...lines.map((l) => l[c].length)))
  const fmt = (l: string[]): string => l.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd()
  const table = [
    fmt(lines[0]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.slice(1).map(fmt),
    '',
    'eval: accuracy on each node\'s held-out data, before = the round\'s base with the node\'s head, after = the fused base',
    out.agreed
      ? `agreed: all ${nodes.length} nodes committed the same base hash in all ${rounds} rounds (${out.seconds} s; homes in ${dir})`
      : `NOT AGREED: nodes committed different bases (see node.log in each home under ${dir})`,
  ].join('\n')
  return { json: out, table }
}

function pct(x: number | undefined): string {
  return x === undefined || x === null || Number.isNaN(x) ? '  -  ' : x.toFixed(3)
}
