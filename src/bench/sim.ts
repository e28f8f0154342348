import { runChild } from './child.js'
import { fig, type BenchResult, type Figures } from './figures.js'
import type { SimJob } from './sim-worker.js'
import type { SimResult } from '../sim/run.js'
import { fitExponent, steadyRoundSeconds } from '../sim/report.js'

/**
 * Swarm size: `coldfusiond sim` (N real daemons in one process over the libp2p memory
 * transport, tiny model) at growing N, each in its own process. Two series: every node trains
 * every round, and a bounded number of drawn contributors per round (the paper's "8 of 35").
 * Time per round and memory per node at each N, and the exponents of their growth. Once one N of
 * a series fails to finish in its time budget, larger ones are not tried.
 */
export interface SimSeries {
  nodes: number[]
  /** Nodes drawn to train each round; absent: every node trains. */
  contributorsPerRound?: number
}

export interface SimBenchOptions {
  series: SimSeries[]
  rounds: number
  /** Time budget of one swarm (seconds). */
  timeoutSec: number
  /**
   * Seconds the whole sim part may take (the default run keeps the bench under 15 minutes): a
   * swarm whose time, predicted from the series' last one, would overrun it is not started.
   */
  budgetSec?: number
}

/** Predicting a larger swarm's whole run: time grows about as N^2.5 here (the fitted exponents run 2.0 to 2.5). */
const PREDICT_EXPONENT = 2.5

interface SeriesRun {
  label: string
  key: string
  s: SimSeries
  done: SimResult[]
  ok: SimResult[]
  notes: string[]
}

