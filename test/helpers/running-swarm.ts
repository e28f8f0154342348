import { Daemon } from '../../src/daemon/daemon.js'
import { loadNodeConfig } from '../../src/config/node.js'
import { HomeLayout } from '../../src/store/home.js'
import { readApiUrl } from '../../src/cli/init.js'
import { silentLogger } from '../../src/util/log.js'
import type { SwarmOptions } from '../../src/config/genesis.js'
import { makeSwarmHomes, type FixtureNode } from './swarm-fixture.js'

export interface RunningSwarm {
  nodes: FixtureNode[]
  daemons: Daemon[]
  /** Each node's API base URL (once up). */
  api: () => Promise<string[]>
  /** Resolves when every node has committed `round`; rejects if a daemon stops early. */
  untilRound: (round: number, timeoutMs?: number) => Promise<void>
  stop: () => Promise<void>
}

/** In-process daemons on fresh homes, kept running (serving their APIs) until stop(). */
export async function startSwarm(n: number, swarm: SwarmOptions, rounds: number, examples = 160): Promise<RunningSwarm> {
  const { nodes } = await makeSwarmHomes(n, swarm, examples)
  const daemons = await Promise.all(nodes.map(async (x) => new Daemon({ home: x.home, config: await loadNodeConfig(new HomeLayout(x.home).config), log: silentLogger(), maxRounds: rounds })))
  let failure: Error | undefined
  const runs = daemons.map((d) => d.run().then(() => { failure ??= new Error('a daemon stopped early') }, (err: Error) => { failure ??= err }))
  return {
    nodes,
    daemons,
    api: async () => {
      const out: string[] = []
      for (const x of nodes) {
        let a = await readApiUrl(x.home)
        while (!a) {
          if (failure) throw failure
          await new Promise((r) => setTimeout(r, 100))
          a = await readApiUrl(x.home)
        }
        out.push(a.url)
      }
      return out
    },
    untilRound: async (round, timeoutMs = 180_000) => {
      const deadline = Date.now() + timeoutMs
      while (!daemons.every((d) => (d.status?.round ?? 0) >= round)) {
        if (failure) throw failure
        if (Date.now() > deadline) throw new Error(`the swarm did not reach round ${round} in ${timeoutMs} ms (rounds: ${daemons.map((d) => d.status?.round).join(', ')})`)
        await new Promise((r) => setTimeout(r, 200))
      }
    },
    stop: async () => {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    },
  }
}
