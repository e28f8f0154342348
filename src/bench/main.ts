import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { fig, type BenchResult, type Figures } from './figures.js'
import { runFusion } from './fusion.js'
import { runPropagation, type PropagationOptions } from './propagation.js'
import { runSimBench, type SimBenchOptions } from './sim.js'
import { DEFAULT_CODECS, FULL_CODECS, parseCodecSpec, runQuality } from './quality.js'
import { runTrainStep } from './train-step.js'

/**
 * `npm run bench`: every benchmark of issue 5 at sizes that fit a 2-core machine in 15 minutes
 * (--full: the sizes the targets name; --smoke: seconds, for CI), a readable table on stdout
 * (stderr with --json, which prints the JSON instead) and one JSON file with every figure.
 */

const BENCHES = ['train', 'fusion', 'propagation', 'quality', 'sim'] as const
type Bench = (typeof BENCHES)[number]
type Mode = 'smoke' | 'default' | 'full'

const HELP = `Usage: npm run bench -- [options]

  --json             print the JSON result on stdout (the table goes to stderr)
  --full             full sizes: fusion of 2, 4 and 8 deltas at 125M params (q8 deltas, then dense
                     f32 ones; default: at 30M, and 8 q8 deltas at 125M for the headline), quality over
                     12 codecs and 3 seeds, 32 MiB propagation, simulated swarms of up to 32 nodes all
                     training and up to 64 with 8 drawn to train each round (default: 8 and 16 all
                     training, 16, 32 and 64 with 8 drawn, 300 s per swarm; 64 only when its time,
                     predicted from 32's, fits in what is left of the default run's 14 minutes)
  --smoke            tiny sizes (seconds; what CI runs)
  --only LIST        comma-separated subset of: ${BENCHES.join(', ')}
  --out FILE         where to write the JSON (default bench-results/latest.json; with --only,
                     bench-results/latest-ONLY.json, so a partial run keeps the whole run's file)
  --data DIR         the real task data (default ../shared/data; the quality bench is skipped without it)
  --jobs N           parallel processes for the quality sweep (default 2)
  --rounds N         quality: rounds per codec (default 6)
  --seeds N          quality: independent repetitions, losses paired with f32 by seed (default 1; full 3)
  --codecs LIST      quality: codecs to sweep, f32 first, each CODEC[:b=BLOCK][:d=KEPT_PER_MILLION],
                     e.g. f32,q8-block,topk-q1:d=30000 (default: the size's sweep)
  --install-torch    apt-get install python3-torch libopenblas0-pthread for the PyTorch reference

At default and full sizes, propagation also runs behind emulated 20 Mbit/s links (one network
namespace per node, tc tbf) when run as root with iproute2's ip and tc; otherwise that part is
skipped and its figure says why.
`

interface Sizes {
  quality: { rounds: number; steps: number; trainN: number; testN: number; seeds: number; codecs: typeof DEFAULT_CODECS }
  fusion: { hidden: number; layers: number; deltas: number[]; repeats: number; headline?: { hidden: number; layers: number } }
  propagation: PropagationOptions
  train: { batches: number[]; wasmSteps: number; cpuSteps: number; loopSteps: number; repeats: number; torch: boolean }
  sim: SimBenchOptions
}

