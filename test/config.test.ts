import assert from 'node:assert/strict'
import { mkdtemp, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseNodeConfig, renderNodeConfig, NodeConfigSchema } from '../src/config/node.js'
import { createSwarmDefinition, regenerateGenesis } from '../src/config/genesis.js'
import { loadSwarmDefinition, parseSwarmDefinition, swarmId, formatSwarmDefinition } from '../src/config/swarm.js'
import { ConfigError } from '../src/util/errors.js'
import { applyOverrides } from '../src/cli/start.js'

describe('node config', () => {
  it('round-trips the commented template', () => {
    const c = NodeConfigSchema.parse({ data: { train: 'data/train.jsonl' }, bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'] })
    const text = renderNodeConfig(c)
    assert.match(text, /^# coldfusiond node configuration/)
    assert.deepEqual(parseNodeConfig(text, 'config.yaml'), c)
  })

  it('maxPeers: 32 by default, kept through render and parse, and a bad value named by line', () => {
    const c = NodeConfigSchema.parse({ data: { train: 'd.jsonl' } })
    assert.equal(c.maxPeers, 32)
    assert.equal(parseNodeConfig(renderNodeConfig({ ...c, maxPeers: 6 }), 'c.yaml').maxPeers, 6)
    assert.throws(() => parseNodeConfig('data: {train: a.jsonl}\nmaxPeers: 0\n', 'c.yaml'), (err: Error) => err instanceof ConfigError && /c\.yaml:2: maxPeers: /.test(err.message))
  })

  it('fusionThreads: optional (the core count, at most 4), kept through render and parse, and a bad value named by line', () => {
    const c = NodeConfigSchema.parse({ data: { train: 'd.jsonl' } })
    assert.equal(c.fusionThreads, undefined)
    assert.equal(parseNodeConfig(renderNodeConfig(c), 'c.yaml').fusionThreads, undefined)
    assert.equal(parseNodeConfig(renderNodeConfig({ ...c, fusionThreads: 3 }), 'c.yaml').fusionThreads, 3)
    for (const bad of ['0', '65', '1.5', 'two']) {
      assert.throws(() => parseNodeConfig(`data: {train: a.jsonl}\nfusionThreads: ${bad}\n`, 'c.yaml'), (err: Error) => err instanceof ConfigError && /c\.yaml:2: fusionThreads: /.test(err.message))
    }
  })

  it('names the file, the line and the key of a bad value', () => {
    const text = 'listen:\n  - "/ip4/0.0.0.0/tcp/4001"\nmdns: true\ndata:\n  train: "x.jsonl"\nbackend: quantum\n'
    assert.throws(() => parseNodeConfig(text, 'home/config.yaml'), (err: Error) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /home\/config\.yaml:6: backend: /)
      return true
    })
  })

  it('rejects a bad multiaddr and a bootstrap address without a peer id', () => {
    const text = 'listen: ["not-an-addr"]\nbootstrap: ["/ip4/1.2.3.4/tcp/4001"]\ndata: {train: a.jsonl}\n'
    assert.throws(() => parseNodeConfig(text, 'c.yaml'), (err: Error) => {
      assert.match(err.message, /c\.yaml:1: listen\.0: is not a valid multiaddr/)
      assert.match(err.message, /c\.yaml:2: bootstrap\.0: must end with \/p2p\/<peer id>/)
      return true
    })
  })

  it('rejects unknown keys, missing data and invalid YAML', () => {
    assert.throws(() => parseNodeConfig('data: {train: a.jsonl}\nlisten_addrs: []\n', 'c.yaml'), /Unrecognized key/)
    assert.throws(() => parseNodeConfig('mdns: true\n', 'c.yaml'), /c\.yaml: data: Required/)
    assert.throws(() => parseNodeConfig('data: [unclosed\n', 'c.yaml'), /c\.yaml:\d+: invalid YAML/)
  })

  it('lets command-line flags override the file, with the same validation', () => {
    const c = NodeConfigSchema.parse({ data: { train: 'a.jsonl' } })
    const o = applyOverrides(c, { home: 'h', apiPort: 9999, listen: ['/ip4/127.0.0.1/tcp/5000'], data: 'b.csv', mdns: false })
    assert.equal(o.api.port, 9999)
    assert.deepEqual(o.listen, ['/ip4/127.0.0.1/tcp/5000'])
    assert.equal(o.data.train, 'b.csv')
    assert.equal(o.mdns, false)
    assert.throws(() => applyOverrides(c, { home: 'h', listen: ['bogus'] }), /command-line option listen\.0/)
  })
})

describe('config/node.example.yaml', () => {
  it('is a valid node config, identical to what init writes for its values', async () => {
    const file = new URL('../../config/node.example.yaml', import.meta.url)
    const text = await readFile(file, 'utf8')
    assert.equal(renderNodeConfig(parseNodeConfig(text, 'config/node.example.yaml')), text)
  })
})

describe('swarm definition', () => {
  it('is content-addressed: the id changes with any setting', () => {
    const { def } = createSwarmDefinition({ seed: 'abc' })
    const id = swarmId(def)
    assert.match(id, /^[0-9a-f]{64}$/)
    assert.equal(swarmId(JSON.parse(JSON.stringify(def))), id)
    assert.notEqual(swarmId({ ...def, rounds: { ...def.rounds, minContributors: 3 } }), id)
  })

  it('bounded contributors: in the id, and refused below minContributors with the key named', () => {
    const { def } = createSwarmDefinition({ seed: 'drawn', contributorsPerRound: 8, minContributors: 2 })
    assert.equal(def.rounds.contributorsPerRound, 8)
    assert.notEqual(swarmId(def), swarmId(createSwarmDefinition({ seed: 'drawn', minContributors: 2 }).def))
    assert.equal(createSwarmDefinition({ seed: 'drawn' }).def.rounds.contributorsPerRound, undefined)
    assert.throws(() => createSwarmDefinition({ seed: 'drawn', contributorsPerRound: 2, minContributors: 3 }), /--min-contributors \(3\) cannot exceed --contributors-per-round \(2\)/)
    const bad = { ...def, rounds: { ...def.rounds, minContributors: 9 } }
    assert.throws(() => parseSwarmDefinition(bad, 'swarm.json'), (e: Error) => e instanceof ConfigError && /swarm\.json: rounds\.minContributors: minContributors cannot exceed contributorsPerRound/.test(e.message))
  })

  it('regenerates the round-0 base bit for bit from its seed', () => {
    const a = createSwarmDefinition({ seed: 'same-seed' })
    const b = createSwarmDefinition({ seed: 'same-seed' })
    assert.equal(a.def.model.base.hash, b.def.model.base.hash)
    assert.deepEqual(regenerateGenesis(a.def), a.base)
    assert.throws(() => regenerateGenesis({ ...a.def, model: { ...a.def.model, base: { ...a.def.model.base, hash: 'f'.repeat(64) } } }), /initialises the model differently/)
  })

  it('reports a damaged swarm file clearly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-swarm-'))
    const f = join(dir, 'swarm.json')
    await writeFile(f, '{"protocol": "coldfusion/1",')
    await assert.rejects(loadSwarmDefinition(f), /swarm\.json: the swarm definition is not valid JSON/)
    const { def } = createSwarmDefinition({ seed: 'x' })
    await writeFile(f, formatSwarmDefinition({ ...def, fusion: { rule: 'nonsense' as never } }))
    await assert.rejects(loadSwarmDefinition(f), /swarm\.json: fusion\.rule/)
    await writeFile(f, formatSwarmDefinition(def))
    assert.equal((await loadSwarmDefinition(f)).id, swarmId(def))
    assert.ok((await readFile(f, 'utf8')).endsWith('\n'))
  })
})
