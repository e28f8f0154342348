import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CodecSettings } from '../codec/index.js'
import { runChild } from './child.js'
import { fig, type BenchResult } from './figures.js'
import type { FuseResult, FusionJob, MakeResult } from './fusion-worker.js'
import { robertaConfig } from './synthetic.js'
import { fusionThreads } from '../fusion/index.js'

/**
 * Decoding + deterministic fusion (fuseRound, as a node runs it) of N deltas against a plain copy
 * of the same payload bytes, in the same process and run: from payloads in memory, and from their
 * files (the daemon's way); and the peak RSS of a process fusing N deltas from files, for several
 * N, to show how memory grows with N.
 */
export interface FusionOptions {
  hidden: number
  layers: number
  /** Delta counts to fuse; the last one is the headline (N = 8). */
  deltas: number[]
  codec: CodecSettings
  repeats: number
  /** Threads fusion uses (default: fusionThreads(), the core count at most 4); each run is also timed on one thread. */
  threads?: number
  /** Also fuse N = max(deltas) dense float32 (f32) deltas of the same model, from memory and from files. */
  dense?: boolean
  /**
   * A larger model for the headline alone (N = max(deltas), from memory and from files), when the
   * series runs at a smaller size: its figures (each names its size) replace the series' own,
   * except the growth in N, which only the series measures.
   */
  headline?: { hidden: number; layers: number }
}

