import { runChild } from './child.js'
import { fig, type BenchResult, type Figures } from './figures.js'
import type { PropagationJob, PropagationResult } from './propagation-worker.js'
import { LinkNetwork } from './links.js'

/**
 * From announce to every node verified, for 4, 8, 16 nodes, against one libp2p stream moving
 * the same payload once between two nodes; and the delta bytes each node moves in a round in
 * which every node contributes. Every node is its own process (as on its own machine), but all
 * share this machine's cores: the CPU floor says how long the copies' encryption and checks
 * must take on them at the least, so the table separates the protocol from the CPU.
 */
export interface PropagationOptions {
  nodes: number[]
  payloadBytes: number
  repeats: number
  /**
   * Also run one delta to all behind emulated links of this many Mbit/s each way (one network
   * namespace per node, LinkNetwork), for these swarm sizes; skipped with a note where links
   * cannot be set up (not root, no iproute2).
   */
  links?: { mbit: number; nodes: number[] }
}

const MB = 2 ** 20

export async function runPropagation(o: PropagationOptions): Promise<BenchResult> {
  const results = await runChild<PropagationResult[]>('./propagation-worker.js', { nodes: o.nodes, payloadBytes: o.payloadBytes, repeats: o.repeats } satisfies PropagationJob)
  const single = results.find((r) => r.scenario === 'single')!
  const one = results.filter((r) => r.scenario === 'one')
  const all = results.filter((r) => r.scenario === 'all')
  const S = single.payloadBytes
  const T = single.seconds
  const cores = single.cores
  // CPU seconds one copy costs (both ends: noise, yamux, sha256, container check).
  const perCopy = single.cpuSeconds
  // n-1 copies cannot finish sooner than their CPU spread over every core, nor sooner than one copy.
  const floor = cpuFloor(single)
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const where = 'one process per node, TCP loopback'
  const figures: Figures = {
    propagation_single_transfer_seconds: fig(T, 's (one fetch + verification between two nodes)', { payload_bytes: S }),
    propagation_single_transfer_mb_per_s: fig(S / MB / T, 'MiB/s', { payload_bytes: S }),
    single_stream_mib_per_s: fig(S / MB / T, 'MiB/s (one libp2p stream, noise + yamux, fetch + sha256 + container check)', { payload_bytes: S }, where),
    single_transfer_cpu_ms_per_mib: fig((perCopy * 1000) / (S / MB), 'CPU ms per MiB (both ends, user + system)', { payload_bytes: S }),
  }
  for (const r of one) {
    const suffix = r.nodes === 8 ? '' : `_${r.nodes}_nodes`
    const sizes = { nodes: r.nodes, payload_bytes: S, scenario: 'one delta to all', cores }
    figures[`propagation_vs_single_transfer${suffix}`] = fig(r.seconds / T, 'ratio (announce to all verified / single transfer)', sizes,
      r.nodes === 8 ? `${where}; ${cores} cores shared by all ${r.nodes} nodes (see propagation_cpu_floor_vs_single_transfer)` : undefined)
    figures[`propagation_cpu_floor_vs_single_transfer${suffix}`] = fig(floor(r.nodes - 1) / T, `ratio (lower bound: ${r.nodes - 1} copies x CPU per copy / ${cores} cores, over the single transfer)`, sizes,
      r.nodes === 8 ? 'the least any protocol can reach on this machine; separate machines would each bring their own cores' : undefined)
    figures[`propagation_vs_cpu_floor${suffix}`] = fig(r.seconds / floor(r.nodes - 1), 'ratio (measured / CPU floor; 1 = the CPU is the only limit)', sizes)
    figures[`propagation_cpu_per_copy_vs_single_${r.nodes}_nodes`] = fig(r.cpuSeconds / (r.nodes - 1) / perCopy, 'ratio (CPU per copy in the swarm / in the single transfer)', sizes)
    figures[`propagation_origin_upload_bytes_${r.nodes}_nodes`] = fig(r.uploaded[0], 'bytes the author uploaded', sizes)
  }
  for (const r of all) {
    const sizes = { nodes: r.nodes, payload_bytes: S, scenario: 'all to all' }
    figures[`propagation_round_vs_single_transfer_${r.nodes}_nodes`] = fig(r.seconds / T, 'ratio (every delta at every node / single transfer)', sizes)
    figures[`propagation_round_cpu_floor_vs_single_transfer_${r.nodes}_nodes`] = fig(floor(r.nodes * (r.nodes - 1)) / T, 'ratio (lower bound from CPU, over the single transfer)', sizes)
    figures[`round_download_bytes_per_node_${r.nodes}_nodes`] = fig(mean(r.downloaded), 'bytes per node per round (mean)', sizes)
    figures[`round_upload_bytes_per_node_${r.nodes}_nodes`] = fig(mean(r.uploaded), 'bytes per node per round (mean)', sizes)
    figures[`round_upload_bytes_per_node_max_${r.nodes}_nodes`] = fig(Math.max(...r.uploaded), 'bytes per node per round (max)', sizes)
  }
  const linked = o.links ? await runLinked(o.links, o, figures) : []
  const growth = all.length > 1 ? ` (per node, in payloads: download N-1, upload mean N-1; they grow linearly in N, the round's total as N(N-1))` : ''
  const table = [
    `Propagation over libp2p (TCP loopback, one process per node, ${cores} cores), payload ${(S / MB).toFixed(2)} MiB; single transfer ${(T * 1000).toFixed(1)} ms (${(S / MB / T).toFixed(0)} MiB/s), CPU ${((perCopy * 1000) / (S / MB)).toFixed(1)} ms per MiB (both ends)`,
    `  ${'nodes'.padStart(5)} ${'one->all s'.padStart(10)} ${'x single'.padStart(9)} ${'CPU floor x'.padStart(11)} ${'origin up'.padStart(9)} ${'round s'.padStart(8)} ${'x single'.padStart(9)} ${'floor x'.padStart(8)} ${'down/node'.padStart(10)} ${'up/node'.padStart(8)} ${'up max'.padStart(7)}`,
    ...one.map((r, i) => {
      const a = all[i]
      return `  ${String(r.nodes).padStart(5)} ${r.seconds.toFixed(3).padStart(10)} ${(r.seconds / T).toFixed(1).padStart(9)} ${(floor(r.nodes - 1) / T).toFixed(1).padStart(11)} ${(r.uploaded[0] / S).toFixed(1).padStart(9)} ${a.seconds.toFixed(3).padStart(8)} ${(a.seconds / T).toFixed(1).padStart(9)} ${(floor(a.nodes * (a.nodes - 1)) / T).toFixed(1).padStart(8)} ${(mean(a.downloaded) / S).toFixed(1).padStart(10)} ${(mean(a.uploaded) / S).toFixed(1).padStart(8)} ${(Math.max(...a.uploaded) / S).toFixed(1).padStart(7)}`
    }),
    `  one->all: one delta to every node; round: every node's delta to every node; CPU floor: copies x CPU per copy / cores; bytes in payloads${growth}`,
    ...linked,
  ]
  return { figures, curves: { propagation: results }, table }
}

