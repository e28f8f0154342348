import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.js'

describe('coldfusiond mesh (separate processes, real libp2p over loopback TCP)', function () {
  this.timeout(400_000)

  it('runs 3 nodes for 2 rounds and reports agreement as JSON', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'cfd-mesh-')), 'mesh')
    const r = await runCli(['mesh', '--nodes', '3', '--rounds', '2', '--steps', '8', '--examples', '200', '--dir', dir, '--json'], { timeoutMs: 380_000 })
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout)
    assert.equal(out.agreed, true)
    assert.equal(typeof out.seconds, 'number')
    assert.equal(out.rounds.length, 2)
    for (const round of out.rounds) {
      const hashes = Object.values(round.hashes) as string[]
      assert.equal(hashes.length, 3)
      assert.ok(hashes.every((h) => /^[0-9a-f]{64}$/.test(h) && h === hashes[0]))
      assert.equal(round.contributors, 3)
    }
    assert.notEqual(out.rounds[0].hashes[out.nodes[0].peerId], out.rounds[1].hashes[out.nodes[0].peerId])
  })

  it('prints the per-round table without --json, and refuses a non-empty --dir', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'cfd-mesh-')), 'mesh')
    const r = await runCli(['mesh', '--nodes', '2', '--rounds', '1', '--steps', '4', '--examples', '120', '--dir', dir], { timeoutMs: 300_000 })
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    assert.match(r.stdout, /^round\s+contributors\s+base hash\s+node-0 sentiment/m)
    assert.match(r.stdout, /^1\s+2\/2\s+[0-9a-f]{12}\s+/m)
    assert.match(r.stdout, /agreed: all 2 nodes/)
    const again = await runCli(['mesh', '--dir', dir])
    assert.equal(again.code, 2)
    assert.match(again.stderr, /is not empty/)
  })
})
