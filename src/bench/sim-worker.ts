import { runSim, type SimResult } from '../sim/run.js'
import { silentLogger } from '../util/log.js'
import { childMain } from './child.js'

/** One simulated swarm in a fresh process, so its RSS is its own. */
export interface SimJob {
  nodes: number
  rounds: number
  timeoutSec: number
  /** Nodes drawn to train each round (default every node). */
  contributorsPerRound?: number
}

/** A swarm that misses its budget is a result (the largest N that agreed), not a crash. */
childMain<SimJob, SimResult | { error: string }>((job) =>
  runSim({ nodes: job.nodes, rounds: job.rounds, timeoutSec: job.timeoutSec, contributorsPerRound: job.contributorsPerRound, log: silentLogger() }).catch((err: Error) => ({ error: err.message })))
