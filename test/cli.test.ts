import assert from 'node:assert/strict'
import { fusionThreads } from '../src/fusion/index.js'
import { mkdtemp, writeFile, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, spawnCli } from './helpers/cli.js'
import { makeSwarmHomes } from './helpers/swarm-fixture.js'

describe('command line', function () {
  this.timeout(180_000)

  it('--help documents every command and its options', async () => {
    const top = await runCli(['--help'])
    assert.equal(top.code, 0)
    for (const cmd of ['init', 'start', 'status', 'mesh', 'swarm']) assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`))
    const start = await runCli(['start', '--help'])
    for (const opt of ['--home', '--listen', '--bootstrap', '--data', '--api-port', '--backend', '--log-level', '--rounds', '--no-mdns']) assert.ok(start.stdout.includes(opt), opt)
    const mesh = await runCli(['mesh', '--help'])
    for (const opt of ['--nodes', '--rounds', '--dir', '--json']) assert.ok(mesh.stdout.includes(opt), opt)
  })

  it('init creates identity, commented config, swarm and demo data; status works on a stopped node', async () => {
    const home = join(await mkdtemp(join(tmpdir(), 'cfd-cli-')), 'node')
    const r = await runCli(['init', '--home', home, '--demo-task', 'topic'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /peer id\s+12D3KooW/)
    assert.equal(((await stat(join(home, 'identity.key'))).mode & 0o777).toString(8), '600')
    assert.match(await readFile(join(home, 'config.yaml'), 'utf8'), /# Local training data/)
    const s = await runCli(['status', '--home', home, '--json'])
    assert.equal(s.code, 0, s.stderr)
    const st = JSON.parse(s.stdout)
    for (const k of ['peerId', 'swarm', 'round', 'baseHash', 'phase', 'peers']) assert.ok(k in st, k)
    assert.equal(st.phase, 'stopped')
    assert.equal(st.round, 0)
    const again = await runCli(['init', '--home', home])
    assert.equal(again.code, 2)
    assert.match(again.stderr, /already initialised/)
  })

  it('start refuses a bad data file, naming the file and the line', async () => {
    const home = join(await mkdtemp(join(tmpdir(), 'cfd-cli-')), 'node')
    const data = join(home, '..', 'bad.jsonl')
    await writeFile(data, '{"text": "fine", "label": 0}\n{"text": "also fine", "label": 1}\n{"text": "broken", "lable": 1}\n')
    assert.equal((await runCli(['init', '--home', home, '--data', data])).code, 0)
    const r = await runCli(['start', '--home', home, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /bad\.jsonl:3: .*label/)
  })

  it('start refuses a bad config file, naming the file, line and key', async () => {
    const home = join(await mkdtemp(join(tmpdir(), 'cfd-cli-')), 'node')
    assert.equal((await runCli(['init', '--home', home])).code, 0)
    const cfg = join(home, 'config.yaml')
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('mdns: true', 'mdns: sometimes'))
    const r = await runCli(['start', '--home', home])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /config\.yaml:\d+: mdns: Expected boolean/)
  })

  it('two nodes started by hand join through a bootstrap address, report status, and stop cleanly on SIGTERM', async () => {
    const { nodes } = await makeSwarmHomes(2, { seed: 'cli-test', stepsPerRound: 3, batchSize: 8, minContributors: 2, collectTimeoutSec: 60, voteTimeoutSec: 10 }, 160)
    // Only the second node knows the first: joining goes through the bootstrap address alone.
    const a = spawnCli(['start', '--home', nodes[0].home, '--bootstrap', nodes[1].addr, '--rounds', '1'])
    const b = spawnCli(['start', '--home', nodes[1].home, '--bootstrap', nodes[0].addr, '--rounds', '1'])
    try {
      let st: { round: number; peers: string[]; phase: string; peerId: string; baseHash: string }[] = []
      const deadline = Date.now() + 150_000
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000))
        const rs = await Promise.all(nodes.map((n) => runCli(['status', '--home', n.home, '--json'])))
        st = rs.map((r) => JSON.parse(r.stdout))
        if (st.every((s) => s.round >= 1)) break
      }
      assert.ok(st.every((s) => s.round >= 1), `nodes did not commit a round:\n${a.output().slice(-1500)}`)
      assert.equal(st[0].baseHash, st[1].baseHash)
      assert.deepEqual(st[0].peers, [nodes[1].peerId])
      assert.equal(st[0].phase, 'done')
      const human = await runCli(['status', '--home', nodes[0].home])
      assert.match(human.stdout, /peer id\s+12D3KooW/)
      assert.match(human.stdout, new RegExp(`backend\\s+\\w+; fusion on ${fusionThreads()} thread`))
    } finally {
      const exits = [a, b].map((c) => new Promise<number | null>((r) => c.on('exit', (code) => r(code))))
      a.kill('SIGTERM')
      b.kill('SIGTERM')
      assert.deepEqual(await Promise.all(exits), [0, 0])
    }
    // A clean stop removes the API file and the lock.
    await assert.rejects(stat(join(nodes[0].home, 'run', 'api.json')), /ENOENT/)
    await assert.rejects(stat(join(nodes[0].home, 'run', 'daemon.pid')), /ENOENT/)
  })
})