const SIZES: Record<Mode, Sizes> = {
  smoke: {
    quality: { rounds: 2, steps: 2, trainN: 64, testN: 32, seeds: 1, codecs: [{ codec: 'f32' }, { codec: 'topk-q1', blockSize: 256, densityPpm: 30_000 }] },
    fusion: { hidden: 64, layers: 1, deltas: [1, 2], repeats: 1, headline: { hidden: 128, layers: 1 } },
    propagation: { nodes: [8], payloadBytes: 64 * 1024, repeats: 1 },
    train: { batches: [4], wasmSteps: 1, cpuSteps: 1, loopSteps: 2, repeats: 1, torch: false },
    sim: { series: [{ nodes: [4] }, { nodes: [5], contributorsPerRound: 2 }], rounds: 2, timeoutSec: 120 },
  },
  default: {
    quality: { rounds: 6, steps: 100, trainN: 2000, testN: 500, seeds: 1, codecs: DEFAULT_CODECS },
    // The series in N at 30.3M parameters; the headline (N = 8) at the 124.6M the target names.
    fusion: { hidden: 384, layers: 6, deltas: [2, 4, 8], repeats: 3, headline: { hidden: 768, layers: 12 } },
    propagation: { nodes: [4, 8, 16], payloadBytes: 4 * 2 ** 20, repeats: 2, links: { mbit: 20, nodes: [4, 8] } },
    train: { batches: [16, 64], wasmSteps: 10, cpuSteps: 2, loopSteps: 30, repeats: 5, torch: true },
    // 64 nodes when the machine leaves time for them (BUDGET_SEC); --full always runs them.
    sim: { series: [{ nodes: [8, 16] }, { nodes: [16, 32, 64], contributorsPerRound: 8 }], rounds: 3, timeoutSec: 300 },
  },
  full: {
    quality: { rounds: 6, steps: 100, trainN: 2000, testN: 500, seeds: 3, codecs: FULL_CODECS },
    fusion: { hidden: 768, layers: 12, deltas: [2, 4, 8], repeats: 3 },
    propagation: { nodes: [4, 8, 16], payloadBytes: 32 * 2 ** 20, repeats: 2, links: { mbit: 20, nodes: [4, 8, 16] } },
    train: { batches: [16, 64], wasmSteps: 20, cpuSteps: 3, loopSteps: 100, repeats: 3, torch: true },
    sim: { series: [{ nodes: [8, 16, 32] }, { nodes: [8, 16, 32, 64], contributorsPerRound: 8 }], rounds: 4, timeoutSec: 1800 },
  },
}

/** The default run's time budget (its build and start-up come on top): under 15 minutes in all. */
const BUDGET_SEC = 840

/** The figures the issue names, with their targets, in the summary table. */
const HEADLINE: [string, string][] = [
  ['compression_ratio', '>= 100x'],
  ['compression_accuracy_loss_points', '<= 0.5'],
  ['encode_fraction_of_training', 'small'],
  ['fusion_vs_memcpy', '>= 0.5 (N=8, 125M)'],
  ['fusion_one_thread_vs_memcpy', '(fusionThreads 1)'],
  ['fusion_f32_vs_memcpy', '(dense float32 deltas)'],
  ['fusion_kernel_in_place_vs_memcpy', '(one thread, no copies)'],
  ['memcpy_threads_speedup', '(copy on fusion_threads threads)'],
  ['fusion_from_disk_vs_memcpy', '(the daemon reads files)'],
  ['fusion_peak_rss_mb', 'flat in N'],
  ['fusion_rss_growth_per_delta_mb', '~0'],
  ['propagation_vs_single_transfer', '<= 2 (8 nodes)'],
  ['propagation_links_vs_single_transfer', '<= 2 (8 nodes)'],
  ['train_step_vs_pytorch', '<= 5 (batch 16)'],
  ['train_step_vs_pytorch_b64', '<= 5 (batch 64)'],
  ['train_loop_overhead', '<= 0.10'],
  ['sim_nodes_max', '64'],
  ['sim_round_time_exponent', ''],
  ['sim_memory_exponent', ''],
]

function machine() {
  const c = cpus()
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)), node: process.version, platform: `${process.platform} ${process.arch}`, load_average_at_start: loadavg().map((x) => Number(x.toFixed(2))) }
}

