import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig, type NodeConfig } from '../src/config/node.js'
import { HomeLayout } from '../src/store/home.js'
import { createSwarmKey, loadSwarmKey } from '../src/p2p/access.js'
import { ConfigError } from '../src/util/errors.js'
import { silentLogger } from '../src/util/log.js'
import { writeFile } from 'node:fs/promises'
import { makeSwarmHomes } from './helpers/swarm-fixture.js'

describe('private swarms: swarm key (pnet) and peer allowlist', function () {
  this.timeout(180_000)

  it('members agree; a node without the key and a keyed node outside the allowlist get nowhere', async () => {
    const { dir, nodes } = await makeSwarmHomes(4, { seed: 'private', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 30, voteTimeoutSec: 5 }, 120)
    const key = join(dir, 'swarm.key')
    const otherKey = join(dir, 'other.key')
    await createSwarmKey(key)
    await createSwarmKey(otherKey)
    const [a, b, outsider, unlisted] = nodes
    const members = [a.peerId, b.peerId]
    const config = async (home: string, network: NodeConfig['network']): Promise<NodeConfig> => ({ ...(await loadNodeConfig(new HomeLayout(home).config)), network })
    const daemons = [
      new Daemon({ home: a.home, config: await config(a.home, { swarmKeyFile: key, allowPeers: members }), log: silentLogger(), maxRounds: 1, startupListenMs: 500 }),
      new Daemon({ home: b.home, config: await config(b.home, { swarmKeyFile: key, allowPeers: members }), log: silentLogger(), maxRounds: 1, startupListenMs: 500 }),
      new Daemon({ home: outsider.home, config: await config(outsider.home, { swarmKeyFile: otherKey, allowPeers: [] }), log: silentLogger(), maxRounds: 1, startupListenMs: 500 }),
      new Daemon({ home: unlisted.home, config: await config(unlisted.home, { swarmKeyFile: key, allowPeers: [] }), log: silentLogger(), maxRounds: 1, startupListenMs: 500 }),
    ]
    const runs = daemons.map((d) => d.run())
    try {
      const deadline = Date.now() + 120_000
      while (!(daemons[0].status?.round >= 1 && daemons[1].status?.round >= 1)) {
        if (Date.now() > deadline) throw new Error('members did not commit a round')
        await new Promise((r) => setTimeout(r, 300))
      }
      await new Promise((r) => setTimeout(r, 1500))
      assert.equal(daemons[0].status.baseHash, daemons[1].status.baseHash)
      for (const d of daemons.slice(0, 2)) {
        const peers = d.libp2p!.getPeers().map((p) => p.toString())
        assert.ok(!peers.includes(outsider.peerId), 'the node with another key is not connected')
        assert.ok(!peers.includes(unlisted.peerId), 'the node outside the allowlist is not connected')
      }
      assert.equal(daemons[2].status.round, 0)
      assert.equal(daemons[3].status.round, 0)
      assert.deepEqual(daemons[2].libp2p!.getPeers().map(String).filter((p) => members.includes(p)), [])
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    }
  })

  it('a malformed swarm key file is a clear error', async () => {
    const { dir } = await makeSwarmHomes(1, { seed: 'k' }, 40)
    const bad = join(dir, 'bad.key')
    await writeFile(bad, 'not a key\n')
    await assert.rejects(loadSwarmKey(bad), (e: Error) => e instanceof ConfigError && /bad\.key: not a libp2p swarm key/.test(e.message))
    await assert.rejects(loadSwarmKey(join(dir, 'missing.key')), /cannot read the swarm key/)
  })
})
