import assert from 'node:assert/strict'
import { readFile, mkdtemp, mkdir, symlink, readdir } from 'node:fs/promises'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import { ApiServer } from '../src/api/server.js'
import type { NodeStatus } from '../src/rounds/status.js'
import type { LedgerEntry } from '../src/store/ledger.js'
import { freePorts } from '../src/util/ports.js'
import { silentLogger } from '../src/util/log.js'
import { BIN, runCli } from './helpers/cli.js'
import { TASKS } from '../src/data/index.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

interface Service {
  build?: string | { context: string; target?: string }
  image?: string
  entrypoint?: string[]
  command?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  networks?: string[]
  profiles?: string[]
  runtime?: string
  restart?: string
  depends_on?: Record<string, { condition: string }>
  deploy?: { replicas?: string | number; resources?: { reservations?: { devices?: { driver: string; count: string; capabilities: string[] }[] } } }
  healthcheck?: { test: string[]; interval: string; start_period: string }
}

/** Compose's `${VAR:-default}` interpolation, enough to check how the file reacts to its variables. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, name: string, def: string | undefined) => env[name] ?? def ?? '')
}

describe('docker-compose.yml and Dockerfile (structure; no Docker engine runs here)', function () {
  this.timeout(300_000)
  let compose: { services: Record<string, Service>; networks: Record<string, unknown>; volumes: Record<string, { driver_opts?: Record<string, string> }> }

  before(async () => {
    compose = YAML.parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true })
  })

  it('runs NODES replicas (default 3) of one node service, each healthchecked, on one network with a tmpfs roster volume', () => {
    const defaults = Object.entries(compose.services).filter(([, s]) => !s.profiles).map(([n]) => n)
    assert.deepEqual(defaults, ['node'], '`docker compose up` starts only the nodes (no one-shot container to stop the CI run)')
    const node = compose.services.node
    assert.equal(node.build, '.')
    assert.equal(node.image, 'coldfusiond:local')
    assert.deepEqual(node.entrypoint, ['sh', '/app/docker/node.sh'])
    assert.equal(interpolate(String(node.deploy?.replicas), {}), '3')
    assert.equal(interpolate(String(node.deploy?.replicas), { NODES: '7' }), '7')
    assert.equal(interpolate(node.environment!.NODES, { NODES: '7' }), '7', 'the nodes wait for as many peers as there are replicas')
    assert.equal(node.restart, 'unless-stopped')
    assert.deepEqual(node.networks, ['swarm'])
    assert.deepEqual(node.volumes, ['shared:/shared'])
    assert.equal(node.healthcheck?.test[0], 'CMD')
    assert.match(node.healthcheck!.test.join(' '), /\/healthz/)
    assert.equal(compose.volumes.shared.driver_opts?.type, 'tmpfs')
    assert.match(compose.volumes.shared.driver_opts!.o, /uid=1000/)
    assert.ok('swarm' in compose.networks)
  })

  it('the ci profile adds a checker that runs `coldfusiond check` on the roster for the same NODES and ROUNDS', () => {
    const c = compose.services.checker
    assert.deepEqual(c.profiles, ['ci'])
    assert.equal(c.image, 'coldfusiond:local')
    assert.equal(c.build, '.')
    assert.equal(c.entrypoint, undefined, 'the image entrypoint is coldfusiond')
    const args = c.command!.map((a) => interpolate(a, { NODES: '5', ROUNDS: '4' }))
    assert.equal(args[0], 'check')
    const flag = (name: string): string => args[args.indexOf(name) + 1]
    assert.equal(flag('--roster'), '/shared/roster')
    assert.equal(flag('--nodes'), '5')
    assert.equal(flag('--rounds'), '4')
    assert.equal(c.depends_on?.node.condition, 'service_healthy')
    assert.equal(c.restart, 'no')
    assert.deepEqual(c.volumes, ['shared:/shared'])
  })

  it('the gpu profile runs CUDA nodes from the gpu image with the NVIDIA runtime', () => {
    const g = compose.services['node-gpu']
    assert.deepEqual(g.profiles, ['gpu'])
    assert.equal(g.runtime, 'nvidia')
    assert.deepEqual(g.build, { context: '.', target: 'gpu' })
    assert.equal(g.image, 'coldfusiond:gpu')
    assert.equal(g.environment?.BACKEND, 'tensorflow-gpu')
    assert.equal(g.environment?.NODES, compose.services.node.environment?.NODES)
    const dev = g.deploy?.resources?.reservations?.devices?.[0]
    assert.equal(dev?.driver, 'nvidia')
    assert.ok(dev?.capabilities.includes('gpu'))
    assert.equal(interpolate(String(g.deploy?.replicas), {}), '1')
    assert.deepEqual(g.healthcheck, compose.services.node.healthcheck)
  })

  it('the Dockerfile makes a small CPU image by default that runs as a non-root user, and a CUDA image with tfjs-node-gpu', async () => {
    const df = await readFile(join(ROOT, 'Dockerfile'), 'utf8')
    const stages = df.split(/^(?=FROM )/m).filter((s) => s.startsWith('FROM '))
    const name = (s: string): string => /^FROM \S+(?: AS (\S+))?/.exec(s)![1]
    assert.deepEqual(stages.map(name), ['build', 'gpu', 'runtime'])
    const [build, gpu, runtime] = stages
    assert.match(build, /^FROM node:22-bookworm-slim AS build/)
    assert.match(build, /npm prune --omit=dev --omit=optional/, 'no dev or GPU packages in the small image')
    assert.match(build, /rm -rf dist\/test/)
    // The default target is the last stage: only build output and runtime dependencies.
    assert.match(runtime, /^FROM node:22-bookworm-slim AS runtime/)
    assert.doesNotMatch(runtime, /COPY (src|test)\b/)
    assert.match(runtime, /^USER node$/m)
    assert.match(runtime, /^ENTRYPOINT \["coldfusiond"\]$/m)
    assert.match(gpu, /^FROM nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-/)
    assert.match(gpu, /npm rebuild @tensorflow\/tfjs-node-gpu/)
    assert.match(gpu, /^USER node$/m)
    const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n')
    for (const p of ['node_modules', 'dist', '.git', 'test']) assert.ok(ignore.includes(p), p)
    for (const f of ['node.sh', 'genesis.sh']) {
      const r = spawnSync('sh', ['-n', join(ROOT, 'docker', f)])
      assert.equal(r.status, 0, `${f} has a shell syntax error: ${r.stderr}`)
    }
  })

  it('outside containers: 3 nodes from docker/node.sh register, run 2 rounds, pass the healthcheck, and the ci checker exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-compose-'))
    const bin = join(dir, 'bin')
    await mkdir(bin)
    await symlink(BIN, join(bin, 'coldfusiond'))
    const shared = join(dir, 'shared')
    await mkdir(shared)
    const ports = await freePorts(6)
    const base = { ...process.env, PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}`, SHARED_DIR: shared, ADVERTISE_HOST: '127.0.0.1', NODES: '3', ROUNDS: '2', STEPS: '4', MIN_CONTRIBUTORS: '2', COLLECT_TIMEOUT: '60', VOTE_TIMEOUT: '10' }
    const nodes: ChildProcess[] = []
    const logs: string[] = ['', '', '']
    try {
      for (let i = 0; i < 3; i++) {
        const env = { ...base, DATA_DIR: join(dir, `data-${i}`), P2P_PORT: String(ports[2 * i]), API_PORT: String(ports[2 * i + 1]) }
        const p = spawn('sh', [join(ROOT, 'docker', 'node.sh')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
        p.stdout!.on('data', (d) => (logs[i] += d))
        p.stderr!.on('data', (d) => (logs[i] += d))
        nodes.push(p)
      }
      // The checker exactly as the ci profile runs it, on this roster.
      const args = compose.services.checker.command!.map((a) => interpolate(a, { NODES: '3', ROUNDS: '2' }).replace(/^\/shared\//, `${shared}/`))
      const check = await runCli([...args.slice(0, args.indexOf('--timeout')), '--timeout', '240'], { timeoutMs: 280_000 })
      assert.equal(check.code, 0, `checker failed:\n${check.stdout}\n${check.stderr}\n${logs.map((l) => l.slice(-1500)).join('\n---\n')}`)
      assert.match(check.stdout, /^agreed: all 3 nodes committed the same bases and delta sets in rounds 1-2$/m)
      assert.match(check.stderr, /checking 3 node\(s\)/)

      const roster = await readdir(join(shared, 'roster'))
      assert.equal(roster.length, 3)
      for (const peer of roster) {
        assert.match(peer, /^12D3KooW/)
        assert.match(await readFile(join(shared, 'roster', peer, 'addr'), 'utf8'), new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peer}\\n$`))
        assert.match(await readFile(join(shared, 'roster', peer, 'token'), 'utf8'), /^[0-9a-f]{64}\n$/)
      }
      // Each node claimed its own slot, and so its own demo task (the first three, as in `mesh`).
      assert.deepEqual((await readdir(join(shared, 'slots'))).sort(), ['0', '1', '2'])
      const labels = await Promise.all([0, 1, 2].map(async (i) => (await readFile(join(dir, `data-${i}`, 'data', 'labels.json'), 'utf8')).trim()))
      assert.deepEqual(labels.sort(), TASKS.slice(0, 3).map((t) => JSON.stringify(t.labels)).sort())
      for (let i = 0; i < 3; i++) assert.match(await readFile(join(dir, `data-${i}`, 'config.yaml'), 'utf8'), /host: "0\.0\.0\.0"/)

      // `status` on a node whose API is beyond loopback finds the token in the home.
      const st = await runCli(['status', '--home', join(dir, 'data-0')])
      assert.equal(st.code, 0, st.stderr)
      assert.match(st.stdout, /^state\s+running, done$/m)

      // The compose healthcheck, pointed at one node's port.
      const probe = compose.services.node.healthcheck!.test.slice(1).map((a) => a.replace('8080', String(ports[1])))
      const health = spawnSync(process.execPath, probe.slice(1), { encoding: 'utf8' })
      assert.equal(health.status, 0, health.stderr)
    } finally {
      await Promise.all(nodes.map((p) => new Promise<void>((r) => {
        if (p.exitCode !== null) return r()
        p.once('exit', () => r())
        p.kill('SIGTERM')
      })))
    }
  })

  it('the checker exits 1 when nodes disagree, naming the round, and 2 when a node never answers', async () => {
    const H = (c: string): string => c.repeat(64)
    const status = (hash: string): NodeStatus => ({
      peerId: '12D3KooWArJn57asgYjLd3WFp1wqGboku36W3xPG91JLbkp9dJ3K', swarm: H('5'), swarmName: 't', round: 1, baseHash: hash, phase: 'done', working: 2,
      peers: [], members: [], addrs: [], backend: 'wasm', divergence: [], rejected: {}, transfer: { bytesIn: 0, bytesOut: 0, served: 0, fetched: 0 }, startedAt: '',
    })
    const ledger = (hash: string): LedgerEntry[] => [{ round: 1, parent: H('0'), hash, deltas: [{ id: H('d'), peer: 'p', examples: 1 }], rule: 'mean', kind: 'commit', at: '', sum: '' }]
    const servers = [H('a'), H('b')].map((h) => new ApiServer({ status: () => status(h), rounds: () => ledger(h) }, silentLogger()))
    try {
      const urls = await Promise.all(servers.map((s) => s.listen('127.0.0.1', 0)))
      const r = await runCli(['check', '--api', urls[0], '--api', urls[1], '--rounds', '1', '--timeout', '30'])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stdout, /^1\s+aaaaaaaaaaaa\s+bbbbbbbbbbbb\s+DISAGREE$/m)
      assert.match(r.stdout, /NOT AGREED:\n {2}round 1: 2 different base\(s\), 1 different delta set\(s\)\n {2}\/status: nodes at round 1 report 2 different bases/)
      const [dead] = await freePorts(1)
      const t = await runCli(['check', '--api', urls[0], '--api', `http://127.0.0.1:${dead}`, '--rounds', '1', '--timeout', '1'])
      assert.equal(t.code, 2)
      assert.match(t.stderr, /timed out after 1 s: 127\.0\.0\.1:\d+ did not commit round 1/)
    } finally {
      await Promise.all(servers.map((s) => s.close()))
    }
  })
})