export async function runFusion(o: FusionOptions): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-bench-fusion-'))
  const config = robertaConfig(o.hidden, o.layers)
  const nMax = Math.max(...o.deltas)
  const threads = o.threads ?? fusionThreads()
  try {
    const made = await runChild<MakeResult>('./fusion-worker.js', { mode: 'make', dir, config, deltas: nMax, codec: o.codec } satisfies FusionJob)
    const memory: FuseResult[] = []
    const disk: FuseResult[] = []
    const fuse = (d: string, deltas: number, source: 'memory' | 'disk') => runChild<FuseResult>('./fusion-worker.js', { mode: 'fuse', dir: d, deltas, repeats: o.repeats, source, threads } satisfies FusionJob)
    for (const n of o.deltas) {
      memory.push(await fuse(dir, n, 'memory'))
      disk.push(await fuse(dir, n, 'disk'))
    }
    let result = summarize(o, made, memory, disk)
    // Each set of files replaces the one before on disk: one set at a time.
    if (o.dense) {
      await rm(dir, { recursive: true, force: true })
      const dense = await runChild<MakeResult>('./fusion-worker.js', { mode: 'make', dir, config, deltas: nMax, codec: { codec: 'f32' } } satisfies FusionJob)
      result = addDense(result, dense, await fuse(dir, nMax, 'memory'), await fuse(dir, nMax, 'disk'))
    }
    if (o.headline) {
      await rm(dir, { recursive: true, force: true })
      const big = { ...o, ...o.headline, deltas: [nMax] }
      const madeBig = await runChild<MakeResult>('./fusion-worker.js', { mode: 'make', dir, config: robertaConfig(big.hidden, big.layers), deltas: nMax, codec: o.codec } satisfies FusionJob)
      const head = summarize(big, madeBig, [await fuse(dir, nMax, 'memory')], [await fuse(dir, nMax, 'disk')])
      const { fusion_rss_growth_per_delta_mb: _g, fusion_in_memory_rss_growth_per_delta_mb: _m, ...headFigures } = head.figures
      result = { figures: { ...result.figures, ...headFigures }, curves: { ...result.curves, fusion_headline: head.curves?.fusion ?? [] }, table: [...result.table, ...head.table.slice(0, 4)] }
    }
    return result
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The figures and table line of the dense float32 run. */
function addDense(result: BenchResult, made: MakeResult, m: FuseResult, d: FuseResult): BenchResult {
  const sizes = { deltas: m.deltas, params: made.params, codec: 'f32', payload_mb: Number((made.payloadBytes[0] / MB).toFixed(2)), threads: m.threads }
  const ratio = (r: FuseResult, s: number) => r.memcpySeconds / s
  const figures = {
    fusion_f32_vs_memcpy: fig(ratio(m, m.fuseSeconds), 'ratio (memcpy seconds / fusion seconds, same payload bytes)', sizes, 'as fusion_vs_memcpy, for dense float32 deltas (4 bytes per value)'),
    fusion_f32_one_thread_vs_memcpy: fig(ratio(m, m.fuseOneThreadSeconds), 'ratio', sizes, 'the same on one thread'),
    fusion_f32_from_disk_vs_memcpy: fig(ratio(d, d.fuseSeconds), 'ratio', sizes, 'from the files, as the daemon fuses'),
    fusion_f32_seconds: fig(m.fuseSeconds, 's', sizes),
    fusion_f32_peak_rss_mb: fig(d.peakRssMb, 'MiB (fusion from files)', sizes),
  }
  const line = `  Dense float32 deltas (f32, ${sizes.payload_mb} MiB each), N = ${m.deltas}: memcpy ${m.memcpySeconds.toFixed(4)} s, fusion ${m.fuseSeconds.toFixed(3)} s in memory (ratio ${ratio(m, m.fuseSeconds).toFixed(3)}, one thread ${ratio(m, m.fuseOneThreadSeconds).toFixed(3)}), ${d.fuseSeconds.toFixed(3)} s from disk (ratio ${ratio(d, d.fuseSeconds).toFixed(3)}).`
  return { ...result, figures: { ...result.figures, ...figures }, curves: { ...result.curves, fusion_f32: [m, d] }, table: [...result.table, line] }
}

const MB = 2 ** 20

function growthPerDelta(runs: FuseResult[]): number | null {
  const first = runs[0]
  const last = runs[runs.length - 1]
  return runs.length > 1 ? (last.peakRssMb - first.peakRssMb) / (last.deltas - first.deltas) : null
}

function summarize(o: FusionOptions, made: MakeResult, memory: FuseResult[], disk: FuseResult[]): BenchResult {
  const head = memory[memory.length - 1]
  const dhead = disk[disk.length - 1]
  const payloadMb = made.payloadBytes[0] / MB
  const sizes = { deltas: head.deltas, params: made.params, tensors: made.tensors, codec: o.codec.codec, layout: `roberta hidden ${o.hidden}, ${o.layers} layers, vocab 50265`, payload_mb: Number(payloadMb.toFixed(2)), threads: head.threads }
  const growth = growthPerDelta(disk)
  const memGrowth = growthPerDelta(memory)
  const gb = (bytes: number, s: number) => bytes / s / 1e9
  const ratio = (r: FuseResult) => r.memcpySeconds / r.fuseSeconds
  const fresh = (r: FuseResult) => r.memcpySeconds / r.fuseFreshSeconds
  const single = (r: FuseResult) => r.memcpySeconds / r.fuseOneThreadSeconds
  const figures = {
    fusion_vs_memcpy: fig(ratio(head), 'ratio (memcpy seconds / fusion seconds, same payload bytes)', sizes, `fusion = fuseRound of payloads in (shared) memory on ${head.threads} threads, base hash given, ids verified on receipt, result written into the base it replaces (as a node from its second round): decode fused with float64 accumulation, one rounding; memcpy = one thread copying the payloads from ordinary memory`),
    fusion_one_thread_vs_memcpy: fig(single(head), 'ratio (memcpy seconds / fusion seconds)', sizes, 'the same fusion on one thread (fusionThreads 1)'),
    fusion_from_disk_one_thread_vs_memcpy: fig(single(dhead), 'ratio (memcpy seconds / fusion seconds)', sizes, 'fusion from the files on one thread'),
    fusion_threads: fig(head.threads, 'threads (the caller and its helpers)', sizes),
    memcpy_threads_speedup: fig(head.memcpySeconds / head.memcpyThreadsSeconds!, 'ratio (one-thread copy seconds / copy seconds on fusion_threads threads)', sizes, `the same payload bytes copied split over as many threads as fusion uses, from where fusion reads them to a destination beside them (${head.memcpyThreadsInArena ? 'WebAssembly memory.copy in the kernel arena' : 'Buffer.copy between shared buffers'}): what this machine's memory gives a second thread`),
    memcpy_arena_vs_memcpy: fig(head.memcpySeconds / head.memcpyArenaSeconds!, 'ratio (one-thread copy seconds / the same copy in the arena, one thread)', sizes, 'the arena copy on one thread against the plain copy of ordinary memory (which memcpy_threads_speedup and fusion_vs_memcpy divide by): how far apart the two copies are'),
    fusion_fresh_output_vs_memcpy: fig(fresh(head), 'ratio (memcpy seconds / fusion seconds)', sizes, "the same into a fresh array (a node's first fusion): the new base's page faults on top"),
    fusion_from_disk_vs_memcpy: fig(ratio(dhead), 'ratio (memcpy seconds / fusion seconds)', sizes, 'fusion as the daemon runs it: each thread reads its share of every delta from the files (page cache) piece by piece, each file is hashed whole (sha256 and checksum) by one thread, into the replaced base'),
    fusion_kernel_in_place_vs_memcpy: fig(head.inPlaceKernelSeconds ? head.memcpySeconds / head.inPlaceKernelSeconds : null, 'ratio (memcpy seconds / kernel seconds, one thread)', sizes,
      head.inPlaceKernelSeconds ? "the kernel alone on one thread, every delta's tensor and the base already in its memory (staged whole beforehand, best call per tensor): fusion without its copies of each piece into and out of the kernel's memory, as if bases and payloads lived there" : 'not measured (deltas the kernel does not take at once)'),
    fusion_unverified_vs_memcpy: fig(head.memcpySeconds / head.fuseUnverifiedSeconds!, 'ratio', sizes, 'payloads in memory, ids not verified beforehand: fuseRound hashes each payload once (id and container checksum in one pass)'),
    id_check_vs_memcpy: fig(head.memcpySeconds / head.idHashSeconds!, 'ratio (memcpy seconds / sha256 seconds of the payloads)', sizes, 'the one-time id check on receipt, not part of fusion_vs_memcpy'),
    fusion_seconds: fig(head.fuseSeconds, 's', sizes),
    fusion_from_disk_seconds: fig(dhead.fuseSeconds, 's', sizes),
    fusion_payload_gb_per_s: fig(gb(head.payloadBytes, head.fuseSeconds), 'GB/s of payload', sizes),
    fusion_values_per_s: fig((head.deltas * head.params) / head.fuseSeconds, 'delta values/s', sizes),
    memcpy_gb_per_s: fig(gb(head.payloadBytes, head.memcpySeconds), 'GB/s', sizes),
    fusion_id_check_seconds: fig(head.idHashSeconds!, 's (sha256 of all payloads, done once on receipt)', sizes),
    fusion_decode_seconds: fig(head.decodeSeconds!, 's (streaming every tensor of every delta through the decoder, the codec part of fusion)', sizes),
    decode_vs_memcpy: fig(head.memcpySeconds / head.decodeSeconds!, 'ratio (memcpy seconds / decode seconds)', sizes),
    fusion_fresh_output_seconds: fig(head.fuseFreshSeconds, 's', sizes),
    fusion_output_first_touch_seconds: fig(head.outputTouchSeconds!, 's (writing a fresh model-sized float32 array once: the page faults a fresh result pays, part of fusion_fresh_output_seconds)', sizes),
    fusion_base_hash_seconds: fig(head.baseHashSeconds!, 's (hashing the base; fuseRound does it when the caller does not pass baseHash)', sizes),
    fusion_peak_rss_mb: fig(dhead.peakRssMb, 'MiB (peak RSS of the fusing process: base, result, fusion from files)', sizes),
    fusion_rss_growth_per_delta_mb: fig(growth, 'MiB per extra delta', { ...sizes, deltas: o.deltas.join(',') }, 'fusing from files, as the daemon does: a few small read buffers per delta'),
    fusion_in_memory_peak_rss_mb: fig(head.peakRssMb, 'MiB (the same with the payloads held in memory)', sizes),
    fusion_in_memory_rss_growth_per_delta_mb: fig(memGrowth, 'MiB per extra delta', { ...sizes, deltas: o.deltas.join(',') }, `payloads held in memory (${payloadMb.toFixed(1)} MiB each); fusion itself adds nothing per delta`),
    encode_seconds_per_delta: fig(made.encodeSeconds, 's', { params: made.params, codec: o.codec.codec }),
  }
  const row = (m: FuseResult, d: FuseResult) =>
    `  ${String(m.deltas).padStart(3)} ${m.memcpySeconds.toFixed(4).padStart(9)} ${m.fuseSeconds.toFixed(3).padStart(9)} ${ratio(m).toFixed(3).padStart(7)} ${d.fuseSeconds.toFixed(3).padStart(9)} ${ratio(d).toFixed(3).padStart(7)} ${m.idHashSeconds!.toFixed(3).padStart(12)} ${m.decodeSeconds!.toFixed(3).padStart(9)} ${m.peakRssMb.toFixed(0).padStart(8)} ${d.peakRssMb.toFixed(0).padStart(8)}`
  const table = [
    `Fusion (fuseRound) of N ${o.codec.codec} deltas on ${head.threads} thread(s), ${(made.params / 1e6).toFixed(1)}M params (${sizes.layout}), payload ${payloadMb.toFixed(1)} MiB each`,
    `  ${'N'.padStart(3)} ${'memcpy s'.padStart(9)} ${'memory s'.padStart(9)} ${'ratio'.padStart(7)} ${'disk s'.padStart(9)} ${'ratio'.padStart(7)} ${'id sha256 s'.padStart(12)} ${'decode s'.padStart(9)} ${'RSS mem'.padStart(8)} ${'RSS disk'.padStart(8)}`,
    ...memory.map((m, i) => row(m, disk[i])),
    `  On one thread: ratio ${single(head).toFixed(3)} in memory, ${single(dhead).toFixed(3)} from disk. The same copy in the arena: ${head.memcpyArenaSeconds!.toFixed(4)} s on one thread, ${head.memcpyThreadsSeconds!.toFixed(4)} s split over ${head.threads} (${(head.memcpySeconds / head.memcpyThreadsSeconds!).toFixed(2)}x the one-thread copy's speed).`,
    `  The kernel alone on one thread, deltas and base already in its memory (no copies of pieces in and out): ${head.inPlaceKernelSeconds ? `${head.inPlaceKernelSeconds.toFixed(3)} s, ratio ${(head.memcpySeconds / head.inPlaceKernelSeconds).toFixed(3)}` : 'not measured'}.`,
    `  Fusion writes into the base it replaces (a node from its second round); into a fresh array: ratio ${fresh(head).toFixed(3)} in memory, ${fresh(dhead).toFixed(3)} from disk (first touch of a fresh model-sized array alone: ${head.outputTouchSeconds!.toFixed(3)} s).`,
    `  (RSS in MiB, peak.) Without verified ids: ratio ${(head.memcpySeconds / head.fuseUnverifiedSeconds!).toFixed(3)}; base hash (when not passed): ${head.baseHashSeconds!.toFixed(3)} s; RSS growth per extra delta: ${growth === null ? 'n/a' : growth.toFixed(1)} MiB from disk, ${memGrowth === null ? 'n/a' : memGrowth.toFixed(1)} MiB in memory`,
  ]
  return { figures, curves: { fusion: [...memory, ...disk] }, table }
}
