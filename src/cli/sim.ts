import { Option, type Command } from 'commander'
import { createLogger } from '../util/log.js'
import { LOG_LEVELS } from '../config/node.js'
import { UserError } from '../util/errors.js'
import { runSim } from '../sim/run.js'
import { simTable, steadyRoundSeconds } from '../sim/report.js'
import { int } from './options.js'

/** `coldfusiond sim`: many real daemons in this process over the libp2p memory transport. */
export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('Simulate a swarm in this process: N real daemons (the same round, gossip and fetch code as `start`) over the libp2p memory transport, on a tiny built-in model and generated data; print time per round, agreement and memory; exit 0 only if every node committed the same base hash every round and the hashes recompute')
    .option('--nodes <n>', 'number of nodes (2 to 256)', int('--nodes', 2), 8)
    .option('--rounds <n>', 'number of rounds', int('--rounds', 1), 3)
    .option('--steps <n>', 'local training steps per round (batch 8)', int('--steps', 1), 2)
    .option('--examples <n>', 'generated examples per node (a fifth held out)', int('--examples', 10), 60)
    .option('--contributors-per-round <k>', 'draw k nodes to train each round, as a swarm with contributorsPerRound does; the others fetch, vote and fuse (default: every node trains)', int('--contributors-per-round', 1))
    .option('--min-contributors <n>', 'contributors a round needs (default: every node that trains)', int('--min-contributors', 1))
    .option('--max-peers <k>', 'each node dials peers only while connected to fewer than k (the node setting maxPeers)', int('--max-peers', 1), 8)
    .option('--bootstrap-peers <k>', 'bootstrap each node to k ring/chord peers (default: half of --max-peers when that bounds the swarm, else every earlier node)', int('--bootstrap-peers', 1))
    .option('--seed <seed>', 'seed of identities, data and the round-0 base (same seed, same hashes)', 'coldfusion-sim')
    .option('--dir <dir>', 'keep the node homes here (default: a temporary directory, removed at the end)')
    .option('--timeout <sec>', 'give up after this many seconds', int('--timeout', 10), 1800)
    .addOption(new Option('--log-level <level>', 'level of the nodes\' log (JSON lines on stderr)').choices([...LOG_LEVELS]).default('error'))
    .option('--json', 'print one JSON object at the end instead of the table')
    .action(async (o) => {
      if (o.nodes > 256) throw new UserError('--nodes must be at most 256')
      if (o.minContributors !== undefined && o.minContributors > Math.min(o.nodes, o.contributorsPerRound ?? o.nodes)) throw new UserError('--min-contributors cannot exceed --nodes or --contributors-per-round')
      const log = createLogger({ level: o.logLevel, name: 'sim' })
      const tty = process.stderr.isTTY
      const r = await runSim({
        nodes: o.nodes, rounds: o.rounds, steps: o.steps, examples: o.examples, minContributors: o.minContributors, contributorsPerRound: o.contributorsPerRound,
        maxPeers: o.maxPeers, bootstrapPeers: o.bootstrapPeers, seed: o.seed, dir: o.dir, timeoutSec: o.timeout, log,
        onProgress: (p) => {
          if (!tty) return
          const phases = Object.entries(p.phases).map(([k, v]) => `${k} ${v}`).join(', ')
          process.stderr.write(`\r\x1b[K${p.elapsed.toFixed(0)} s  round ${Math.min(...p.committed)}/${o.rounds} committed by all  [${phases}]  RSS ${(p.rssBytes / 2 ** 20).toFixed(0)} MiB`)
        },
        onRound: (x) => {
          process.stderr.write(`${tty ? '\r\x1b[K' : ''}round ${x.round}: all ${o.nodes} nodes committed in ${x.seconds.toFixed(1)} s (${x.protocolSeconds.toFixed(1)} s after the last training)\n`)
        },
      }).catch((err: Error) => {
        throw new UserError(err.message)
      })
      if (tty) process.stderr.write('\r\x1b[K')
      if (o.json) process.stdout.write(JSON.stringify({ ...r, roundSeconds: steadyRoundSeconds(r) }) + '\n')
      else process.stdout.write(simTable(r) + '\n')
      process.exitCode = r.agreed && r.recomputed ? 0 : 1
    })
}
