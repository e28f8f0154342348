import { runChild } from './child.js'
import { fig, type BenchResult, type Figures } from './figures.js'
import type { PropagationJob, PropagationResult } from './propagation-worker.js'

/**
 * From announce to every node verified, for 4, 8, 16 nodes, against one libp2p stream moving
 * the same payload once between two nodes; and the delta bytes each node moves in a round in
 * which every node contributes. All nodes share one process (and its 2 cores), so every copy's
 * encryption and verification runs on the same CPU: the ratio includes that serialization.
 */
export interface PropagationOptions {
  nodes: number[]
  payloadBytes: number
  repeats: number
}

const MB = 2 ** 20

export async function runPropagation(o: PropagationOptions): Promise<BenchResult> {
  const job = (scenario: PropagationJob['scenario'], nodes: number, repeats: number) =>
    runChild<PropagationResult>('./propagation-worker.js', { scenario, nodes, payloadBytes: o.payloadBytes, repeats } satisfies PropagationJob)
  const single = await job('single', 2, Math.max(3, o.repeats))
  const one: PropagationResult[] = []
  const all: PropagationResult[] = []
  for (const n of o.nodes) {
    one.push(await job('one', n, o.repeats))
    all.push(await job('all', n, 1))
  }
  const S = single.payloadBytes
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const figures: Figures = {
    propagation_single_transfer_seconds: fig(single.seconds, 's (one fetch + verification between two nodes)', { payload_bytes: S }),
    propagation_single_transfer_mb_per_s: fig(S / MB / single.seconds, 'MiB/s', { payload_bytes: S }),
  }
  for (const r of one) {
    const name = r.nodes === 8 ? 'propagation_vs_single_transfer' : `propagation_vs_single_transfer_${r.nodes}_nodes`
    figures[name] = fig(r.seconds / single.seconds, 'ratio (announce to all verified / single transfer)', { nodes: r.nodes, payload_bytes: S, scenario: 'one delta to all' },
      r.nodes === 8 ? `all ${r.nodes} nodes in one process: the ${r.nodes - 1} copies share its CPU (noise encryption, sha256, container check)` : undefined)
  }
  for (const r of all) {
    figures[`propagation_round_vs_single_transfer_${r.nodes}_nodes`] = fig(r.seconds / single.seconds, 'ratio (every delta at every node / single transfer)', { nodes: r.nodes, payload_bytes: S, scenario: 'all to all' })
    figures[`round_download_bytes_per_node_${r.nodes}_nodes`] = fig(mean(r.downloaded), 'bytes per node per round (mean)', { nodes: r.nodes, payload_bytes: S })
    figures[`round_upload_bytes_per_node_max_${r.nodes}_nodes`] = fig(Math.max(...r.uploaded), 'bytes per node per round (max)', { nodes: r.nodes, payload_bytes: S })
  }
  const table = [
    `Propagation over libp2p (TCP loopback, one process), payload ${(S / MB).toFixed(2)} MiB; single transfer ${(single.seconds * 1000).toFixed(1)} ms (${(S / MB / single.seconds).toFixed(0)} MiB/s)`,
    `  ${'nodes'.padStart(5)} ${'one->all s'.padStart(10)} ${'x single'.padStart(9)} ${'round s'.padStart(8)} ${'x single'.padStart(9)} ${'down/node'.padStart(10)} ${'up/node max'.padStart(12)}  (round: every node's delta to every node; bytes in payloads)`,
    ...one.map((r, i) => {
      const a = all[i]
      return `  ${String(r.nodes).padStart(5)} ${r.seconds.toFixed(3).padStart(10)} ${(r.seconds / single.seconds).toFixed(1).padStart(9)} ${a.seconds.toFixed(3).padStart(8)} ${(a.seconds / single.seconds).toFixed(1).padStart(9)} ${(mean(a.downloaded) / S).toFixed(1).padStart(10)} ${(Math.max(...a.uploaded) / S).toFixed(1).padStart(12)}`
    }),
  ]
  return { figures, curves: { propagation_one_to_all: [single, ...one], propagation_round: all }, table }
}
