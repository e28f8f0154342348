import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CodecSettings } from '../codec/index.js'
import type { SimResult } from './central-sim.js'
import { pool, runChild } from './child.js'
import { fig, type BenchResult } from './figures.js'
import type { QualityJob } from './quality-worker.js'
import { REAL_TASKS } from './tasks.js'

/**
 * Bytes vs accuracy: the central simulation (central-sim.ts) of the same 4-node swarm (one real
 * task per node) for each codec, against float32 deltas. Codecs run in parallel processes
 * after a shared first round of training.
 */

export interface QualityOptions {
  dataDir: string
  rounds: number
  steps: number
  trainN: number
  testN: number
  jobs: number
  codecs: CodecSettings[]
  /** Independent repetitions (data sample, initial base, heads, batch order); default 1. */
  seeds?: number
}

/** Seed names: the first is the one every earlier single-seed run used. */
export function seedNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 'bench' : `bench:${i + 1}`))
}

/**
 * Codec sweeps: default = what fits the 15-minute run at 6 rounds (one point per order of
 * magnitude of the curve: 1x, 4x, 28x, 116x); full = the whole curve.
 */
export const DEFAULT_CODECS: CodecSettings[] = [
  { codec: 'f32' },
  { codec: 'q8-block', blockSize: 256 },
  { codec: 'q1-block', blockSize: 256 },
  { codec: 'topk-q4', blockSize: 256, densityPpm: 20_000 },
]

export const FULL_CODECS: CodecSettings[] = [
  { codec: 'f32' },
  { codec: 'q8-block', blockSize: 256 },
  { codec: 'q4-block', blockSize: 256 },
  { codec: 'q1-block', blockSize: 256 },
  { codec: 'topk-f32', densityPpm: 10_000 },
  { codec: 'topk-q8', blockSize: 256, densityPpm: 20_000 },
  { codec: 'topk-q4', blockSize: 256, densityPpm: 20_000 },
  { codec: 'topk-q4', blockSize: 256, densityPpm: 50_000 },
  { codec: 'topk-q1', blockSize: 256, densityPpm: 10_000 },
  { codec: 'topk-q1', blockSize: 256, densityPpm: 30_000 },
  { codec: 'topk-q1', blockSize: 256, densityPpm: 60_000 },
  { codec: 'topk-q1', blockSize: 256, densityPpm: 3_000 },
]

/** The accuracy budget of the compression target (issue 5): within 0.5 points of float32. */
export const MAX_LOSS_POINTS = 0.5
export const TARGET_RATIO = 100

export function codecLabel(c: CodecSettings): string {
  const p = [c.blockSize !== undefined && c.codec !== 'f32' && c.codec !== 'topk-f32' ? `B=${c.blockSize}` : '', c.densityPpm !== undefined ? `${c.densityPpm / 10_000}%` : ''].filter(Boolean)
  return p.length ? `${c.codec} (${p.join(', ')})` : c.codec
}

/**
 * `--codecs` entries: `CODEC[:b=BLOCK][:d=PPM]`, e.g. `topk-q1:d=30000` (3% kept) or
 * `q4-block:b=128`. The registry checks the codec and its settings when a delta is encoded.
 */
export function parseCodecSpec(spec: string): CodecSettings {
  const [codec, ...opts] = spec.trim().split(':')
  if (!codec) throw new Error(`--codecs: empty entry in ${JSON.stringify(spec)}`)
  const c: CodecSettings = { codec }
  for (const o of opts) {
    const m = /^([bd])=(\d+)$/.exec(o)
    if (!m) throw new Error(`--codecs ${spec}: "${o}" is not b=BLOCK_SIZE or d=KEPT_PER_MILLION`)
    if (m[1] === 'b') c.blockSize = Number(m[2])
    else c.densityPpm = Number(m[2])
  }
  if (c.codec !== 'f32' && c.codec !== 'topk-f32' && c.blockSize === undefined) c.blockSize = 256
  return c
}

export interface CurvePoint {
  codec: string
  label: string
  blockSize: number | null
  densityPpm: number | null
  bytes_per_delta: number
  ratio_vs_f32: number
  /** The final base fine-tuned one more round by each node, tested (mean of tasks; mean over seeds). */
  accuracy_pct: number
  /** Sample sd of accuracy_pct over seeds (null with one seed). */
  accuracy_sd_points: number | null
  /** f32 minus this codec, paired by seed, then averaged over seeds. */
  loss_points: number
  /** Sample sd of the paired loss over seeds (null with one seed). */
  loss_sd_points: number | null
  loss_by_seed_points: number[]
  accuracy_by_task_pct: Record<string, number>
  /** The fused base with each node's head, right after each round's fusion (a node's evalAfter). */
  fused_accuracy_by_round_pct: number[]
  fused_loss_points: number
  encode_fraction_of_training: number
}

