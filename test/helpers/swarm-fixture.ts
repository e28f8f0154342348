import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSwarmDefinition, type SwarmOptions } from '../../src/config/genesis.js'
import { formatSwarmDefinition, type SwarmDefinition } from '../../src/config/swarm.js'
import { writeFileAtomic } from '../../src/util/atomic.js'
import { freePorts } from '../../src/util/ports.js'
import { initHome, writeNodeConfig } from '../../src/cli/init.js'
import { TASKS } from '../../src/data/index.js'

export interface FixtureNode {
  name: string
  home: string
  peerId: string
  port: number
  addr: string
}

/** N initialised node homes of one swarm, with loopback ports and full bootstrap lists. */
export async function makeSwarmHomes(n: number, swarm: SwarmOptions, examples = 240): Promise<{ dir: string; def: SwarmDefinition; swarmFile: string; nodes: FixtureNode[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-swarm-test-'))
  const { def } = createSwarmDefinition(swarm)
  const swarmFile = join(dir, 'swarm.json')
  await writeFileAtomic(swarmFile, formatSwarmDefinition(def))
  const ports = await freePorts(n)
  const nodes: FixtureNode[] = []
  for (let i = 0; i < n; i++) {
    const home = join(dir, `node-${i}`)
    const r = await initHome({ home, swarmFile, demoTask: TASKS[i % TASKS.length].name, demoSeed: 7 + i, demoExamples: examples, mdns: false, listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })
    nodes.push({ name: `node-${i}`, home, peerId: r.peerId, port: ports[i], addr: `/ip4/127.0.0.1/tcp/${ports[i]}/p2p/${r.peerId}` })
  }
  for (const node of nodes) {
    await writeNodeConfig(node.home, {
      listen: [`/ip4/127.0.0.1/tcp/${node.port}`], announce: [], bootstrap: nodes.filter((x) => x !== node).map((x) => x.addr), mdns: false,
      data: { train: 'data/train.jsonl', evalFraction: 0.2 }, api: { host: '127.0.0.1', port: 0 }, backend: 'auto', logLevel: 'warn',
    })
  }
  return { dir, def, swarmFile, nodes }
}