function defaultDataDir(): string {
  for (const d of [resolve('../shared/data'), resolve('shared/data')]) if (existsSync(d)) return d
  return resolve('../shared/data')
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      jobs: { type: 'string', default: '2' },
      rounds: { type: 'string' },
      seeds: { type: 'string' },
      codecs: { type: 'string' },
      'install-torch': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const mode: Mode = values.smoke ? 'smoke' : values.full ? 'full' : 'default'
  const sizes = SIZES[mode]
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...BENCHES]
  const outFile = values.out ?? (values.only ? `bench-results/latest-${only.join('-')}.json` : 'bench-results/latest.json')
  const unknown = only.filter((b) => !(BENCHES as readonly string[]).includes(b))
  if (unknown.length) throw new Error(`--only: unknown benchmark ${unknown.join(', ')} (known: ${BENCHES.join(', ')})`)
  const jobs = Number(values.jobs)
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error('--jobs must be a positive integer')
  const rounds = values.rounds === undefined ? sizes.quality.rounds : Number(values.rounds)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer')
  const seeds = values.seeds === undefined ? sizes.quality.seeds : Number(values.seeds)
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error('--seeds must be a positive integer')
  const codecs = values.codecs === undefined ? sizes.quality.codecs : values.codecs.split(',').map(parseCodecSpec)
  if (codecs[0]?.codec !== 'f32') throw new Error('--codecs must start with f32 (the reference every loss is measured against)')
  const dataDir = resolve(values.data ?? defaultDataDir())
  const say = (line: string) => (values.json ? process.stderr : process.stdout).write(line + '\n')

  const started = new Date()
  const startMachine = machine()
  const t0 = performance.now()
  const figures: Figures = {}
  const curves: Record<string, unknown[]> = {}
  const tables: string[][] = []
  const errors: Record<string, string> = {}
  const timings: Record<string, number> = {}
  const runs: Record<Bench, () => Promise<BenchResult>> = {
    train: () => runTrainStep({ ...sizes.train, torchThreads: 1, installTorch: values['install-torch'] ?? false }),
    fusion: () => runFusion({ ...sizes.fusion, codec: { codec: 'q8-block', blockSize: 256 }, dense: true }),
    propagation: () => runPropagation(sizes.propagation),
    // Last to run: it takes what the others left of the default run's time budget.
    sim: () => runSimBench(mode === 'default' ? { ...sizes.sim, budgetSec: BUDGET_SEC - (performance.now() - t0) / 1000 } : sizes.sim),
    quality: async () => {
      if (!existsSync(dataDir)) {
        return { figures: { compression_ratio: fig(null, 'x', {}, `no task data at ${dataDir} (--data DIR)`), compression_accuracy_loss_points: fig(null, 'accuracy points', {}, `no task data at ${dataDir}`) }, table: [`Compression vs accuracy: skipped, no task data at ${dataDir}`] }
      }
      return runQuality({ dataDir, ...sizes.quality, rounds, seeds, codecs, jobs })
    },
  }
  say(`coldfusiond bench (${mode}): ${only.join(', ')}`)
  for (const b of BENCHES) {
    if (!only.includes(b)) continue
    const s = performance.now()
    say(`- ${b} ...`)
    try {
      const r = await runs[b]()
      Object.assign(figures, r.figures)
      Object.assign(curves, r.curves ?? {})
      tables.push(r.table)
      for (const line of r.table) say(line)
    } catch (err) {
      errors[b] = err instanceof Error ? err.message : String(err)
      say(`  ${b} failed: ${errors[b]}`)
    }
    timings[b] = Number(((performance.now() - s) / 1000).toFixed(1))
  }

  const result = {
    schema: 'coldfusiond-bench/1',
    mode,
    started: started.toISOString(),
    seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    seconds_by_bench: timings,
    // The machine may be shared: the load says how much of it the run had.
    machine: { ...startMachine, load_average_at_end: loadavg().map((x) => Number(x.toFixed(2))) },
    figures,
    curves,
    errors,
  }
  const summary = [
    `Headline figures (${mode} sizes; full JSON in ${outFile})`,
    `  ${'figure'.padEnd(34)} ${'value'.padStart(12)}  ${'target'.padEnd(20)} sizes`,
    ...HEADLINE.filter(([n]) => n in figures).map(([n, target]) => {
      const f = figures[n]
      const v = f.value === null ? 'n/a' : Math.abs(f.value) >= 100 ? f.value.toFixed(0) : f.value.toFixed(3)
      const sz = Object.entries(f.sizes).filter(([k]) => ['codec', 'nodes', 'deltas', 'params', 'batch'].includes(k)).map(([k, x]) => `${k} ${x}`).join(', ')
      return `  ${n.padEnd(34)} ${v.padStart(12)}  ${target.padEnd(20)} ${sz}`
    }),
    `Machine: ${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.memory_gib} GiB, Node ${result.machine.node}; load average ${result.machine.load_average_at_start[0]} at start, ${result.machine.load_average_at_end[0]} at end; ${result.seconds} s`,
  ]
  say('')
  for (const line of summary) say(line)
  const out = resolve(outFile)
  await mkdir(dirname(out), { recursive: true })
  await writeFile(out, JSON.stringify(result, null, 2) + '\n')
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  return Object.keys(errors).length === 0 ? 0 : 1
}
