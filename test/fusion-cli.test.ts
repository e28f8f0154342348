import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fusionRuleIds, fuseRound, hashTensors } from '../src/fusion/index.js'
import { loadSwarmDefinition, parseSwarmDefinition, swarmId } from '../src/config/swarm.js'
import { HomeLayout } from '../src/store/home.js'
import { Ledger } from '../src/store/ledger.js'
import { ContentStore } from '../src/store/content-store.js'
import { decodeSafetensors } from '../src/model/safetensors.js'
import { createSwarmDefinition } from '../src/config/genesis.js'
import { fusionSettings } from '../src/cli/fusion-options.js'
import { UserError } from '../src/util/errors.js'
import { runCli } from './helpers/cli.js'

/** Flags for every registered rule and the params they must write (a new rule fails until listed). */
const CASES: Record<string, { flags: { fusionParam?: string[]; trim?: string }; params?: Record<string, number> }> = {
  mean: { flags: {} },
  'weighted-mean': { flags: {} },
  median: { flags: {} },
  'trimmed-mean': { flags: { trim: '0.25' }, params: { trim: 0.25 } },
  'task-arithmetic': { flags: { fusionParam: ['scale=0.25'] }, params: { scale: 0.25 } },
  ties: { flags: { fusionParam: ['density=0.3', 'scale=1.5'] }, params: { density: 0.3, scale: 1.5 } },
  dare: { flags: { fusionParam: ['drop=0.3', 'scale=1'] }, params: { drop: 0.3, scale: 1 } },
}