export async function runQuality(o: QualityOptions): Promise<BenchResult> {
  if (o.codecs[0]?.codec !== 'f32') throw new Error('the quality sweep needs f32 first (the reference)')
  const bySeed: { runs: SimResult[]; round1Seconds: number[] }[] = []
  for (const seed of seedNames(o.seeds ?? 1)) {
    const cacheDir = await mkdtemp(join(tmpdir(), 'cfd-bench-quality-'))
    const base: Omit<QualityJob, 'mode'> = {
      dataDir: o.dataDir, cacheDir, trainN: o.trainN, testN: o.testN, seed, steps: o.steps, batchSize: 16, lr: 2e-3, rounds: o.rounds, backend: 'wasm',
    }
    try {
      const { round1Seconds } = await runChild<{ round1Seconds: number[] }>('./quality-worker.js', { ...base, mode: 'round1' })
      const runs = await pool(o.jobs, o.codecs.map((codec) => () => runChild<{ sim: SimResult }>('./quality-worker.js', { ...base, mode: 'codec', codec })))
      bySeed.push({ runs: runs.map((r) => r.sim), round1Seconds })
    } finally {
      await rm(cacheDir, { recursive: true, force: true })
    }
  }
  return summarize(o, bySeed)
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length
}

function sd(xs: number[]): number | null {
  if (xs.length < 2) return null
  const m = mean(xs)
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1))
}

