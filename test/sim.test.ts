import assert from 'node:assert/strict'
import { runSim, type SimResult } from '../src/sim/run.js'
import { bootstrapTargets } from '../src/sim/setup.js'
import { fitExponent } from '../src/sim/report.js'
import { silentLogger } from '../src/util/log.js'
import { runCli } from './helpers/cli.js'

describe('coldfusiond sim (real daemons in one process over the libp2p memory transport)', function () {
  this.timeout(300_000)
  let first: SimResult

  it('runs 6 nodes for 2 rounds: every node commits the same base every round, and it recomputes', async () => {
    first = await runSim({ nodes: 6, rounds: 2, seed: 'sim-test', log: silentLogger(), timeoutSec: 240 })
    assert.equal(first.rounds.length, 2)
    for (const r of first.rounds) {
      assert.equal(r.hashes.length, 6)
      assert.ok(r.hashes.every((h) => /^[0-9a-f]{64}$/.test(h) && h === r.hashes[0]), `round ${r.round}: ${r.hashes.join(' ')}`)
      assert.equal(r.contributors, 6, 'every node contributes to every round')
      assert.equal(r.switched, 0)
    }
    assert.notEqual(first.rounds[0].hashes[0], first.rounds[1].hashes[0])
    assert.equal(first.agreed, true)
    assert.equal(first.recomputed, true, 'fusing the recorded deltas outside the daemons gives the committed hashes')
    assert.ok(first.memory.peakRssMiB > 0 && first.transfer.deltaBytesInPerNodePerRound > 0)
  })

  it('is deterministic: the same seed gives the same round-1 base', async () => {
    const again = await runSim({ nodes: 6, rounds: 1, seed: 'sim-test', log: silentLogger(), timeoutSec: 240 })
    assert.equal(again.agreed, true)
    assert.equal(again.rounds[0].hashes[0], first.rounds[0].hashes[0])
  })

  it('bounded contributors: 8 nodes, 3 drawn to train each round, all agree on every round', async () => {
    const r = await runSim({ nodes: 8, rounds: 3, contributorsPerRound: 3, seed: 'sim-drawn', log: silentLogger(), timeoutSec: 240 })
    assert.equal(r.agreed, true)
    assert.equal(r.recomputed, true)
    for (const x of r.rounds) assert.equal(x.contributors, 3, `round ${x.round}: ${x.contributors} contributors`)
  })

  it('a sparse swarm: 10 nodes with at most 3 peers each still draw the same 3 contributors and agree', async () => {
    const r = await runSim({ nodes: 10, rounds: 2, contributorsPerRound: 3, maxPeers: 3, seed: 'sim-sparse', log: silentLogger(), timeoutSec: 240 })
    assert.equal(r.agreed, true)
    assert.equal(r.recomputed, true)
    // Members beyond a node's peers are known from their gossip, so every node draws the same three.
    for (const x of r.rounds) assert.equal(x.contributors, 3, `round ${x.round}: ${x.contributors} contributors`)
    assert.ok(r.transfer.connectionsPerNode < 9, `${r.transfer.connectionsPerNode} connections per node: a full mesh has 9`)
  })

  it('bootstrap chords connect every node, and the exponent fit recovers a power law', () => {
    for (const n of [2, 3, 8, 64]) {
      const adj = Array.from({ length: n }, (_, i) => bootstrapTargets(i, n, 3))
      const seen = new Set([0])
      const todo = [0]
      while (todo.length) {
        const i = todo.pop()!
        for (let j = 0; j < n; j++) {
          if ((adj[i].includes(j) || adj[j].includes(i)) && !seen.has(j)) {
            seen.add(j)
            todo.push(j)
          }
        }
      }
      assert.equal(seen.size, n)
    }
    assert.ok(Math.abs(fitExponent([8, 16, 32, 64], [8, 16, 32, 64].map((n) => 3 * n ** 1.5))! - 1.5) < 1e-9)
    assert.equal(fitExponent([8], [1]), null)
  })

  it('refuses bad flags with a clear message', async () => {
    const r = await runCli(['sim', '--nodes', '1'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--nodes must be an integer >= 2/)
    const m = await runCli(['sim', '--nodes', '4', '--min-contributors', '5'])
    assert.equal(m.code, 2)
    assert.match(m.stderr, /--min-contributors cannot exceed --nodes/)
    const k = await runCli(['sim', '--nodes', '8', '--contributors-per-round', '2', '--min-contributors', '3'])
    assert.equal(k.code, 2)
    assert.match(k.stderr, /--min-contributors cannot exceed --nodes or --contributors-per-round/)
  })
})
