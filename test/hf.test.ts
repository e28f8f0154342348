import assert from 'node:assert/strict'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { selectBackend } from '../src/model/backend.js'
import { maxSequenceLength, positionIdsFor } from '../src/model/encoder.js'
import { computeFeatures } from '../src/model/hf/features.js'
import { loadHfModelDir } from '../src/model/hf/model-dir.js'
import { writeHfDirectory } from '../src/model/hf/export.js'
import { decodeSafetensors, encodeSafetensors, readSafetensorsHeader } from '../src/model/safetensors.js'

import { FIXTURES, MODELS } from './helpers/hf-fixtures.js'

const TOLERANCE = 1e-4

interface Golden {
  ignored_keys: string[]
  single: { text: string; input_ids: number[]; last_hidden_state: number[][]; pooler_output: number[] | null }
  batch: { texts: string[]; max_length: number; input_ids: number[][]; attention_mask: number[][]; last_hidden_state: number[][][]; pooler_output: number[][] | null }
  tokenizer: { text: string; input_ids: number[] }[]
}

async function golden(name: string): Promise<Golden> {
  return JSON.parse(await readFile(join(FIXTURES, `${name}.golden.json`), 'utf8'))
}

function maxAbsDiff(ref: number[], got: Float32Array): number {
  assert.equal(got.length, ref.length, 'output size')
  let d = 0
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i] - got[i]))
  return d
}

