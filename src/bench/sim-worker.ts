import { runSim, type SimResult } from '../sim/run.js'
import { silentLogger } from '../util/log.js'
import { childMain } from './child.js'

/** One simulated swarm in a fresh process, so its RSS is its own. */
export interface SimJob {
  nodes: number
  rounds: number
  timeoutSec: number
}

childMain<SimJob, SimResult>((job) => runSim({ nodes: job.nodes, rounds: job.rounds, timeoutSec: job.timeoutSec, log: silentLogger() }))