export function summarize(o: QualityOptions, bySeed: { runs: SimResult[]; round1Seconds: number[] }[]): BenchResult {
  const seeds = bySeed.length
  const pct = (sim: SimResult) => 100 * sim.finetuned.accuracy
  const points: CurvePoint[] = o.codecs.map((c, k) => {
    const sims = bySeed.map((s) => s.runs[k])
    const accs = sims.map(pct)
    // Paired by seed: both arms share the seed's data sample, initial base and first round.
    const losses = bySeed.map((s) => pct(s.runs[0]) - pct(s.runs[k]))
    let encode = 0
    let train = 0
    for (const s of bySeed) {
      s.runs[k].rounds.forEach((r, j) => {
        encode += r.encodeSeconds.reduce((a, b) => a + b, 0)
        train += (j === 0 ? s.round1Seconds : r.trainSeconds).reduce((a, b) => a + b, 0)
      })
    }
    const tasks = Object.keys(sims[0].finetuned.perTask)
    return {
      codec: c.codec,
      label: codecLabel(c),
      blockSize: c.codec === 'f32' || c.codec === 'topk-f32' ? null : (c.blockSize ?? 256),
      densityPpm: c.densityPpm ?? null,
      bytes_per_delta: Math.round(mean(sims.flatMap((sim) => sim.rounds.flatMap((r) => r.bytes)))),
      ratio_vs_f32: 0,
      accuracy_pct: mean(accs),
      accuracy_sd_points: sd(accs),
      loss_points: mean(losses),
      loss_sd_points: sd(losses),
      loss_by_seed_points: losses,
      accuracy_by_task_pct: Object.fromEntries(tasks.map((t) => [t, mean(sims.map((sim) => 100 * sim.finetuned.perTask[t]))])),
      fused_accuracy_by_round_pct: sims[0].rounds.map((_, r) => mean(sims.map((sim) => 100 * sim.rounds[r].accuracy))),
      fused_loss_points: 0,
      encode_fraction_of_training: encode / train,
    }
  })
  const ref = points[0]
  for (const p of points) {
    p.ratio_vs_f32 = ref.bytes_per_delta / p.bytes_per_delta
    p.fused_loss_points = ref.fused_accuracy_by_round_pct[o.rounds - 1] - p.fused_accuracy_by_round_pct[o.rounds - 1]
  }
  const sizes = { seeds, nodes: REAL_TASKS.length, tasks: REAL_TASKS.join(','), rounds: o.rounds, steps_per_round: o.steps, batch: 16, train_examples_per_node: o.trainN, test_examples_per_node: o.testN, params: 206_592, codecs: points.length }
  const meeting = points.filter((p) => p.loss_points <= MAX_LOSS_POINTS)
  const best = meeting.reduce((a, b) => (b.ratio_vs_f32 > a.ratio_vs_f32 ? b : a), ref)
  const q8 = points.find((p) => p.codec === 'q8-block')
  const at100 = points.filter((p) => p.ratio_vs_f32 >= TARGET_RATIO)
  const best100 = at100.length ? at100.reduce((a, b) => (b.loss_points < a.loss_points ? b : a)) : undefined
  const figures = {
    compression_ratio: fig(best.ratio_vs_f32, 'x (f32 payload bytes / payload bytes)', { ...sizes, codec: best.label, f32_payload_bytes: ref.bytes_per_delta, payload_bytes: best.bytes_per_delta }, `highest ratio among codecs whose loss, averaged over ${seeds} seed(s) paired with f32, is within ${MAX_LOSS_POINTS} points`),
    compression_accuracy_loss_points: fig(best.loss_points, 'accuracy points (f32 - codec; final base fine-tuned one round per task, mean of 4 tasks, mean over seeds)', { ...sizes, codec: best.label }),
    compression_accuracy_loss_sd_points: fig(best.loss_sd_points, 'accuracy points (sample sd over seeds of the paired loss)', { ...sizes, codec: best.label }, seeds < 2 ? 'one seed: run with --seeds 3 for a spread' : undefined),
    compression_accuracy_f32_pct: fig(ref.accuracy_pct, '% (final f32 base fine-tuned one round per task, mean test accuracy)', sizes),
    compression_fused_accuracy_f32_pct: fig(ref.fused_accuracy_by_round_pct[o.rounds - 1], '% (final f32 base with each node head, no further training)', sizes),
    compression_spread_points: fig(q8 ? Math.abs(q8.loss_points) : null, 'accuracy points (|f32 - q8-block|)', sizes, q8 ? 'q8-block changes each value by under 1%: its distance to f32 is the run-to-run spread of this measurement' : 'needs q8-block in the sweep'),
    compression_best_loss_at_100x_points: fig(best100?.loss_points ?? null, 'accuracy points', { ...sizes, codec: best100?.label ?? 'none' }, best100 ? 'lowest loss among codecs with >= 100x' : 'no codec in this sweep reached 100x'),
    compression_best_loss_at_100x_sd_points: fig(best100?.loss_sd_points ?? null, 'accuracy points (sample sd over seeds)', { ...sizes, codec: best100?.label ?? 'none' }, !best100 ? 'no codec in this sweep reached 100x' : seeds < 2 ? 'one seed: run with --seeds 3 for a spread' : undefined),
    encode_fraction_of_training: fig(best.encode_fraction_of_training, 'fraction (encode + error feedback seconds / local training seconds)', { ...sizes, codec: best.label }),
    encode_fraction_of_training_max: fig(Math.max(...points.map((p) => p.encode_fraction_of_training)), 'fraction', { ...sizes, codec: points.reduce((a, b) => (b.encode_fraction_of_training > a.encode_fraction_of_training ? b : a)).label }),
  }
  const sdText = (x: number | null) => (x === null ? '' : ` ± ${x.toFixed(2)}`)
  const table = [
    `Compression vs accuracy: ${REAL_TASKS.length} nodes (${REAL_TASKS.join(', ')}), ${o.rounds} rounds x ${o.steps} steps, ${o.trainN} train / ${o.testN} test per task, built-in model (206,592 body params), ${seeds} seed(s)`,
    `  accuracy = final base fine-tuned one more round per task; fused = final base with each node's head (evalAfter); both mean of the 4 tasks and of the seeds;`,
    `  vs f32 = codec - f32 paired by seed, mean ± sd over seeds`,
    `  ${'codec'.padEnd(28)} ${'bytes/delta'.padStart(11)} ${'ratio'.padStart(7)} ${'accuracy'.padStart(9)} ${'vs f32'.padStart(14)}  ${'fused by round'.padEnd(6 * o.rounds)} encode/train`,
    ...points.map((p) => `  ${p.label.padEnd(28)} ${String(p.bytes_per_delta).padStart(11)} ${p.ratio_vs_f32.toFixed(1).padStart(6)}x ${p.accuracy_pct.toFixed(2).padStart(8)}% ${(`${(-p.loss_points).toFixed(2)}${sdText(p.loss_sd_points)}`).padStart(14)}  ${p.fused_accuracy_by_round_pct.map((a) => a.toFixed(1).padStart(5)).join(' ').padEnd(6 * o.rounds)} ${(100 * p.encode_fraction_of_training).toFixed(2)}%`),
  ]
  return { figures, curves: { compression: points }, table }
}
