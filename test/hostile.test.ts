import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { PrivateKey } from '@libp2p/interface'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig } from '../src/config/node.js'
import { HomeLayout } from '../src/store/home.js'
import { createSwarmLibp2p } from '../src/p2p/node.js'
import { swarmTopics } from '../src/p2p/topics.js'
import { MAX_GOSSIP_BYTES } from '../src/p2p/messages.js'
import { swarmId } from '../src/config/swarm.js'
import { silentLogger } from '../src/util/log.js'
import { sha256Hex } from '../src/util/hash.js'
import { makeSwarmHomes } from './helpers/swarm-fixture.js'

describe('a hostile peer (a separate libp2p node written for the purpose)', function () {
  this.timeout(180_000)

  it('malformed, foreign and oversized gossip is rejected and logged, the sender is cut off, the node keeps working', async () => {
    const { def, nodes } = await makeSwarmHomes(1, { seed: 'hostile', stepsPerRound: 2, batchSize: 8, minContributors: 1, collectTimeoutSec: 5, voteTimeoutSec: 2 }, 80)
    const daemon = new Daemon({ home: nodes[0].home, config: await loadNodeConfig(new HomeLayout(nodes[0].home).config), log: silentLogger(), maxRounds: 3, startupListenMs: 300 })
    const run = daemon.run()
    const evil = await createSwarmLibp2p({ privateKey: (await generateKeyPair('Ed25519')) as unknown as PrivateKey, listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], mdns: false })
    try {
      const topics = swarmTopics(swarmId(def))
      evil.services.pubsub.subscribe(topics.announce)
      evil.services.pubsub.subscribe(topics.vote)
      while (!daemon.libp2p?.getMultiaddrs().length) await new Promise((r) => setTimeout(r, 100))
      await evil.dial(multiaddr(nodes[0].addr))
      await new Promise((r) => setTimeout(r, 2500))
      const h = (s: string): string => sha256Hex(Buffer.from(s))
      const garbage = [
        Buffer.from('not json at all'),
        Buffer.from(JSON.stringify({ type: 'announce', v: 1, swarm: h('another swarm'), round: 1, base: h('b'), deltaId: h('d'), size: 10, examples: 1, addrs: [] })),
        Buffer.from(JSON.stringify({ type: 'announce', v: 9, swarm: swarmId(def), round: 1 })),
        Buffer.alloc(MAX_GOSSIP_BYTES + 10, 0x7b),
        Buffer.from(JSON.stringify({ type: 'vote', v: 1, swarm: swarmId(def), round: -3, base: 'x', deltas: 'all of them' })),
      ]
      for (let i = 0; i < 30; i++) {
        await evil.services.pubsub.publish(i % 2 ? topics.vote : topics.announce, garbage[i % garbage.length]).catch(() => {})
        await new Promise((r) => setTimeout(r, 30))
      }
      const deadline = Date.now() + 60_000
      while (!(daemon.status.round >= 3)) {
        if (Date.now() > deadline) throw new Error('the node stopped making rounds')
        await new Promise((r) => setTimeout(r, 300))
      }
      const snap = await (await fetch(`${JSON.parse(await (await import('node:fs/promises')).readFile(new HomeLayout(nodes[0].home).apiFile, 'utf8')).url}/status`)).json()
      const rejected = Object.values(snap.rejected as Record<string, number>).reduce((a, b) => a + b, 0)
      assert.ok(rejected >= 10, `rejected ${rejected} messages`)
      assert.ok((snap.banned as string[]).includes(evil.peerId.toString()), 'the hostile peer is banned')
      assert.ok(!daemon.libp2p!.getPeers().map(String).includes(evil.peerId.toString()), 'and disconnected')
      // A banned peer that dials again is refused.
      await evil.hangUp(daemon.libp2p!.peerId).catch(() => {})
      await evil.dial(multiaddr(nodes[0].addr), { signal: AbortSignal.timeout(5000) }).catch(() => {})
      await new Promise((r) => setTimeout(r, 1000))
      assert.ok(!daemon.libp2p!.getPeers().map(String).includes(evil.peerId.toString()), 'a banned peer cannot reconnect')
    } finally {
      daemon.stop('test finished')
      await run
      await evil.stop()
    }
  })
})
