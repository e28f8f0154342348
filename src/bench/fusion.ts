import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CodecSettings } from '../codec/index.js'
import { runChild } from './child.js'
import { fig, type BenchResult } from './figures.js'
import type { FuseResult, FusionJob, MakeResult } from './fusion-worker.js'
import { robertaConfig } from './synthetic.js'

/**
 * Decoding + deterministic fusion (fuseRound, as a node runs it) of N deltas against a plain copy
 * of the same payload bytes, in the same process and run; and the peak RSS of a process that
 * fuses N deltas, for several N, to show how memory grows with N.
 */
export interface FusionOptions {
  hidden: number
  layers: number
  /** Delta counts to fuse; the last one is the headline (N = 8). */
  deltas: number[]
  codec: CodecSettings
  repeats: number
}

export async function runFusion(o: FusionOptions): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-bench-fusion-'))
  const config = robertaConfig(o.hidden, o.layers)
  const nMax = Math.max(...o.deltas)
  try {
    const made = await runChild<MakeResult>('./fusion-worker.js', { mode: 'make', dir, config, deltas: nMax, codec: o.codec } satisfies FusionJob)
    const runs: FuseResult[] = []
    for (const n of o.deltas) runs.push(await runChild<FuseResult>('./fusion-worker.js', { mode: 'fuse', dir, deltas: n, repeats: o.repeats } satisfies FusionJob))
    return summarize(o, made, runs)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const MB = 2 ** 20

function summarize(o: FusionOptions, made: MakeResult, runs: FuseResult[]): BenchResult {
  const head = runs[runs.length - 1]
  const first = runs[0]
  const payloadMb = made.payloadBytes[0] / MB
  const sizes = { deltas: head.deltas, params: made.params, tensors: made.tensors, codec: o.codec.codec, layout: `roberta hidden ${o.hidden}, ${o.layers} layers, vocab 50265`, payload_mb: Number(payloadMb.toFixed(2)) }
  const growth = runs.length > 1 ? (head.peakRssMb - first.peakRssMb) / (head.deltas - first.deltas) : null
  const gb = (bytes: number, s: number) => bytes / s / 1e9
  const figures = {
    fusion_vs_memcpy: fig(head.memcpySeconds / head.fuseSeconds, 'ratio (memcpy seconds / fusion seconds, same payload bytes)', sizes, 'fusion = fuseRound with the base hash given: id check (sha256 of every payload), decode, float64 accumulation, one rounding'),
    fusion_vs_memcpy_without_id_check: fig(head.memcpySeconds / (head.fuseSeconds - head.idHashSeconds), 'ratio', sizes, 'the same, minus the time of hashing the payloads'),
    fusion_seconds: fig(head.fuseSeconds, 's', sizes),
    fusion_payload_gb_per_s: fig(gb(head.payloadBytes, head.fuseSeconds), 'GB/s of payload', sizes),
    fusion_values_per_s: fig((head.deltas * head.params) / head.fuseSeconds, 'delta values/s', sizes),
    memcpy_gb_per_s: fig(gb(head.payloadBytes, head.memcpySeconds), 'GB/s', sizes),
    fusion_id_check_seconds: fig(head.idHashSeconds, 's (sha256 of all payloads, part of fusion_seconds)', sizes),
    fusion_decode_seconds: fig(head.decodeSeconds, 's (decoding all payloads into a reused buffer, the codec part of fusion_seconds)', sizes),
    decode_vs_memcpy: fig(head.memcpySeconds / head.decodeSeconds, 'ratio (memcpy seconds / decode seconds)', sizes),
    fusion_base_hash_seconds: fig(head.baseHashSeconds, 's (hashing the base; fuseRound does it when the caller does not pass baseHash)', sizes),
    fusion_peak_rss_mb: fig(head.peakRssMb, 'MiB (peak RSS of the fusing process: base, payloads, fusion)', sizes),
    fusion_rss_growth_per_delta_mb: fig(growth, 'MiB per extra delta', { ...sizes, deltas: o.deltas.join(',') }, `the payloads are held in memory (${payloadMb.toFixed(1)} MiB each); decoding adds nothing per delta`),
    encode_seconds_per_delta: fig(made.encodeSeconds, 's', { params: made.params, codec: o.codec.codec }),
  }
  const table = [
    `Fusion (fuseRound) of N ${o.codec.codec} deltas, ${(made.params / 1e6).toFixed(1)}M params (${sizes.layout}), payload ${payloadMb.toFixed(1)} MiB each`,
    `  ${'N'.padStart(3)} ${'fusion s'.padStart(9)} ${'memcpy s'.padStart(9)} ${'ratio'.padStart(7)} ${'id sha256 s'.padStart(12)} ${'decode s'.padStart(9)} ${'GB/s'.padStart(6)} ${'peak RSS MiB'.padStart(13)}`,
    ...runs.map((r) => `  ${String(r.deltas).padStart(3)} ${r.fuseSeconds.toFixed(3).padStart(9)} ${r.memcpySeconds.toFixed(4).padStart(9)} ${(r.memcpySeconds / r.fuseSeconds).toFixed(3).padStart(7)} ${r.idHashSeconds.toFixed(3).padStart(12)} ${r.decodeSeconds.toFixed(3).padStart(9)} ${gb(r.payloadBytes, r.fuseSeconds).toFixed(2).padStart(6)} ${r.peakRssMb.toFixed(0).padStart(13)}`),
    `  base hash (when not passed to fuseRound): ${head.baseHashSeconds.toFixed(3)} s; RSS growth per extra delta: ${growth === null ? 'n/a' : growth.toFixed(1)} MiB`,
  ]
  return { figures, curves: { fusion: runs }, table }
}