async function tmp(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

/** A copy of a fixture directory, with `edit` applied to its files. */
async function editedCopy(name: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(await tmp('cfd-hf-'), name)
  await cp(join(FIXTURES, name), dir, { recursive: true })
  await edit(dir)
  return dir
}

async function editJson(file: string, change: (j: Record<string, unknown>) => void): Promise<void> {
  const j = JSON.parse(await readFile(file, 'utf8'))
  change(j)
  await writeFile(file, JSON.stringify(j))
}

describe('Hugging Face models: tokenizers', () => {
  for (const name of MODELS) {
    it(`${name}: tokenizer.json gives the ids of transformers' slow tokenizer`, async () => {
      const m = await loadHfModelDir(join(FIXTURES, name))
      const g = await golden(name)
      for (const c of g.tokenizer) assert.deepEqual(m.tokenizer.encode(c.text, 64), c.input_ids, JSON.stringify(c.text))
    })
  }

  it('truncates to leave room for the special tokens and right-pads with the pad token', async () => {
    for (const name of ['roberta-mlm', 'bert-pretraining']) {
      const m = await loadHfModelDir(join(FIXTURES, name))
      const g = await golden(name)
      const b = m.tokenizer.encodeBatch(g.batch.texts, g.batch.max_length)
      assert.deepEqual(Array.from(b.inputIds), g.batch.input_ids.flat())
      assert.deepEqual(Array.from(b.attentionMask), g.batch.attention_mask.flat())
      const long = m.tokenizer.encode('word '.repeat(100), 8)
      assert.equal(long.length, 8)
      assert.equal(long[0], g.single.input_ids[0], 'starts with the start token')
      assert.equal(long[7], g.single.input_ids[g.single.input_ids.length - 1], 'ends with the end token')
      const padded = m.tokenizer.encodeBatch(['a'], 10, { padToMaxLen: true })
      assert.equal(padded.seqLen, 10)
      assert.equal(padded.inputIds[9], m.tokenizer.padId)
      assert.equal(padded.attentionMask[9], 0)
    }
  })

  it('refuses a missing or malformed tokenizer file, naming it', async () => {
    const missing = await editedCopy('roberta-mlm', (d) => rm(join(d, 'tokenizer.json')))
    await assert.rejects(loadHfModelDir(missing), /roberta-mlm\/tokenizer\.json not found: the tokenizer must be in the fast-tokenizer format/)
    const broken = await editedCopy('roberta-mlm', (d) => writeFile(join(d, 'tokenizer.json'), '{"version": "1.0", "model": '))
    await assert.rejects(loadHfModelDir(broken), /tokenizer\.json is not valid JSON/)
    const noModel = await editedCopy('bert-bf16', (d) => editJson(join(d, 'tokenizer.json'), (j) => delete j.model))
    await assert.rejects(loadHfModelDir(noModel), /tokenizer\.json: has no "model" with a "vocab"/)
    const unknown = await editedCopy('bert-bf16', (d) => editJson(join(d, 'tokenizer.json'), (j) => ((j.pre_tokenizer as Record<string, unknown>).type = 'Nonsense')))
    await assert.rejects(loadHfModelDir(unknown), /tokenizer\.json: cannot build the tokenizer \(.*Nonsense/)
    const badPad = await editedCopy('roberta-mlm', (d) => editJson(join(d, 'tokenizer_config.json'), (j) => (j.pad_token = '</s>')))
    await assert.rejects(loadHfModelDir(badPad), /tokenizer_config\.json: the pad token has id 2, but config\.json has pad_token_id 1/)
  })
})

describe('Hugging Face models: features match the PyTorch reference', function () {
  this.timeout(120_000)
  before(async () => {
    await selectBackend()
  })

  for (const name of MODELS) {
    it(`${name}: last_hidden_state and pooler_output within ${TOLERANCE} (one text, and a padded, truncated batch)`, async () => {
      const m = await loadHfModelDir(join(FIXTURES, name))
      const g = await golden(name)
      const single = m.tokenizer.encodeBatch([g.single.text], maxSequenceLength(m.config))
      assert.deepEqual(Array.from(single.inputIds), g.single.input_ids)
      const fs = await computeFeatures(m.config, m.base.body, single)
      const ds = maxAbsDiff(g.single.last_hidden_state.flat(), fs.lastHiddenState)
      const batch = m.tokenizer.encodeBatch(g.batch.texts, g.batch.max_length)
      const fb = await computeFeatures(m.config, m.base.body, batch)
      const db = maxAbsDiff(g.batch.last_hidden_state.flat(2), fb.lastHiddenState)
      assert.ok(ds <= TOLERANCE && db <= TOLERANCE, `max abs diff ${ds} (single), ${db} (batch)`)
      if (g.batch.pooler_output) {
        const dp = Math.max(maxAbsDiff(g.single.pooler_output!, fs.poolerOutput!), maxAbsDiff(g.batch.pooler_output.flat(), fb.poolerOutput!))
        assert.ok(dp <= TOLERANCE, `pooler max abs diff ${dp}`)
      } else {
        assert.ok(m.base.poolerSeed !== undefined, 'a checkpoint without a pooler gets a generated one')
      }
    })
  }

  it('BERT counts positions from 0, RoBERTa from the pad id + 1 (pads keep the pad id)', async () => {
    const rob = (await loadHfModelDir(join(FIXTURES, 'roberta-mlm'))).config
    const bert = (await loadHfModelDir(join(FIXTURES, 'bert-bf16'))).config
    const ids = Int32Array.from([0, 5, 2, 1, 0, 2, 1, 1])
    assert.deepEqual(Array.from(positionIdsFor(rob, ids, 2, 4)), [2, 3, 4, 1, 2, 3, 1, 1])
    assert.deepEqual(Array.from(positionIdsFor(bert, ids, 2, 4)), [0, 1, 2, 3, 0, 1, 2, 3])
    assert.equal(maxSequenceLength(rob), 64)
    assert.equal(maxSequenceLength(bert), 64)
  })
})

describe('Hugging Face models: checkpoints', () => {
  it('loads untidy hub checkpoints: prefixes, pre-training heads, gamma/beta, buffers, F16 and BF16', async () => {
    const mlm = await loadHfModelDir(join(FIXTURES, 'roberta-mlm'))
    assert.equal(mlm.base.names.prefix, 'roberta.')
    assert.deepEqual(mlm.base.ignored.sort(), (await golden('roberta-mlm')).ignored_keys)
    assert.ok(mlm.base.poolerSeed)
    const pre = await loadHfModelDir(join(FIXTURES, 'bert-pretraining'))
    assert.equal(pre.base.names.prefix, 'bert.')
    assert.equal(pre.base.names.renamed['embeddings.LayerNorm.weight'], 'bert.embeddings.LayerNorm.gamma')
    assert.equal(pre.base.names.renamed['encoder.layer.1.output.LayerNorm.bias'], 'bert.encoder.layer.1.output.LayerNorm.beta')
    assert.equal(Object.keys(pre.base.names.renamed).length, 10)
    assert.ok(pre.base.ignored.includes('bert.embeddings.position_ids'))
    assert.equal(pre.base.ignored.filter((n) => n.startsWith('cls.')).length, 7)
    const f16 = await loadHfModelDir(join(FIXTURES, 'roberta-f16'))
    assert.deepEqual([f16.base.names.prefix, f16.base.names.dtype, f16.base.ignored.length], ['', 'F16', 0])
    const bf16 = await loadHfModelDir(join(FIXTURES, 'bert-bf16'))
    assert.equal(bf16.base.names.dtype, 'BF16')
    // The base is canonical: float32, internal names, sorted; the same file gives the same hash.
    for (const m of [mlm, pre, f16, bf16]) {
      const again = await loadHfModelDir(m.dir)
      assert.equal(again.base.hash, m.base.hash)
      const names = readSafetensorsHeader(m.base.canonical).entries.map((e) => e.name)
      assert.deepEqual(names, [...names].sort())
      assert.ok(names.every((n) => /^(embeddings|encoder|pooler)\./.test(n)))
    }
  })

  it('F16 and BF16 convert both ways bit for bit, rounding to nearest even', async () => {
    for (const [name, dtype] of [['roberta-f16', 'F16'], ['bert-bf16', 'BF16']] as const) {
      const bytes = new Uint8Array(await readFile(join(FIXTURES, name, 'model.safetensors')))
      const orig = decodeSafetensors(bytes)
      const again = decodeSafetensors(encodeSafetensors(orig.tensors, undefined, { dtype }))
      for (const [n, t] of orig.tensors) assert.deepEqual(again.tensors.get(n)!.data, t.data, n)
      assert.ok([...again.dtypes.values()].every((d) => d === dtype))
    }
    const one = (v: number, dtype: 'F16' | 'BF16'): number => decodeSafetensors(encodeSafetensors(new Map([['x', { shape: [1], data: Float32Array.of(v) }]]), undefined, { dtype })).tensors.get('x')!.data[0]
    assert.equal(one(1 + 2 ** -11, 'F16'), 1) // a tie rounds to even
    assert.equal(one(1 + 3 * 2 ** -11, 'F16'), 1 + 2 ** -9)
    assert.equal(one(65504, 'F16'), 65504)
    assert.equal(one(2 ** -24, 'F16'), 2 ** -24)
    assert.equal(one(-3 * 2 ** -26, 'F16'), -(2 ** -24))
    assert.equal(one(1 + 2 ** -8, 'BF16'), 1)
    assert.equal(one(1 + 3 * 2 ** -8, 'BF16'), 1 + 2 ** -6)
    assert.throws(() => encodeSafetensors(new Map([['w', { shape: [1], data: Float32Array.of(70000) }]]), undefined, { dtype: 'F16' }), /tensor w: value 70000 .* beyond the float16 range/)
  })

  it('export writes the original names, dtype and config; loading the export gives the same base', async () => {
    for (const name of MODELS) {
      const m = await loadHfModelDir(join(FIXTURES, name))
      const out = join(await tmp('cfd-hf-export-'), name)
      const files = await writeHfDirectory({ out, config: m.config, body: m.base.body, names: m.base.names, tokenizerFiles: m.tokenizerFiles })
      assert.deepEqual(files.slice(0, 3), ['config.json', 'model.safetensors', 'tokenizer.json'])
      const origEntries = readSafetensorsHeader(m.weightsFile.bytes).entries.filter((e) => !m.base.ignored.includes(e.name))
      const exported = readSafetensorsHeader(new Uint8Array(await readFile(join(out, 'model.safetensors'))))
      assert.deepEqual(exported.metadata, { format: 'pt' })
      const want = new Map(origEntries.map((e) => [e.name, `${e.dtype} [${e.shape}]`]))
      if (m.base.poolerSeed) {
        want.set(`${m.base.names.prefix}pooler.dense.weight`, `${m.base.names.dtype} [32,32]`)
        want.set(`${m.base.names.prefix}pooler.dense.bias`, `${m.base.names.dtype} [32]`)
      }
      assert.deepEqual(new Map(exported.entries.map((e) => [e.name, `${e.dtype} [${e.shape}]`])), want)
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))
      assert.deepEqual(config.architectures, [m.config.model_type === 'bert' ? 'BertModel' : 'RobertaModel'])
      const back = await loadHfModelDir(out)
      assert.equal(back.base.hash, m.base.hash, 'the exported directory loads as the same base')
      assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), await readFile(join(FIXTURES, name, 'tokenizer.json'), 'utf8'))
    }
  })

  it('refuses unsupported architectures and mismatched checkpoints with the file and the reason', async () => {
    const cases: [string, (d: string) => Promise<void>, RegExp][] = [
      ['roberta-mlm', (d) => editJson(join(d, 'config.json'), (j) => (j.model_type = 'gpt2')), /config\.json: model_type "gpt2" is not supported \(supported: "roberta" and "bert"/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => (j.position_embedding_type = 'relative_key')), /config\.json: position_embedding_type "relative_key" is not supported/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => (j.hidden_act = 'silu')), /config\.json: hidden_act "silu" is not supported/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => (j.is_decoder = true)), /config\.json: is_decoder is true/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => delete j.hidden_size), /config\.json: hidden_size is missing/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => (j.num_hidden_layers = 3)), /model\.safetensors: tensor encoder\.layer\.2\.attention\.self\.query\.weight is missing/],
      ['bert-bf16', (d) => editJson(join(d, 'config.json'), (j) => (j.num_hidden_layers = 1)), /model\.safetensors: tensor encoder\.layer\.1\.\S+ is not part of a bert encoder/],
      ['roberta-f16', (d) => editJson(join(d, 'config.json'), (j) => (j.intermediate_size = 40)), /model\.safetensors: tensor encoder\.layer\.0\.intermediate\.dense\.bias has shape \[37\], config\.json implies \[40\]/],
      ['roberta-f16', (d) => editJson(join(d, 'config.json'), (j) => (j.vocab_size = 100)), /has token ids up to 511, but config\.json has vocab_size 100|shape \[512,32\], config\.json implies \[100,32\]/],
      ['roberta-mlm', (d) => rm(join(d, 'model.safetensors')), /model\.safetensors not found: --model needs a Hugging Face model directory/],
      ['roberta-mlm', (d) => writeFile(join(d, 'model.safetensors'), 'not a checkpoint at all'), /model\.safetensors: header length .* exceeds the file.*damaged or not a safetensors checkpoint/],
    ]
    for (const [name, edit, re] of cases) {
      const dir = await editedCopy(name, edit)
      await assert.rejects(loadHfModelDir(dir), re, String(re))
    }
  })
})
