import cliProgress from 'cli-progress'
import type { NodeStatus } from '../rounds/status.js'
import type { Logger } from '../util/log.js'

/**
 * Progress of a mesh: one bar per node on a terminal; otherwise a structured log line whenever
 * a node changes round or phase (CI logs stay readable).
 */
export class MeshProgress {
  private readonly bars?: cliProgress.MultiBar
  private readonly rows: cliProgress.SingleBar[] = []
  private readonly last: string[] = []
  private stopped = false

  constructor(private readonly nodes: { name: string; task: string }[], private readonly rounds: number, private readonly log: Logger) {
    if (process.stderr.isTTY) {
      this.bars = new cliProgress.MultiBar(
        {
          stream: process.stderr,
          format: '{name} {task} |{bar}| round {round}/{rounds} {phase}',
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          autopadding: true,
        },
        cliProgress.Presets.shades_classic,
      )
      for (const n of nodes) {
        this.rows.push(this.bars.create(rounds * 100, 0, { name: n.name.padEnd(7), task: n.task.padEnd(12), round: 0, rounds, phase: 'starting' }))
      }
    }
  }

  update(statuses: (NodeStatus | undefined)[]): void {
    if (this.stopped) return
    statuses.forEach((s, i) => {
      if (!s) return
      const frac = s.phase === 'done' ? 0 : s.progress && s.phase === 'training' ? (0.8 * s.progress.step) / Math.max(1, s.progress.total) : phaseFraction(s.phase)
      const value = Math.min(this.rounds * 100, Math.round((s.round + frac) * 100))
      const detail = s.phase === 'training' && s.progress ? `training ${s.progress.step}/${s.progress.total}` : s.phase
      const acc = s.lastMetrics?.evalAfter
      const phase = `${detail}${acc !== undefined && acc !== null ? `  acc ${acc.toFixed(3)}` : ''}`
      if (this.bars) {
        this.rows[i].update(value, { round: Math.min(s.working ?? s.round, this.rounds), phase })
      } else {
        const key = `${s.round}:${s.phase}`
        if (this.last[i] !== key) {
          this.last[i] = key
          this.log.info({ node: this.nodes[i].name, round: s.round, working: s.working, phase: s.phase, evalAfter: acc }, 'mesh progress')
        }
      }
    })
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.bars?.stop()
  }
}

function phaseFraction(phase: string): number {
  switch (phase) {
    case 'collecting':
    case 'stalled':
      return 0.85
    case 'voting':
      return 0.9
    case 'fusing':
    case 'committing':
      return 0.95
    default:
      return 0
  }
}
