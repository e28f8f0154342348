import assert from 'node:assert/strict'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig } from '../src/config/node.js'
import { HomeLayout } from '../src/store/home.js'
import { Ledger } from '../src/store/ledger.js'
import { fetchNodeJson, readApiUrl } from '../src/cli/init.js'
import { silentLogger } from '../src/util/log.js'
import type { NodeStatus } from '../src/rounds/status.js'
import { makeSwarmHomes } from './helpers/swarm-fixture.js'
import { spawnCli } from './helpers/cli.js'
import { recordRow } from './helpers/fault-report.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await sleep(300)
  }
}

async function statusOf(home: string): Promise<NodeStatus | undefined> {
  const api = await readApiUrl(home)
  if (!api) return undefined
  try {
    const r = await fetch(`${api.url}/status`, { signal: AbortSignal.timeout(2000) })
    return r.ok ? ((await r.json()) as NodeStatus) : undefined
  } catch {
    return undefined
  }
}

/**
 * Cuts a 4-node swarm into halves (nodes 0-1 and 2-3) while `partitioned`: each node's gater
 * refuses dials and connections across the cut.
 */
function halves(nodes: { peerId: string }[], partitioned: boolean) {
  const half = (peer: string): number => (nodes.findIndex((n) => n.peerId === peer) < 2 ? 0 : 1)
  const cut = {
    partitioned,
    half,
    gaterFor(self: string): ConnectionGater {
      const deny = (peer: PeerId): boolean => cut.partitioned && half(peer.toString()) !== half(self)
      return { denyDialPeer: deny, denyInboundEncryptedConnection: deny, denyOutboundEncryptedConnection: deny }
    },
  }
  return cut
}

