import assert from 'node:assert/strict'
import { readFile, mkdtemp, mkdir, symlink, stat } from 'node:fs/promises'
import { spawn, spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import { TASKS } from '../src/data/index.js'
import { BIN } from './helpers/cli.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

interface Service {
  build?: string
  image?: string
  entrypoint?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  networks?: string[]
  depends_on?: Record<string, { condition: string }>
}

describe('docker-compose.yml (structure; no Docker engine runs here)', function () {
  this.timeout(120_000)
  let compose: { services: Record<string, Service>; networks: Record<string, unknown>; volumes: Record<string, unknown> }

  before(async () => {
    compose = YAML.parse(await readFile(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true })
  })

  it('defines a 3-node mesh like `coldfusiond mesh`: one service per node, own volume, a different task each, one network', () => {
    const nodes = Object.keys(compose.services).filter((s) => s.startsWith('node-')).sort()
    assert.deepEqual(nodes, ['node-0', 'node-1', 'node-2'])
    const dataVolumes = new Set<string>()
    nodes.forEach((name, i) => {
      const s = compose.services[name]
      assert.equal(s.image, 'coldfusiond:local')
      assert.deepEqual(s.entrypoint, ['sh', '/app/docker/node.sh'])
      assert.deepEqual(s.networks, ['swarm'])
      assert.equal(s.environment?.NODE_NAME, name)
      // The same task assignment as the mesh command: node i gets TASKS[i].
      assert.equal(s.environment?.TASK, TASKS[i % TASKS.length].name)
      assert.deepEqual(s.environment?.PEERS?.split(' ').sort(), nodes.filter((n) => n !== name))
      const data = s.volumes?.find((v) => v.endsWith(':/data'))
      assert.ok(data, `${name} has a /data volume`)
      dataVolumes.add(data.split(':')[0])
      assert.ok(compose.volumes[data.split(':')[0]] !== undefined)
      assert.equal(s.depends_on?.genesis.condition, 'service_completed_successfully')
    })
    assert.equal(dataVolumes.size, 3, 'each node has its own data volume')
    assert.ok('swarm' in compose.networks)
    assert.equal(compose.services.genesis.build, '.')
  })

  it('builds from the repository Dockerfile, runs as a non-root user, and uses the CLI', async () => {
    const df = await readFile(join(ROOT, 'Dockerfile'), 'utf8')
    assert.match(df, /^FROM node:22/m)
    assert.match(df, /^USER node$/m)
    assert.match(df, /^ENTRYPOINT \["coldfusiond"\]$/m)
    const nodeSh = await readFile(join(ROOT, 'docker', 'node.sh'), 'utf8')
    assert.match(nodeSh, /coldfusiond init --home/)
    assert.match(nodeSh, /exec coldfusiond start --home/)
    for (const f of ['node.sh', 'genesis.sh']) {
      const r = spawnSync('sh', ['-n', join(ROOT, 'docker', f)])
      assert.equal(r.status, 0, `${f} has a shell syntax error: ${r.stderr}`)
    }
  })

  it('the container scripts work outside a container: genesis, then a node that inits, publishes its id and starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-compose-'))
    const bin = join(dir, 'bin')
    await mkdir(bin)
    await symlink(BIN, join(bin, 'coldfusiond'))
    const env = { ...process.env, PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH}`, SHARED_DIR: join(dir, 'shared'), DATA_DIR: join(dir, 'data'), MIN_CONTRIBUTORS: '1' }
    await mkdir(env.SHARED_DIR, { recursive: true })
    const g = spawnSync('sh', [join(ROOT, 'docker', 'genesis.sh')], { env, encoding: 'utf8' })
    assert.equal(g.status, 0, g.stderr)
    assert.ok((await stat(join(env.SHARED_DIR, 'swarm.json'))).size > 0)
    const node = spawn('sh', [join(ROOT, 'docker', 'node.sh')], { env: { ...env, NODE_NAME: 'node-0', TASK: 'topic', PEERS: '', ROUNDS: '1' }, stdio: 'ignore' })
    try {
      const deadline = Date.now() + 90_000
      let peer = ''
      while (Date.now() < deadline) {
        peer = await readFile(join(env.SHARED_DIR, 'node-0.peer'), 'utf8').catch(() => '')
        const ledger = await readFile(join(env.DATA_DIR, 'ledger.jsonl'), 'utf8').catch(() => '')
        if (peer && ledger.includes('"round":1')) break
        await new Promise((r) => setTimeout(r, 500))
      }
      assert.match(peer.trim(), /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
      assert.match(await readFile(join(env.DATA_DIR, 'ledger.jsonl'), 'utf8'), /"round":1/)
    } finally {
      const exited = new Promise((r) => node.on('exit', r))
      node.kill('SIGTERM')
      await exited
    }
  })
})