describe('fusion rule options (swarm create, mesh)', function () {
  this.timeout(120_000)

  it('every registered rule: its flags give a valid definition whose params are hashed into the swarm id', () => {
    assert.deepEqual(Object.keys(CASES).sort(), fusionRuleIds())
    for (const [rule, c] of Object.entries(CASES)) {
      const { def } = createSwarmDefinition({ seed: 'fusion-cli', ...fusionSettings({ fusion: rule, ...c.flags }) })
      assert.equal(def.fusion.rule, rule)
      assert.deepEqual(def.fusion.params, c.params)
      const id = swarmId(def)
      assert.equal(swarmId(parseSwarmDefinition(JSON.parse(JSON.stringify(def)), 'test')), id)
      if (c.params) {
        // The same definition with another value of a param is another swarm.
        const [k, v] = Object.entries(c.params)[0]
        assert.notEqual(swarmId(parseSwarmDefinition({ ...def, fusion: { ...def.fusion, params: { ...c.params, [k]: v / 2 } } }, 'test')), id, rule)
      }
    }
  })

  it('rejects bad params, naming the flag and the allowed range or keys', () => {
    const bad: [Parameters<typeof fusionSettings>[0], RegExp][] = [
      [{ fusion: 'ties', fusionParam: ['density=1.5'] }, /^--fusion-param density=1\.5: fusion rule ties: density must be a number in \[0, 1\], got 1\.5$/],
      [{ fusion: 'dare', fusionParam: ['drop=1'] }, /^--fusion-param drop=1: fusion rule dare: drop must be a number in \[0, 1\), got 1$/],
      [{ fusion: 'task-arithmetic', fusionParam: ['scale=-1'] }, /^--fusion-param scale=-1: fusion rule task-arithmetic: scale must be a number in \[0, 10\]/],
      [{ fusion: 'trimmed-mean', trim: '0.5' }, /^--trim 0\.5: fusion rule trimmed-mean: trim must be a number in \[0, 0\.5\)/],
      [{ fusion: 'ties', fusionParam: ['drop=0.5'] }, /^--fusion-param drop=0\.5: fusion rule ties takes density, scale, got drop$/],
      [{ fusion: 'ties', fusionParam: ['density=abc'] }, /density must be a number in \[0, 1\], got "abc"/],
      [{ fusion: 'median', fusionParam: ['trim=0.1'] }, /^--fusion-param trim=0\.1: fusion rule median takes no params/],
      [{ fusionParam: ['scale=2'] }, /fusion rule mean takes no params, got scale \(choose the rule with --fusion\)$/],
      [{ fusion: 'dare', fusionParam: ['drop'] }, /^--fusion-param drop: expected key=value/],
      [{ fusion: 'dare', fusionParam: ['drop=0.1', 'drop=0.2'] }, /drop is given twice/],
    ]
    for (const [flags, re] of bad) assert.throws(() => fusionSettings(flags), (err: Error) => err instanceof UserError && re.test(err.message), JSON.stringify(flags))
  })

  it('the CLI takes them: swarm create and mesh list every rule; a bad value exits 2 with the message', async () => {
    const help = await runCli(['swarm', 'create', '--help'])
    for (const id of fusionRuleIds()) assert.ok(help.stdout.includes(`"${id}"`), id)
    assert.match((await runCli(['mesh', '--help'])).stdout, /--fusion-param/)
    const dir = await mkdtemp(join(tmpdir(), 'cfd-fusion-cli-'))
    const out = join(dir, 'swarm.json')
    const ok = await runCli(['swarm', 'create', '--out', out, '--fusion', 'ties', '--fusion-param', 'density=0.3'])
    assert.equal(ok.code, 0, ok.stderr)
    const { def, id } = await loadSwarmDefinition(out)
    assert.deepEqual(def.fusion, { rule: 'ties', params: { density: 0.3 } })
    assert.equal(ok.stdout.trim(), id)
    const bad = await runCli(['swarm', 'create', '--out', join(dir, 'bad.json'), '--fusion', 'dare', '--fusion-param', 'drop=1'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^coldfusiond: --fusion-param drop=1: fusion rule dare: drop must be a number in \[0, 1\), got 1$/m)
    // The top-k density is a flag too, and only with a top-k codec.
    const sparse = await runCli(['swarm', 'create', '--out', join(dir, 'topk.json'), '--codec', 'topk-q4', '--density-ppm', '30000'])
    assert.equal(sparse.code, 0, sparse.stderr)
    assert.deepEqual((await loadSwarmDefinition(join(dir, 'topk.json'))).def.compression, { codec: 'topk-q4', blockSize: 256, densityPpm: 30000 })
    for (const args of [['--density-ppm', '30000'], ['--codec', 'q8-block', '--density-ppm', '30000']]) {
      const r = await runCli(['swarm', 'create', '--out', join(dir, 'dense.json'), ...args])
      assert.equal(r.code, 2, args.join(' '))
      assert.match(r.stderr, /--density-ppm applies to the top-k codecs/)
    }
    assert.match((await runCli(['swarm', 'create', '--out', join(dir, 'z.json'), '--codec', 'topk-q4', '--density-ppm', '0'])).stderr, /--density-ppm must be an integer >= 1/)
  })

  it('a real 3-process swarm (mesh) fuses with dare and agrees; the ledger recomputes with dare, not mean', async function () {
    this.timeout(180_000)
    const dir = join(await mkdtemp(join(tmpdir(), 'cfd-fusion-mesh-')), 'mesh')
    const r = await runCli(['mesh', '--nodes', '3', '--rounds', '2', '--steps', '4', '--examples', '120', '--dir', dir, '--json', '--fusion', 'dare', '--fusion-param', 'drop=0.3'], { timeoutMs: 170_000 })
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout)
    assert.equal(out.agreed, true)
    assert.equal(out.rounds.length, 2)
    const { def } = await loadSwarmDefinition(join(dir, 'swarm.json'))
    assert.deepEqual(def.fusion, { rule: 'dare', params: { drop: 0.3 } })

    // Round 1 from node-0's stores: dare with the swarm's params gives the committed hash.
    const L = new HomeLayout(join(dir, 'node-0'))
    const entry = (await Ledger.open(L.ledger, def.model.base.hash)).chain()[0]
    assert.equal(entry.deltas.length, 3)
    const genesis = decodeSafetensors((await new ContentStore(L.checkpoints, 'safetensors').get(def.model.base.hash))!).tensors
    const deltas = new ContentStore(L.deltas, 'cfd')
    const inputs = await Promise.all(entry.deltas.map(async (d) => ({ id: d.id, payload: (await deltas.get(d.id))!, examples: d.examples })))
    assert.equal(hashTensors(fuseRound(genesis, inputs, { rule: 'dare', params: { drop: 0.3 } })), entry.hash)
    assert.notEqual(hashTensors(fuseRound(genesis, inputs)), entry.hash)
    for (const h of Object.values(out.rounds[0].hashes)) assert.equal(h, entry.hash)
  })
})