describe('faults: crash, late join, partition (real libp2p)', function () {
  this.timeout(400_000)

  it('a node killed with SIGKILL restarts, verifies and catches up to the swarm, and contributes again', async () => {
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'crash', stepsPerRound: 4, batchSize: 8, minContributors: 2, collectTimeoutSec: 20, voteTimeoutSec: 6 }, 160)
    // The swarm runs on while the killed node boots and syncs; the test stops it once that node
    // has contributed again.
    const ROUNDS = 60
    const procs = nodes.map((n) => spawnCli(['start', '--home', n.home, '--rounds', String(ROUNDS)]))
    let restarted: ReturnType<typeof spawnCli> | undefined
    let beforeCrash: string[] = []
    try {
      await until('all nodes commit round 1', async () => (await Promise.all(nodes.map((n) => statusOf(n.home)))).every((s) => (s?.round ?? 0) >= 1), 120_000)
      procs[2].kill('SIGKILL')
      await until('the two survivors commit round 3 without the killed node', async () => (await Promise.all(nodes.slice(0, 2).map((n) => statusOf(n.home)))).every((s) => (s?.round ?? 0) >= 3), 150_000)
      beforeCrash = (await Ledger.open(new HomeLayout(nodes[2].home).ledger, def.model.base.hash)).chain().map((e) => e.hash)
      restarted = spawnCli(['start', '--home', nodes[2].home, '--rounds', String(ROUNDS)])
      await until('the restarted node contributes to a round again', async () => {
        const rounds = (await fetchNodeJson<{ round: number; kind: string; deltas: { peer: string }[] }[]>(nodes[0].home, '/rounds')) ?? []
        return rounds.some((e) => e.round > 3 && e.deltas.some((d) => d.peer === nodes[2].peerId))
      }, 150_000)
      const s2 = (await statusOf(nodes[2].home))!
      assert.ok(s2.divergence.some((d) => d.action === 'switched'), 'the restarted node reports that it caught up')
    } finally {
      for (const p of [...procs, restarted]) p?.kill('SIGTERM')
      await sleep(2000)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const common = Math.min(...ledgers.map((l) => l.chain().length))
    const chains = ledgers.map((l) => l.chain().slice(0, common).map((e) => `${e.round}:${e.hash}:${e.deltas.map((d) => d.id).join(',')}`))
    assert.deepEqual(chains[1], chains[0])
    assert.deepEqual(chains[2], chains[0])
    // Nothing committed before the crash was lost, and the missed rounds were adopted (verified by recomputation).
    assert.deepEqual(ledgers[2].chain().slice(0, beforeCrash.length).map((e) => e.hash), beforeCrash)
    const adopted = ledgers[2].all().filter((e) => e.kind === 'switch').map((e) => e.round)
    assert.ok(adopted.length > 0)
    const lastAdopted = Math.max(...adopted)
    const firstBack = ledgers[0].chain().find((e) => e.round > lastAdopted && e.deltas.some((d) => d.peer === nodes[2].peerId))?.round
    assert.ok(firstBack !== undefined && firstBack - lastAdopted <= 2, `contributed again at round ${firstBack}, caught up at ${lastAdopted}`)
    await recordRow('scenarios', { scenario: 'crash (SIGKILL, restart)', rounds: common, agreed: true, roundsToRecover: firstBack - lastAdopted, dataLost: 0 })
  })

  it('a partitioned 4-node swarm keeps making rounds in both halves and converges on one base after healing', async () => {
    const { def, nodes } = await makeSwarmHomes(4, { seed: 'partition', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 15, voteTimeoutSec: 5 }, 120)
    const cut = halves(nodes, false)
    const { half } = cut
    const MAX = 9
    let recovered = -1
    const daemons = await Promise.all(nodes.map(async (n) => new Daemon({
      home: n.home, config: await loadNodeConfig(new HomeLayout(n.home).config), log: silentLogger(), maxRounds: MAX,
      connectionGater: cut.gaterFor(n.peerId), startupListenMs: 1000,
    })))
    const runs = daemons.map((d) => d.run().catch((err) => { throw err }))
    const rounds = (): number[] => daemons.map((d) => d.status?.round ?? 0)
    try {
      await until('all nodes commit round 1', () => rounds().every((r) => r >= 1), 120_000)
      cut.partitioned = true
      for (const d of daemons) for (const c of d.libp2p!.getConnections()) if (half(c.remotePeer.toString()) !== half(d.status.peerId)) await c.close()
      const atSplit = Math.max(...rounds())
      await until('both halves make two rounds on their own', () => rounds().every((r) => r >= atSplit + 2), 180_000)
      const hashes = daemons.map((d) => d.status.baseHash)
      assert.equal(hashes[0], hashes[1])
      assert.equal(hashes[2], hashes[3])
      assert.notEqual(hashes[0], hashes[2], 'the halves built different bases')
      cut.partitioned = false
      const atHeal = Math.max(...rounds())
      const healStarted = Date.now()
      await until('all nodes on one base again', () => new Set(daemons.map((d) => d.status.baseHash)).size === 1 && Math.min(...rounds()) > atHeal, 180_000)
      const healedAt = Math.min(...rounds())
      // Rounds here last about 2 s, so the bound is time (redial, a gossip repeat, the switch), not rounds.
      const healSeconds = (Date.now() - healStarted) / 1000
      assert.ok(healSeconds <= 30, `converged at round ${healedAt} after ${healSeconds.toFixed(1)} s, healing began at ${atHeal}`)
      recovered = healedAt - atHeal
      assert.ok(daemons.some((d) => d.status.divergence.some((e) => e.action === 'switched')), 'the losing half reports the switch')
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const heads = ledgers.map((l) => l.chain().map((e) => e.hash))
    const common = Math.min(...heads.map((h) => h.length))
    for (const h of heads) assert.deepEqual(h.slice(0, common), heads[0].slice(0, common))
    await recordRow('scenarios', { scenario: 'partition 2+2, heal', rounds: common, agreed: true, roundsToRecover: recovered, dataLost: 0 })
  })

  it('two halves that reach their last round apart still end on one base once the partition heals', async () => {
    const { def, nodes } = await makeSwarmHomes(4, { seed: 'late-heal', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 15, voteTimeoutSec: 5 }, 120)
    const cut = halves(nodes, true)
    const LAST = 2
    const daemons = await Promise.all(nodes.map(async (n) => new Daemon({
      home: n.home, config: await loadNodeConfig(new HomeLayout(n.home).config), log: silentLogger(), maxRounds: LAST,
      connectionGater: cut.gaterFor(n.peerId), startupListenMs: 1000,
    })))
    const runs = daemons.map((d) => d.run())
    try {
      await until('both halves finish their rounds apart', () => daemons.every((d) => d.status?.phase === 'done'), 180_000)
      const apart = daemons.map((d) => d.status.baseHash)
      assert.equal(apart[0], apart[1])
      assert.equal(apart[2], apart[3])
      assert.notEqual(apart[0], apart[2], 'the halves built different bases')
      cut.partitioned = false
      await until('all nodes on one base again', () => new Set(daemons.map((d) => d.status.baseHash)).size === 1 && daemons.every((d) => d.status.phase === 'done'), 120_000)
      const winner = daemons[0].status.baseHash
      assert.ok(winner === apart[0] || winner === apart[2], 'the swarm ends on one of the halves\' bases, not a new one')
      for (const d of daemons) assert.equal(d.status.round, LAST, 'no node goes past its last round')
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const heads = ledgers.map((l) => l.chain().map((e) => e.hash))
    for (const h of heads) assert.deepEqual(h, heads[0])
    // The losing half recomputed and verified the winner's rounds, and says so in its ledger.
    const switched = ledgers.filter((l) => l.all().some((e) => e.kind === 'switch'))
    assert.equal(switched.length, 2, 'the two nodes of the losing half switched')
    await recordRow('scenarios', { scenario: 'partition 2+2 until the last round, heal', rounds: LAST, agreed: true, roundsToRecover: 0, dataLost: 0 })
  })

  it('gossip with 30% loss and 30% duplication still ends on one base, and any divergence is visible', async () => {
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'lossy', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 15, voteTimeoutSec: 4 }, 120)
    const ROUNDS = 4
    const daemons = await Promise.all(nodes.map(async (n, i) => new Daemon({
      home: n.home, config: await loadNodeConfig(new HomeLayout(n.home).config), log: silentLogger(), maxRounds: ROUNDS,
      startupListenMs: 1000, gossipFaults: { drop: 0.3, duplicate: 0.3, seed: 100 + i },
    })))
    const runs = daemons.map((d) => d.run())
    try {
      await until('all nodes commit the last round', () => daemons.every((d) => (d.status?.round ?? 0) >= ROUNDS), 240_000)
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const chains = ledgers.map((l) => l.chain().map((e) => e.hash))
    assert.deepEqual(chains[1], chains[0])
    assert.deepEqual(chains[2], chains[0])
    // Any node that committed something else first must say so (never silent divergence).
    ledgers.forEach((l, i) => {
      if (l.all().some((e) => e.kind === 'switch')) assert.ok(daemons[i].status.divergence.length > 0)
    })
    const switched = ledgers.reduce((n, l) => n + l.all().filter((e) => e.kind === 'switch').length, 0)
    await recordRow('scenarios', { scenario: 'gossip 30% loss + 30% duplication', rounds: ROUNDS, agreed: true, roundsToRecover: switched === 0 ? 0 : `${switched} switch(es)`, dataLost: 0 })
  })

  it('a node that joins late obtains the current base from peers, verified by recomputation, and contributes', async () => {
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'late', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 20, voteTimeoutSec: 4 }, 120)
    const ROUNDS = 5
    const make = async (i: number): Promise<Daemon> => new Daemon({ home: nodes[i].home, config: await loadNodeConfig(new HomeLayout(nodes[i].home).config), log: silentLogger(), maxRounds: ROUNDS, startupListenMs: 1500 })
    const early = [await make(0), await make(1)]
    const runs = early.map((d) => d.run())
    let late: Daemon | undefined
    try {
      await until('the first two nodes commit round 2', () => early.every((d) => (d.status?.round ?? 0) >= 2), 120_000)
      late = await make(2)
      runs.push(late.run())
      await until('all three commit the last round', () => [...early, late!].every((d) => (d.status?.round ?? 0) >= ROUNDS), 180_000)
    } finally {
      for (const d of [...early, late]) d?.stop('test finished')
      await Promise.allSettled(runs)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    assert.deepEqual(ledgers[2].chain().map((e) => e.hash), ledgers[0].chain().map((e) => e.hash))
    assert.ok(ledgers[2].all().some((e) => e.kind === 'switch'), 'the late node adopted the rounds before it joined')
    const contributed = ledgers[0].chain().filter((e) => e.deltas.some((d) => d.peer === nodes[2].peerId)).map((e) => e.round)
    assert.ok(contributed.length > 0 && contributed.includes(ROUNDS), `late node contributed to rounds ${contributed}`)
    const joinedAt = Math.max(...ledgers[2].all().filter((e) => e.kind === 'switch').map((e) => e.round))
    await recordRow('scenarios', { scenario: 'late joiner (after round 2)', rounds: ROUNDS, agreed: true, roundsToRecover: Math.min(...contributed) - joinedAt, dataLost: 0 })
  })

  it('a straggler (the plain cpu backend, about 15 times slower) does not stall the swarm and never makes it disagree', async () => {
    const { def, nodes } = await makeSwarmHomes(3, { seed: 'straggler', stepsPerRound: 15, batchSize: 8, minContributors: 2, collectTimeoutSec: 6, voteTimeoutSec: 3 }, 160)
    const ROUNDS = 4
    const procs = [
      spawnCli(['start', '--home', nodes[0].home, '--rounds', String(ROUNDS)]),
      spawnCli(['start', '--home', nodes[1].home, '--rounds', String(ROUNDS)]),
      spawnCli(['start', '--home', nodes[2].home, '--rounds', String(ROUNDS), '--backend', 'cpu']),
    ]
    try {
      await until('the two fast nodes commit every round', async () => (await Promise.all(nodes.slice(0, 2).map((n) => statusOf(n.home)))).every((s) => (s?.round ?? 0) >= ROUNDS), 240_000)
      await until('the straggler ends on the swarm\'s base', async () => {
        const [a, c] = await Promise.all([statusOf(nodes[0].home), statusOf(nodes[2].home)])
        return a !== undefined && c !== undefined && c.round >= ROUNDS && c.baseHash === a.baseHash
      }, 240_000)
    } finally {
      for (const p of procs) p.kill('SIGTERM')
      await sleep(1500)
    }
    const ledgers = await Promise.all(nodes.map((n) => Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)))
    const chain = (i: number): string[] => ledgers[i].chain().slice(0, ROUNDS).map((e) => e.hash)
    assert.deepEqual(chain(1), chain(0))
    assert.deepEqual(chain(2), chain(0))
    const withStraggler = ledgers[0].chain().filter((e) => e.deltas.some((d) => d.peer === nodes[2].peerId)).length
    await recordRow('scenarios', { scenario: 'straggler (cpu backend)', rounds: ROUNDS, agreed: true, roundsToRecover: `${withStraggler}/${ROUNDS} rounds with its delta`, dataLost: 0 })
  })
})
