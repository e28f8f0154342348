import { runChild } from './child.js'
import { fig, type BenchResult, type Figures } from './figures.js'
import type { SimJob } from './sim-worker.js'
import type { SimResult } from '../sim/run.js'
import { fitExponent, steadyRoundSeconds } from '../sim/report.js'

/**
 * Swarm size: `coldfusiond sim` (N real daemons in one process over the libp2p memory
 * transport, tiny model) at growing N, each in its own process. Time per round and memory per
 * node at each N, and the exponents of their growth. Once one N fails to finish in its time
 * budget, larger ones are not tried (they would take longer still).
 */
export interface SimBenchOptions {
  nodes: number[]
  rounds: number
  /** Time budget of one swarm (seconds). */
  timeoutSec: number
}

export async function runSimBench(o: SimBenchOptions): Promise<BenchResult> {
  const done: SimResult[] = []
  const notes: string[] = []
  for (const n of o.nodes) {
    try {
      const r = await runChild<SimResult | { error: string }>('./sim-worker.js', { nodes: n, rounds: o.rounds, timeoutSec: o.timeoutSec } satisfies SimJob, { execArgv: ['--expose-gc'], killAfterSec: 2 * o.timeoutSec + 60 })
      if ('error' in r) {
        notes.push(`${n} nodes: ${r.error}`)
        break
      }
      done.push(r)
      if (!r.agreed || !r.recomputed) {
        notes.push(`${n} nodes: ${r.agreed ? 'hashes did not recompute' : 'nodes disagreed'}`)
        break
      }
    } catch (err) {
      notes.push(`${n} nodes: ${(err as Error).message.split('\n')[0].slice(0, 200)}`)
      break
    }
  }
  const ok = done.filter((r) => r.agreed && r.recomputed)
  const ns = ok.map((r) => r.nodes)
  const secs = ok.map(steadyRoundSeconds)
  const rss = ok.map((r) => r.memory.rssPerNodeMiB)
  const sizes = { nodes: ns.join(','), rounds: o.rounds, params: ok[0]?.params ?? 0 }
  const skipped = o.nodes.filter((n) => !ns.includes(n))
  const why = notes.length ? `; not reached: ${skipped.join(', ')} (${notes.join('; ')})` : ''
  const figures: Figures = {
    sim_nodes_max: fig(ns.length ? Math.max(...ns) : null, 'nodes', { tried: o.nodes.join(','), rounds: o.rounds },
      `largest simulated swarm (one process, memory transport) whose nodes all committed the same, recomputable base every round${why}`),
    sim_round_time_exponent: fig(fitExponent(ns, secs), 'k in seconds per round ~ N^k', sizes, 'least squares on log-log; rounds after the first'),
    sim_memory_exponent: fig(fitExponent(ns, rss), 'k in MiB per node ~ N^k', sizes, 'memory per node = (peak RSS - RSS before the nodes started) / N'),
  }
  for (const r of ok) {
    figures[`sim_round_seconds_${r.nodes}_nodes`] = fig(steadyRoundSeconds(r), 's per round (mean of rounds after the first)', { nodes: r.nodes, rounds: o.rounds })
    figures[`sim_rss_per_node_mb_${r.nodes}_nodes`] = fig(r.memory.rssPerNodeMiB, 'MiB per node (RSS added / N)', { nodes: r.nodes })
  }
  const table = [
    `Swarm size: coldfusiond sim (N daemons in one process, libp2p memory transport, ${ok[0]?.params ?? '?'}-param model, ${o.rounds} rounds, every node contributes)`,
    `  ${'nodes'.padStart(5)} ${'s/round'.padStart(8)} ${'after train'.padStart(11)} ${'MiB/node'.padStart(9)} ${'RSS MiB'.padStart(8)} ${'KiB in/node'.padStart(12)} ${'conns/node'.padStart(10)}  agreed`,
    ...done.map((r) => {
      const later = r.rounds.filter((x) => x.round > 1)
      const proto = (later.length ? later : r.rounds).reduce((s, x) => s + x.protocolSeconds, 0) / Math.max(1, (later.length ? later : r.rounds).length)
      return `  ${String(r.nodes).padStart(5)} ${steadyRoundSeconds(r).toFixed(2).padStart(8)} ${proto.toFixed(2).padStart(11)} ${r.memory.rssPerNodeMiB.toFixed(2).padStart(9)} ${r.memory.peakRssMiB.toFixed(0).padStart(8)} ${(r.transfer.deltaBytesInPerNodePerRound / 1024).toFixed(1).padStart(12)} ${r.transfer.connectionsPerNode.toFixed(1).padStart(10)}  ${r.agreed && r.recomputed ? 'yes' : 'NO'}`
    }),
    ...notes.map((n) => `  stopped: ${n}`),
    `  growth with N: time per round ~ N^${figures.sim_round_time_exponent.value?.toFixed(2) ?? 'n/a'}, memory per node ~ N^${figures.sim_memory_exponent.value?.toFixed(2) ?? 'n/a'}`,
  ]
  return { figures, curves: { sim: done.map((r) => ({ nodes: r.nodes, agreed: r.agreed && r.recomputed, round_seconds: steadyRoundSeconds(r), rounds: r.rounds.map(({ hashes, ...x }) => ({ ...x, hash: hashes[0] })), memory: r.memory, transfer: r.transfer, startup_seconds: r.startupSeconds })) }, table }
}