/**
 * Seconds that `copies` copies take at the least: their CPU (each the single transfer's, both
 * ends) spread over every core, and never less than the single transfer itself.
 */
function cpuFloor(single: PropagationResult): (copies: number) => number {
  return (copies) => Math.max(single.seconds, (copies * single.cpuSeconds) / single.cores)
}

/**
 * One delta to all with every node behind its own link (LinkNetwork): the network, not this
 * machine's shared cores, is the limit, as between labs. The reference is one transfer over one
 * such link; the ideal protocol stays near it however many nodes there are (peers that hold a
 * delta, or part of it, serve it too), while an author serving every copy itself takes N-1 times as long.
 */
async function runLinked(l: NonNullable<PropagationOptions['links']>, o: PropagationOptions, figures: Figures): Promise<string[]> {
  const why = LinkNetwork.unavailable()
  const title = `Propagation behind links of ${l.mbit} Mbit/s each way (one network namespace per node, tc tbf)`
  if (why) {
    figures.propagation_links_vs_single_transfer = fig(null, 'ratio', { link_mbit: l.mbit }, `skipped: ${why}`)
    return [`${title}: skipped, ${why}`]
  }
  const results = await runChild<PropagationResult[]>('./propagation-worker.js', { nodes: l.nodes, payloadBytes: o.payloadBytes, repeats: o.repeats, linkMbit: l.mbit, rounds: false } satisfies PropagationJob)
  const single = results.find((r) => r.scenario === 'single')!
  const T = single.seconds
  const S = single.payloadBytes
  // The nodes still share this machine's cores: the CPU floor says where the links stop being the limit.
  const floor = cpuFloor(single)
  figures.propagation_links_single_transfer_seconds = fig(T, 's (one fetch + verification over one link)', { payload_bytes: S, link_mbit: l.mbit })
  const rows: string[] = []
  for (const r of results.filter((x) => x.scenario === 'one')) {
    const suffix = r.nodes === 8 ? '' : `_${r.nodes}_nodes`
    const sizes = { nodes: r.nodes, payload_bytes: S, link_mbit: l.mbit, scenario: 'one delta to all' }
    figures[`propagation_links_vs_single_transfer${suffix}`] = fig(r.seconds / T, 'ratio (announce to all verified / single transfer, both over the same links)', sizes,
      r.nodes === 8 ? `every node in its own network namespace behind ${l.mbit} Mbit/s each way: the network is the limit, as between labs` : undefined)
    figures[`propagation_links_cpu_floor_vs_single_transfer${suffix}`] = fig(floor(r.nodes - 1) / T, `ratio (${r.nodes - 1} copies x CPU per copy / ${single.cores} cores, over the single transfer; 1 = the links are the limit)`, sizes)
    figures[`propagation_links_origin_upload_${r.nodes}_nodes`] = fig(r.uploaded[0] / S, 'payloads the author uploaded', sizes)
    rows.push(`  ${String(r.nodes).padStart(5)} ${r.seconds.toFixed(3).padStart(10)} ${(r.seconds / T).toFixed(1).padStart(9)} ${(floor(r.nodes - 1) / T).toFixed(1).padStart(11)} ${(r.uploaded[0] / S).toFixed(1).padStart(9)} ${(Math.max(...r.uploaded.slice(1)) / S).toFixed(1).padStart(9)}`)
  }
  return [
    `${title}, payload ${(S / MB).toFixed(2)} MiB; single transfer ${(T * 1000).toFixed(1)} ms (${(S / MB / T).toFixed(1)} MiB/s)`,
    `  ${'nodes'.padStart(5)} ${'one->all s'.padStart(10)} ${'x single'.padStart(9)} ${'CPU floor x'.padStart(11)} ${'origin up'.padStart(9)} ${'other max'.padStart(9)}`,
    ...rows,
    '  origin up / other max: payloads the author / the busiest other node uploaded; CPU floor: as above, for these links (all nodes share this machine\'s cores)',
  ]
}
