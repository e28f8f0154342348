import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = resolve(fileURLToPath(new URL('../..', import.meta.url)))

/** The named figures: every run reports them, with a value or a null and a note. */
const NAMED = [
  'compression_ratio',
  'compression_accuracy_loss_points',
  'fusion_vs_memcpy',
  'fusion_peak_rss_mb',
  'propagation_vs_single_transfer',
  'train_loop_overhead',
  'train_step_vs_pytorch',
  'sim_nodes_max',
]

interface Figure {
  value: number | null
  unit: string
  sizes: Record<string, unknown>
  note?: string
}

// A smoke run of the benchmarks at tiny sizes: structure and sanity, never timing thresholds.
describe('bench (smoke)', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cfd-bench-test-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('a partial run (--only) writes its own file and leaves the whole run\'s latest.json alone', async function () {
    this.timeout(120_000)
    const cwd = await mkdtemp(join(dir, 'cwd-'))
    await run(process.execPath, [join(root, 'bin/bench.js'), '--smoke', '--only', 'fusion'], { cwd })
    const part = JSON.parse(await readFile(join(cwd, 'bench-results', 'latest-fusion.json'), 'utf8'))
    assert.deepEqual(Object.keys(part.seconds_by_bench), ['fusion'])
    assert.ok(!existsSync(join(cwd, 'bench-results', 'latest.json')))
  })

  it('runs every benchmark, prints the JSON on stdout and writes the same file', async function () {
    this.timeout(900_000)
    const out = join(dir, 'latest.json')
    const { stdout } = await run(process.execPath, [join(root, 'bin/bench.js'), '--smoke', '--json', '--jobs', '1', '--out', out], { cwd: root, maxBuffer: 64 * 2 ** 20 })
    const printed = JSON.parse(stdout)
    const written = JSON.parse(await readFile(out, 'utf8'))
    assert.deepEqual(printed, written)
    assert.equal(printed.schema, 'coldfusiond-bench/1')
    assert.equal(printed.mode, 'smoke')
    assert.deepEqual(printed.errors, {})
    assert.ok(printed.machine.cores >= 1 && typeof printed.machine.cpu === 'string')
    const figures = printed.figures as Record<string, Figure>
    for (const name of NAMED) assert.ok(name in figures, `missing figure ${name}`)
    for (const [name, f] of Object.entries(figures)) {
      assert.ok(typeof f.unit === 'string' && f.unit.length > 0, `${name}: unit`)
      assert.ok(typeof f.sizes === 'object' && f.sizes !== null, `${name}: sizes`)
      assert.ok(f.value === null ? typeof f.note === 'string' : Number.isFinite(f.value), `${name}: a number, or null with a note`)
    }
    const v = (name: string) => figures[name].value!
    assert.ok(v('fusion_vs_memcpy') > 0)
    assert.ok(v('fusion_f32_vs_memcpy') > 0, 'dense float32 deltas are fused too')
    assert.ok(v('fusion_kernel_in_place_vs_memcpy') > 0, 'the kernel is timed alone, without its copies')
    assert.ok(v('fusion_peak_rss_mb') > 10)
    // The headline at its own, larger model; the growth in N from the series at the smaller one.
    assert.ok(Number(figures.fusion_vs_memcpy.sizes.params) > Number(figures.fusion_rss_growth_per_delta_mb.sizes.params))
    assert.equal(figures.fusion_vs_memcpy.sizes.deltas, 2)
    assert.equal(figures.fusion_rss_growth_per_delta_mb.sizes.deltas, '1,2')
    assert.ok(v('propagation_vs_single_transfer') > 0)
    assert.equal(figures.propagation_vs_single_transfer.sizes.nodes, 8)
    assert.ok(v('train_step_ms_wasm_b4') > 0 && v('train_step_ms_cpu_b4') > 0)
    assert.ok(v('train_loop_overhead') > -1)
    // The smoke simulates a 4-node swarm and a 5-node one with 2 drawn contributors; both must agree.
    assert.equal(figures.sim_nodes_max.value, 5)
    assert.ok(v('sim_round_seconds_4_nodes') > 0 && v('sim_round_seconds_5_nodes_drawn2') > 0)
    // The download per node in a round is every other node's delta.
    const S = figures.round_download_bytes_per_node_8_nodes.sizes.payload_bytes as number
    assert.equal(v('round_download_bytes_per_node_8_nodes'), 7 * S)
    if (existsSync(join(root, '../shared/data'))) {
      const curve = printed.curves.compression as { codec: string; ratio_vs_f32: number; accuracy_pct: number }[]
      assert.deepEqual(curve.map((p) => p.codec), ['f32', 'topk-q1'])
      assert.equal(curve[0].ratio_vs_f32, 1)
      assert.ok(curve[1].ratio_vs_f32 > 50)
      for (const p of curve) assert.ok(p.accuracy_pct >= 0 && p.accuracy_pct <= 100)
      assert.ok(v('compression_ratio') >= 1)
    }
  })

  it('the sim part does not start a swarm whose predicted time overruns its budget, and says so', async function () {
    this.timeout(300_000)
    const { runSimBench } = await import('../src/bench/sim.js')
    // 3 nodes take a few seconds; 60 would take about (60/3)^2.5 = 1789 times as long.
    const r = await runSimBench({ series: [{ nodes: [3, 60] }], rounds: 1, timeoutSec: 120, budgetSec: 600 })
    assert.equal(r.figures.sim_nodes_max.value, 3)
    assert.match(r.figures.sim_nodes_max.note ?? '', /60 nodes: not run, about \d+ s predicted \(3 nodes took \d+ s.*over the \d+ s left of the bench's time budget; --full runs it/)
    assert.ok(r.table.some((l) => l.includes('stopped: 60 nodes: not run')))
  })

  it('explains its options', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'bin/bench.js'), '--help'], { cwd: root })
    assert.match(stdout, /--full/)
    assert.match(stdout, /--json/)
  })
})
