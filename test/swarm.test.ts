import assert from 'node:assert/strict'
import { readFile, writeFile, unlink } from 'node:fs/promises'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig } from '../src/config/node.js'
import { HomeLayout } from '../src/store/home.js'
import { Ledger } from '../src/store/ledger.js'
import { ContentStore } from '../src/store/content-store.js'
import { decodeSafetensors } from '../src/model/safetensors.js'
import { fuseRound, hashTensors } from '../src/fusion/index.js'
import { sha256Hex } from '../src/util/hash.js'
import { silentLogger } from '../src/util/log.js'
import { makeSwarmHomes } from './helpers/swarm-fixture.js'

/** Run in-process daemons on these homes until all have committed `rounds`, then stop them. */
async function runDaemons(homes: string[], rounds: number): Promise<void> {
  const daemons = await Promise.all(homes.map(async (home) => new Daemon({ home, config: await loadNodeConfig(new HomeLayout(home).config), log: silentLogger(), maxRounds: rounds })))
  const runs = daemons.map((d) => d.run())
  const failed = Promise.race(runs.map((p) => p.then(() => { throw new Error('a daemon stopped early') })))
  const done = (async () => {
    while (!daemons.every((d) => d.status?.round >= rounds)) await new Promise((r) => setTimeout(r, 200))
  })()
  try {
    await Promise.race([done, failed])
  } finally {
    for (const d of daemons) d.stop('test finished')
    await Promise.allSettled(runs)
  }
}

describe('a swarm of 3 real libp2p nodes (in one process, TCP on loopback)', function () {
  this.timeout(300_000)

  it('runs 2 rounds, every node commits the same bases and contributor sets, and resumes after a restart', async () => {
    const ROUNDS = 2
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'swarm-test', stepsPerRound: 4, batchSize: 8, minContributors: 2, collectTimeoutSec: 60, voteTimeoutSec: 10 })
    await runDaemons(nodes.map((n) => n.home), ROUNDS)

    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const chains = ledgers.map((l) => l.chain().map((e) => ({ round: e.round, parent: e.parent, hash: e.hash, deltas: e.deltas.map((d) => d.id) })))
    assert.equal(chains[0].length, ROUNDS)
    for (const c of chains.slice(1)) assert.deepEqual(c, chains[0])
    // Everyone contributed to every round (nothing was dropped on a healthy loopback mesh).
    for (const e of chains[0]) assert.equal(e.deltas.length, 3)

    // The lineage is verifiable: recompute round 1 from the genesis checkpoint and the stored deltas.
    const L = new HomeLayout(nodes[1].home)
    const cps = new ContentStore(L.checkpoints, 'safetensors')
    const dls = new ContentStore(L.deltas, 'cfd')
    const genesis = decodeSafetensors((await cps.get(def.model.base.hash))!).tensors
    const first = ledgers[1].chain()[0]
    const payloads = await Promise.all(first.deltas.map(async (d) => ({ id: d.id, payload: (await dls.get(d.id))!, examples: d.examples })))
    assert.equal(hashTensors(fuseRound(genesis, payloads.reverse())), first.hash)
    // The checkpoint file is exactly the hashed bytes.
    const last = ledgers[2].head()!
    assert.equal(sha256Hex(await readFile(new ContentStore(new HomeLayout(nodes[2].home).checkpoints, 'safetensors').path(last.hash))), last.hash)

    // A damaged and a missing checkpoint are rebuilt from parent + deltas at start, and verified.
    const cp0 = new ContentStore(new HomeLayout(nodes[0].home).checkpoints, 'safetensors')
    const cp1 = new ContentStore(new HomeLayout(nodes[1].home).checkpoints, 'safetensors')
    await writeFile(cp0.path(chains[0][ROUNDS - 1].hash), 'damaged')
    await unlink(cp1.path(chains[0][0].hash))

    // Restarted from their homes, the nodes resume where they were and keep agreeing.
    await runDaemons(nodes.map((n) => n.home), ROUNDS + 1)
    assert.equal(sha256Hex(await readFile(cp0.path(chains[0][ROUNDS - 1].hash))), chains[0][ROUNDS - 1].hash)
    assert.ok(await cp1.get(chains[0][0].hash))
    const after = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    for (const l of after) {
      assert.equal(l.headRound(), ROUNDS + 1)
      assert.equal(l.chain()[ROUNDS - 1].hash, chains[0][ROUNDS - 1].hash)
      assert.equal(l.head()!.parent, chains[0][ROUNDS - 1].hash)
      assert.equal(l.headHash(), after[0].headHash())
    }
  })

  it('with a sparse codec, nodes keep an error-feedback residual across rounds and still agree', async () => {
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'feedback', codec: 'topk-q8', stepsPerRound: 4, batchSize: 8, minContributors: 2, collectTimeoutSec: 60, voteTimeoutSec: 10 })
    await runDaemons(nodes.map((n) => n.home), 2)
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    for (const l of ledgers) assert.deepEqual(l.chain().map((e) => e.hash), ledgers[0].chain().map((e) => e.hash))
    // The residual of what was not sent is saved in every home, to be added to the next delta.
    for (const n of nodes) assert.ok((await readFile(`${n.home}/feedback.safetensors`)).length > 0)
  })
})
