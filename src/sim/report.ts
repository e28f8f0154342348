import type { SimResult } from './run.js'

/** Least-squares slope of log(y) against log(x): the exponent k of y ~ x^k. */
export function fitExponent(xs: number[], ys: number[]): number | null {
  const pts = xs.map((x, i) => [Math.log(x), Math.log(ys[i])]).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b))
  if (pts.length < 2) return null
  const mx = pts.reduce((s, [a]) => s + a, 0) / pts.length
  const my = pts.reduce((s, [, b]) => s + b, 0) / pts.length
  const sxx = pts.reduce((s, [a]) => s + (a - mx) ** 2, 0)
  if (sxx === 0) return null
  return pts.reduce((s, [a, b]) => s + (a - mx) * (b - my), 0) / sxx
}

/**
 * Seconds per round once the swarm runs: the mean of rounds 2.. (round 1 includes start-up:
 * creating the nodes, connecting them and the listening window), or round 1 if it is the only one.
 */
export function steadyRoundSeconds(r: SimResult): number {
  const later = r.rounds.filter((x) => x.round > 1)
  const use = later.length > 0 ? later : r.rounds
  return use.reduce((s, x) => s + x.seconds, 0) / Math.max(1, use.length)
}

const PHASES = ['training', 'collecting', 'stalled', 'voting', 'fusing', 'committing', 'syncing']

/** The per-round table the sim command prints. */
export function simTable(r: SimResult): string {
  const lines = [
    `round  seconds  after last training  contributors  agreed  base hash     mean seconds per node by phase`,
    `-----  -------  -------------------  ------------  ------  ------------  ------------------------------`,
  ]
  for (const x of r.rounds) {
    const phases = PHASES.filter((p) => (x.phases[p] ?? 0) >= 0.05).map((p) => `${p} ${x.phases[p].toFixed(1)}`).join(', ')
    const agreed = x.agreed ? `${x.hashes.length}/${x.hashes.length}` : `${new Set(x.hashes).size} hashes`
    lines.push(`${String(x.round).padEnd(5)}  ${x.seconds.toFixed(1).padStart(7)}  ${x.protocolSeconds.toFixed(1).padStart(19)}  ${String(x.contributors).padStart(12)}  ${agreed.padStart(6)}  ${x.hashes[0]?.slice(0, 12) ?? ''}  ${phases}`)
  }
  const m = r.memory
  lines.push('')
  lines.push(`model: ${r.params.toLocaleString('en-US')} body params, ${r.transfer.deltaBytes.toFixed(0)}-byte deltas; each node fetched ${(r.transfer.deltaBytesInPerNodePerRound / 1024).toFixed(1)} KiB of deltas per round over ${r.transfer.connectionsPerNode.toFixed(1)} connections`)
  lines.push(`memory: RSS ${m.peakRssMiB.toFixed(0)} MiB peak (${m.rssOverNMiB.toFixed(1)} MiB per node), ${m.baselineRssMiB.toFixed(0)} MiB before the nodes started: ${m.rssPerNodeMiB.toFixed(2)} MiB added per node; heap ${m.peakHeapUsedMiB.toFixed(0)} MiB peak (${m.heapPerNodeMiB.toFixed(2)} MiB per node)`)
  const verdict = r.agreed && r.recomputed
    ? `agreed: all ${r.nodes} nodes committed the same base hash in all ${r.rounds.length} rounds, and recomputing every round from the seeded base and the stored deltas gives the same hashes`
    : r.agreed ? `NOT VERIFIED: the nodes agreed, but recomputing the rounds from the stored deltas gave other hashes` : `DISAGREED: the nodes did not all commit the same base hash every round`
  lines.push(`${verdict} (${r.seconds.toFixed(1)} s; ${steadyRoundSeconds(r).toFixed(1)} s per round after the first; start-up ${r.startupSeconds.toFixed(1)} s)`)
  return lines.join('\n')
}
