import assert from 'node:assert/strict'
import { cp, mkdtemp, readFile, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig } from '../src/config/node.js'
import { loadSwarmDefinition } from '../src/config/swarm.js'
import { initHome, writeNodeConfig } from '../src/cli/init.js'
import { exportBase } from '../src/cli/export.js'
import { HomeLayout } from '../src/store/home.js'
import { Ledger } from '../src/store/ledger.js'
import { ContentStore } from '../src/store/content-store.js'
import { decodeSafetensors, readSafetensorsHeader } from '../src/model/safetensors.js'
import { loadHfModelDir } from '../src/model/hf/model-dir.js'
import { loadSwarmTokenizer } from '../src/model/hf/swarm.js'
import { freePorts } from '../src/util/ports.js'
import { silentLogger } from '../src/util/log.js'
import { TASKS } from '../src/data/index.js'
import { runCli } from './helpers/cli.js'
import { FIXTURES } from './helpers/hf-fixtures.js'

async function tmp(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

describe('Hugging Face models: swarms and the command line', function () {
  this.timeout(240_000)

  it('swarm create --model pins the files; a node with a different copy is refused, naming the file', async () => {
    const dir = await tmp('cfd-hf-cli-')
    const swarmFile = join(dir, 'swarm.json')
    const model = join(FIXTURES, 'roberta-mlm')
    const c = await runCli(['swarm', 'create', '--model', model, '--out', swarmFile, '--min-contributors', '1'])
    assert.equal(c.code, 0, c.stderr)
    const { def, id } = await loadSwarmDefinition(swarmFile)
    assert.equal(c.stdout.trim(), id)
    assert.equal(def.model.architecture.model_type, 'roberta')
    assert.equal(def.model.tokenizer.kind, 'huggingface')
    assert.equal(def.training.learningRate, 5e-5)
    const src = def.model.base.source
    assert.equal(src.kind, 'huggingface')
    if (src.kind !== 'huggingface' || def.model.tokenizer.kind !== 'huggingface') return
    assert.deepEqual(Object.keys(src.files).sort(), ['config.json', 'model.safetensors'])
    assert.deepEqual(Object.keys(def.model.tokenizer.files).sort(), ['merges.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json'])
    assert.equal(src.names.prefix, 'roberta.')
    assert.equal(def.model.base.hash, (await loadHfModelDir(model)).base.hash)

    const copy = join(dir, 'copy')
    await cp(model, copy, { recursive: true })
    await writeFile(join(copy, 'merges.txt'), (await readFile(join(copy, 'merges.txt'), 'utf8')) + 'x y\n')
    const refused = await runCli(['init', '--home', join(dir, 'n1'), '--swarm', swarmFile, '--model', copy])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /copy\/merges\.txt differs from the swarm's copy \(sha256 [0-9a-f]{12}… here, [0-9a-f]{12}… in the swarm definition\)/)
    await assert.rejects(access(join(dir, 'n1')), 'nothing is written for a refused node')
    const noModel = await runCli(['init', '--home', join(dir, 'n1'), '--swarm', swarmFile])
    assert.equal(noModel.code, 2)
    assert.match(noModel.stderr, /this swarm's base is a Hugging Face roberta model: give your copy of its directory with --model DIR/)

    const ok = await runCli(['init', '--home', join(dir, 'n1'), '--swarm', swarmFile, '--model', model, '--no-mdns'])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /model .*roberta-mlm \(roberta, base [0-9a-f]{12}; ignored lm_head \(6\); no pooler in the checkpoint: generated one\)/)
    const ex = await runCli(['export', '--home', join(dir, 'n1'), '--out', join(dir, 'out')])
    assert.equal(ex.code, 0, ex.stderr)
    assert.match(ex.stdout, /exported round 0 .*config\.json, model\.safetensors, tokenizer\.json/)
    assert.equal((await loadHfModelDir(join(dir, 'out'))).base.hash, def.model.base.hash)
    // A node whose installed tokenizer files were changed afterwards does not start.
    assert.ok(await loadSwarmTokenizer(def, join(dir, 'n1')))
    await writeFile(join(dir, 'n1', 'tokenizer', 'vocab.json'), '{}')
    await assert.rejects(loadSwarmTokenizer(def, join(dir, 'n1')), /n1\/tokenizer\/vocab\.json has sha256 [0-9a-f]{12}…, the swarm pins [0-9a-f]{12}…: the file was changed/)

    const builtin = join(dir, 'builtin.json')
    assert.equal((await runCli(['swarm', 'create', '--out', builtin])).code, 0)
    const wrong = await runCli(['init', '--home', join(dir, 'n2'), '--swarm', builtin, '--model', model])
    assert.equal(wrong.code, 2)
    assert.match(wrong.stderr, /this swarm uses the built-in model, not a Hugging Face model; leave out --model/)
  })

  it('features --json prints input_ids and last_hidden_state matching the PyTorch reference', async () => {
    for (const name of ['roberta-mlm', 'bert-pretraining']) {
      const g = JSON.parse(await readFile(join(FIXTURES, `${name}.golden.json`), 'utf8'))
      const r = await runCli(['features', '--model', join(FIXTURES, name), '--text', "Replace me by any text you'd like.", '--json'])
      assert.equal(r.code, 0, r.stderr)
      const out = JSON.parse(r.stdout)
      assert.deepEqual(Object.keys(out), ['input_ids', 'last_hidden_state'])
      assert.deepEqual(out.input_ids, g.single.input_ids)
      const ref = g.single.last_hidden_state.flat()
      const got = (out.last_hidden_state as number[][]).flat()
      assert.equal(got.length, ref.length)
      const d = Math.max(...ref.map((v: number, i: number) => Math.abs(v - got[i])))
      assert.ok(d <= 1e-4, `max abs diff ${d}`)
      assert.match(r.stderr, /note: ignored \d+ tensors .* not part of the encoder/)
    }
    const bad = await runCli(['features', '--model', join(FIXTURES, 'nope'), '--text', 'x'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /nope is not a readable directory/)
  })

  it('two nodes fine-tune a BERT checkpoint in rounds; export has the original names, without the local heads', async () => {
    const ROUNDS = 2
    const dir = await tmp('cfd-hf-swarm-')
    const model = join(FIXTURES, 'bert-pretraining')
    const swarmFile = join(dir, 'swarm.json')
    const created = await runCli(['swarm', 'create', '--model', model, '--out', swarmFile, '--min-contributors', '2', '--steps', '4', '--batch-size', '8', '--lr', '1e-3', '--max-length', '24', '--collect-timeout', '60', '--vote-timeout', '10'])
    assert.equal(created.code, 0, created.stderr)
    const ports = await freePorts(2)
    const nodes = []
    for (let i = 0; i < 2; i++) {
      const home = join(dir, `node-${i}`)
      const r = await initHome({ home, swarmFile, model, demoTask: TASKS[i].name, demoSeed: 11 + i, demoExamples: 120, mdns: false, listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })
      nodes.push({ home, addr: `/ip4/127.0.0.1/tcp/${ports[i]}/p2p/${r.peerId}`, port: ports[i] })
    }
    for (const n of nodes) {
      await writeNodeConfig(n.home, {
        listen: [`/ip4/127.0.0.1/tcp/${n.port}`], bootstrap: nodes.filter((x) => x !== n).map((x) => x.addr), mdns: false,
        data: { train: 'data/train.jsonl', evalFraction: 0.2 }, logLevel: 'warn',
      })
    }
    const daemons = await Promise.all(nodes.map(async (n) => new Daemon({ home: n.home, config: await loadNodeConfig(new HomeLayout(n.home).config), log: silentLogger(), maxRounds: ROUNDS })))
    const runs = daemons.map((d) => d.run())
    try {
      const failed = Promise.race(runs.map((p) => p.then(() => { throw new Error('a daemon stopped early') })))
      const done = (async () => {
        while (!daemons.every((d) => d.status?.round >= ROUNDS)) await new Promise((r) => setTimeout(r, 200))
      })()
      await Promise.race([done, failed])
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
    }

    const { def } = await loadSwarmDefinition(swarmFile)
    const chains = await Promise.all(nodes.map(async (n) => (await Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)).chain().map((e) => e.hash)))
    assert.equal(chains[0].length, ROUNDS)
    assert.deepEqual(chains[1], chains[0])

    const out = join(dir, 'export')
    const r = await exportBase({ home: nodes[1].home, out })
    assert.equal(r.round, ROUNDS)
    const header = readSafetensorsHeader(new Uint8Array(await readFile(join(out, 'model.safetensors'))))
    const names = header.entries.map((e) => e.name)
    assert.ok(names.includes('bert.embeddings.LayerNorm.gamma') && names.includes('bert.pooler.dense.weight'))
    assert.ok(names.every((n) => n.startsWith('bert.') && !n.includes('classifier') && !n.includes('position_ids')), 'only the body, with its original names')
    assert.ok(header.entries.every((e) => e.dtype === 'F32'))
    // The export holds exactly the committed base; training moved the encoder but not the pooler.
    const exported = await loadHfModelDir(out)
    assert.equal(exported.base.hash, chains[0][ROUNDS - 1])
    const genesis = decodeSafetensors((await new ContentStore(new HomeLayout(nodes[0].home).checkpoints, 'safetensors').get(def.model.base.hash))!).tensors
    const changed = (n: string): boolean => exported.base.body.get(n)!.data.some((v, i) => v !== genesis.get(n)!.data[i])
    assert.ok(changed('encoder.layer.0.attention.self.query.weight'))
    assert.ok(!changed('pooler.dense.weight'))
  })
})