async function runSeries(s: SimSeries, o: SimBenchOptions, secondsLeft: () => number): Promise<SeriesRun> {
  const done: SimResult[] = []
  const notes: string[] = []
  for (const n of s.nodes) {
    const last = done[done.length - 1]
    // Without a budget secondsLeft() is Infinity: every swarm runs.
    if (last) {
      const predicted = last.seconds * (n / last.nodes) ** PREDICT_EXPONENT
      if (predicted > secondsLeft()) {
        notes.push(`${n} nodes: not run, about ${predicted.toFixed(0)} s predicted (${last.nodes} nodes took ${last.seconds.toFixed(0)} s, times (N ratio)^${PREDICT_EXPONENT}), over the ${Math.max(0, secondsLeft()).toFixed(0)} s left of the bench's time budget; --full runs it`)
        break
      }
    }
    try {
      const job: SimJob = { nodes: n, rounds: o.rounds, timeoutSec: o.timeoutSec, contributorsPerRound: s.contributorsPerRound }
      const r = await runChild<SimResult | { error: string }>('./sim-worker.js', job, { execArgv: ['--expose-gc'], killAfterSec: 2 * o.timeoutSec + 60 })
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
  const k = s.contributorsPerRound
  return {
    label: k === undefined ? 'every node trains each round' : `${k} nodes drawn to train each round`,
    key: k === undefined ? '' : `_drawn${k}`,
    s, done, notes, ok: done.filter((r) => r.agreed && r.recomputed),
  }
}

export async function runSimBench(o: SimBenchOptions): Promise<BenchResult> {
  const runs: SeriesRun[] = []
  const t0 = performance.now()
  const secondsLeft = () => (o.budgetSec ?? Infinity) - (performance.now() - t0) / 1000
  for (const s of o.series) runs.push(await runSeries(s, o, secondsLeft))
  const figures: Figures = {}
  const best = runs.flatMap((r) => r.ok.map((x) => ({ n: x.nodes, label: r.label }))).sort((a, b) => b.n - a.n)[0]
  const tried = runs.map((r) => `${r.s.nodes.join(',')} (${r.label})`).join('; ')
  const notReached = runs.flatMap((r) => r.notes.map((n) => `${n} (${r.label})`))
  figures.sim_nodes_max = fig(best?.n ?? null, 'nodes', { tried, rounds: o.rounds },
    `largest simulated swarm (one process, memory transport) whose nodes all committed the same, recomputable base every round${best ? `: ${best.label}` : ''}${notReached.length ? `; not reached: ${notReached.join('; ')}` : ''}`)
  const table: string[] = []
  for (const r of runs) {
    const ns = r.ok.map((x) => x.nodes)
    const secs = r.ok.map(steadyRoundSeconds)
    const rss = r.ok.map((x) => x.memory.rssPerNodeMiB)
    const sizes = { nodes: ns.join(','), rounds: o.rounds, params: r.ok[0]?.params ?? 0, contributors_per_round: r.s.contributorsPerRound ?? 'all' }
    figures[`sim_round_time_exponent${r.key}`] = fig(fitExponent(ns, secs), 'k in seconds per round ~ N^k', sizes, `least squares on log-log; rounds after the first; ${r.label}`)
    figures[`sim_memory_exponent${r.key}`] = fig(fitExponent(ns, rss), 'k in MiB per node ~ N^k', sizes, 'memory per node = (peak RSS - RSS before the nodes started) / N')
    for (const x of r.ok) {
      figures[`sim_round_seconds_${x.nodes}_nodes${r.key}`] = fig(steadyRoundSeconds(x), 's per round (mean of rounds after the first)', { nodes: x.nodes, rounds: o.rounds, contributors_per_round: r.s.contributorsPerRound ?? 'all' })
      figures[`sim_rss_per_node_mb_${x.nodes}_nodes${r.key}`] = fig(x.memory.rssPerNodeMiB, 'MiB per node (RSS added / N)', { nodes: x.nodes })
    }
    table.push(
      `Swarm size: coldfusiond sim (N daemons in one process, libp2p memory transport, ${r.ok[0]?.params ?? '?'}-param model, ${o.rounds} rounds, ${r.label})`,
      `  ${'nodes'.padStart(5)} ${'s/round'.padStart(8)} ${'after train'.padStart(11)} ${'MiB/node'.padStart(9)} ${'RSS MiB'.padStart(8)} ${'KiB in/node'.padStart(12)} ${'conns/node'.padStart(10)}  agreed`,
      ...r.done.map((x) => {
        const later = x.rounds.filter((y) => y.round > 1)
        const use = later.length ? later : x.rounds
        const proto = use.reduce((a, y) => a + y.protocolSeconds, 0) / Math.max(1, use.length)
        return `  ${String(x.nodes).padStart(5)} ${steadyRoundSeconds(x).toFixed(2).padStart(8)} ${proto.toFixed(2).padStart(11)} ${x.memory.rssPerNodeMiB.toFixed(2).padStart(9)} ${x.memory.peakRssMiB.toFixed(0).padStart(8)} ${(x.transfer.deltaBytesInPerNodePerRound / 1024).toFixed(1).padStart(12)} ${x.transfer.connectionsPerNode.toFixed(1).padStart(10)}  ${x.agreed && x.recomputed ? 'yes' : 'NO'}`
      }),
      ...r.notes.map((n) => `  stopped: ${n}`),
      `  growth with N: time per round ~ N^${figures[`sim_round_time_exponent${r.key}`].value?.toFixed(2) ?? 'n/a'}, memory per node ~ N^${figures[`sim_memory_exponent${r.key}`].value?.toFixed(2) ?? 'n/a'}`,
    )
  }
  const curve = (r: SeriesRun) => r.done.map((x) => ({ nodes: x.nodes, contributors_per_round: r.s.contributorsPerRound ?? null, agreed: x.agreed && x.recomputed, round_seconds: steadyRoundSeconds(x), rounds: x.rounds.map(({ hashes, ...y }) => ({ ...y, hash: hashes[0] })), memory: x.memory, transfer: x.transfer, startup_seconds: x.startupSeconds }))
  return { figures, curves: { sim: runs.flatMap(curve) }, table }
}
