import assert from 'node:assert/strict'
import * as tf from '@tensorflow/tfjs-core'
import { activateBackend, selectBackend, setWasmBatchMatMulFix } from '../src/model/backend.js'
import { builtinModelConfig, ModelConfigSchema, type ModelConfig } from '../src/model/config.js'
import { classifierForward, encoderForward, positionIds, type Weights } from '../src/model/encoder.js'
import { initBody, initHead } from '../src/model/init.js'
import { Rng } from '../src/model/prng.js'
import { matMulOn } from '../src/model/wasm-matmul.js'
import { encodeSafetensors } from '../src/model/safetensors.js'
import { fusionThreads, hashTensors, setFusionThreads, tensorArray } from '../src/fusion/index.js'
import type { TensorMap } from '../src/model/tensors.js'
import { encodeBatch, fnv1a32, HashedWordTokenizer, splitWords } from '../src/model/tokenizer.js'
import { sha256Hex } from '../src/util/hash.js'

// Pinned once: a change means round-0 bases differ between versions or platforms, so that
// swarm members would not agree on the base. Change only together with the init version tag.
const GOLDEN_BODY = 'f5c1d7acd86adbfb831d5f1bb7a09362b82be8fac67207c9cb858ad8b09328bd'
const GOLDEN_HEAD3 = '75546e41e6c4325d48189c179140f51ed12a969cd5a215cd4cdf538b194c0b10'

function expectedBodyShapes(c: ModelConfig): Map<string, number[]> {
  const H = c.hidden_size
  const I = c.intermediate_size
  const m = new Map<string, number[]>([
    ['embeddings.word_embeddings.weight', [c.vocab_size, H]],
    ['embeddings.position_embeddings.weight', [c.max_position_embeddings, H]],
    ['embeddings.token_type_embeddings.weight', [c.type_vocab_size, H]],
    ['embeddings.LayerNorm.weight', [H]],
    ['embeddings.LayerNorm.bias', [H]],
    ['pooler.dense.weight', [H, H]],
    ['pooler.dense.bias', [H]],
  ])
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `encoder.layer.${i}`
    for (const n of ['query', 'key', 'value']) {
      m.set(`${p}.attention.self.${n}.weight`, [H, H])
      m.set(`${p}.attention.self.${n}.bias`, [H])
    }
    m.set(`${p}.attention.output.dense.weight`, [H, H])
    m.set(`${p}.attention.output.dense.bias`, [H])
    m.set(`${p}.attention.output.LayerNorm.weight`, [H])
    m.set(`${p}.attention.output.LayerNorm.bias`, [H])
    m.set(`${p}.intermediate.dense.weight`, [I, H])
    m.set(`${p}.intermediate.dense.bias`, [I])
    m.set(`${p}.output.dense.weight`, [H, I])
    m.set(`${p}.output.dense.bias`, [H])
    m.set(`${p}.output.LayerNorm.weight`, [H])
    m.set(`${p}.output.LayerNorm.bias`, [H])
  }
  return m
}

function toWeights(...maps: TensorMap[]): Weights {
  const w: Weights = new Map()
  for (const m of maps) for (const [n, t] of m) w.set(n, tf.tensor(t.data, t.shape, 'float32'))
  return w
}

describe('model: prng and init', () => {
  const config = builtinModelConfig()

  it('Rng is a fixed integer stream, keyed by its parts', () => {
    const a = Rng.fromSeed('s', 'x')
    const b = Rng.fromSeed('s', 'x')
    const xs = Array.from({ length: 5 }, () => a.nextU32())
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.nextU32()),
      xs,
    )
    assert.notDeepEqual(
      Array.from({ length: 5 }, () => Rng.fromSeed('s', 'y').nextU32()),
      xs,
    )
    assert.deepEqual(Rng.fromSeed(42).nextU32(), Rng.fromSeed('42').nextU32())
    const r = Rng.fromSeed('int')
    for (let i = 0; i < 1000; i++) {
      const v = r.int(7)
      assert.ok(Number.isInteger(v) && v >= 0 && v < 7)
    }
  })

  it('initBody is bit-identical across calls and matches the pinned hash', () => {
    const a = initBody(config, 'coldfusion-golden')
    const b = initBody(config, 'coldfusion-golden')
    const ha = sha256Hex(encodeSafetensors(a))
    assert.equal(ha, sha256Hex(encodeSafetensors(b)))
    assert.equal(ha, GOLDEN_BODY)
    assert.equal(sha256Hex(encodeSafetensors(initHead(config, 3, 'coldfusion-golden'))), GOLDEN_HEAD3)
    assert.notEqual(sha256Hex(encodeSafetensors(initBody(config, 'other'))), ha)
    // hashTensors hashes the same bytes part by part (no model-sized copy), also from shared memory and the kernel arena.
    assert.equal(hashTensors(a), ha)
    const threads = fusionThreads()
    setFusionThreads(2)
    try {
      for (const alloc of [(n: number) => new Float32Array(new SharedArrayBuffer(4 * n)), tensorArray]) {
        const moved = new Map([...a].map(([name, t]) => [name, { shape: t.shape, data: alloc(t.data.length) }]))
        for (const [name, t] of moved) t.data.set(a.get(name)!.data)
        assert.equal(hashTensors(moved), ha)
      }
    } finally {
      setFusionThreads(threads)
    }
  })

  it('has exactly the Hugging Face RobertaModel names and shapes', () => {
    const body = initBody(config, 1)
    const want = expectedBodyShapes(config)
    assert.deepEqual([...body.keys()].sort(), [...want.keys()].sort())
    for (const [name, shape] of want) {
      assert.deepEqual(body.get(name)!.shape, shape, name)
      assert.equal(body.get(name)!.data.length, shape.reduce((p, d) => p * d, 1), name)
    }
    const head = initHead(config, 5, 1)
    const H = config.hidden_size
    assert.deepEqual(
      Object.fromEntries([...head].map(([n, t]) => [n, t.shape])),
      {
        'classifier.dense.weight': [H, H],
        'classifier.dense.bias': [H],
        'classifier.out_proj.weight': [5, H],
        'classifier.out_proj.bias': [5],
      },
    )
  })

  it('follows RoBERTa init: normal(0, initializer_range), zero biases and padding rows, LayerNorm 1/0', () => {
    const body = initBody(config, 'stats')
    const H = config.hidden_size
    const pad = config.pad_token_id
    for (const name of ['embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight']) {
      const d = body.get(name)!.data
      assert.ok(d.subarray(pad * H, (pad + 1) * H).every((x) => x === 0), `${name} padding row`)
      assert.ok(d.subarray((pad + 1) * H, (pad + 2) * H).some((x) => x !== 0))
    }
    const w = body.get('embeddings.word_embeddings.weight')!.data
    let s = 0
    let s2 = 0
    for (const x of w) {
      s += x
      s2 += x * x
    }
    assert.ok(Math.abs(s / w.length) < 1e-3)
    assert.ok(Math.abs(Math.sqrt(s2 / w.length) - config.initializer_range) < 1e-3)
    for (const [name, t] of body) {
      if (name.endsWith('LayerNorm.weight')) assert.ok(t.data.every((x) => x === 1), name)
      else if (name.endsWith('.bias')) assert.ok(t.data.every((x) => x === 0), name)
    }
  })

  it('derives each tensor from (seed, name) only', () => {
    const deeper = ModelConfigSchema.parse({ ...builtinModelConfig(), num_hidden_layers: 3 })
    const a = initBody(config, 7)
    const b = initBody(deeper, 7)
    for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, name)
  })
})

describe('model: tokenizer', () => {
  it('splits lowercased words and punctuation', () => {
    assert.deepEqual(splitWords('Hello, World!  Über-cool 42x'), ['hello', ',', 'world', '!', 'über', '-', 'cool', '42x'])
    assert.deepEqual(splitWords('   '), [])
  })

  it('hashes words with FNV-1a 32 into [4, vocab)', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5)
    assert.equal(fnv1a32('a'), 0xe40c292c)
    assert.equal(fnv1a32('foobar'), 0xbf9cf968)
    const tok = new HashedWordTokenizer(2048)
    assert.equal(tok.wordId('foobar'), 4 + (0xbf9cf968 % 2044))
    assert.equal(tok.wordId('Foobar'.toLowerCase()), tok.tokenize('FOOBAR')[0])
  })

  it('encodes <s> ... </s>, truncates, right-pads with <pad> and masks', () => {
    const tok = new HashedWordTokenizer(100)
    const e = encodeBatch(['a b c d e f', 'x', ''], 5, 100)
    assert.equal(e.batch, 3)
    assert.equal(e.seqLen, 5)
    const [a, b, c, d] = tok.tokenize('a b c d')
    assert.deepEqual([...e.inputIds.subarray(0, 5)], [0, a, b, c, 2])
    void d
    assert.deepEqual([...e.inputIds.subarray(5, 10)], [0, tok.wordId('x'), 2, 1, 1])
    assert.deepEqual([...e.inputIds.subarray(10, 15)], [0, 2, 1, 1, 1])
    assert.deepEqual([...e.attentionMask], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0])
    // Pads to the longest row unless asked to pad to maxLen.
    assert.equal(encodeBatch(['x'], 10, 100).seqLen, 3)
    assert.equal(tok.encodeBatch(['x'], 10, { padToMaxLen: true }).seqLen, 10)
    assert.throws(() => encodeBatch(['x'], 1, 100), /maxLen/)
  })

  it('computes RoBERTa position ids', () => {
    const ids = new Int32Array([0, 5, 6, 2, 1, 1, 0, 2, 1, 1, 1, 1])
    assert.deepEqual([...positionIds(ids, 2, 6, 1)], [2, 3, 4, 5, 1, 1, 2, 3, 1, 1, 1, 1])
  })
})

/**
 * x y summed over k in order in float32 (the SIMD product's values): `batches` products of M x K
 * by K x N, an operand holding one matrix only being broadcast over the batches.
 */
function inOrderProduct(x: ArrayLike<number>, y: ArrayLike<number>, batches: number, M: number, K: number, N: number): Float32Array {
  const out = new Float32Array(batches * M * N)
  for (let t = 0; t < batches; t++) {
    const xo = x.length === M * K ? 0 : t * M * K
    const yo = y.length === K * N ? 0 : t * K * N
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0
        for (let k = 0; k < K; k++) sum = Math.fround(sum + Math.fround(x[xo + i * K + k] * y[yo + k * N + j]))
        out[t * M * N + i * N + j] = sum
      }
    }
  }
  return out
}

describe('model: backend and encoder (wasm)', function () {
  this.timeout(60_000)
  const config = builtinModelConfig()

  before(async () => {
    await activateBackend('wasm')
  })

  it('selectBackend picks the best available backend once', async () => {
    const first = await selectBackend({ prefer: 'auto' })
    assert.ok(['tensorflow', 'wasm', 'cpu'].includes(first.name))
    assert.equal(tf.getBackend(), first.name)
    for (const t of first.tried) assert.ok(typeof t.name === 'string' && t.error.length > 0)
    // Cached: the same result, whatever is asked later, and re-activated if something switched.
    await activateBackend('cpu')
    assert.equal(await selectBackend({ prefer: 'cpu' }), first)
    assert.equal(tf.getBackend(), first.name)
    await activateBackend('wasm')
  })

  it('the explicit-transpose BatchMatMul matches the original kernel for all transpose flags', () => {
    assert.equal(tf.getBackend(), 'wasm')
    const rng = Rng.fromSeed('matmul')
    const rand = (shape: number[]): tf.Tensor => {
      const n = shape.reduce((p, d) => p * d, 1)
      return tf.tensor(Float32Array.from({ length: n }, () => rng.normalApprox()), shape)
    }
    const before = tf.memory().numTensors
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      for (const batch of [[], [3], [2, 3]]) {
        const [M, K, N] = [5, 7, 4]
        const a = rand([...batch, ...(ta ? [K, M] : [M, K])])
        const b = rand([...batch, ...(tb ? [N, K] : [K, N])])
        setWasmBatchMatMulFix(false)
        const ref = tf.matMul(a, b, ta, tb)
        setWasmBatchMatMulFix(true)
        const got = tf.matMul(a, b, ta, tb)
        assert.deepEqual(got.shape, [...batch, M, N])
        assert.deepEqual(got.shape, ref.shape)
        const g = got.dataSync()
        const r = ref.dataSync()
        for (let i = 0; i < r.length; i++) assert.ok(Math.abs(g[i] - r[i]) < 1e-4, `ta=${ta} tb=${tb} batch=[${batch}] at ${i}`)
        tf.dispose([a, b, ref, got])
      }
    }
    assert.equal(tf.memory().numTensors, before)
  })

  it('the SIMD product sums every value in order, exactly, for every tile edge and broadcast', () => {
    const memory = new WebAssembly.Memory({ initial: 16 })
    const mm = matMulOn(memory)
    assert.ok(mm, 'WebAssembly SIMD is available on Node 22')
    // A shared memory (a threaded backend build's) cannot be imported: no kernel, the backend's own path.
    assert.equal(matMulOn(new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true })), null)
    const rng = Rng.fromSeed('simd-matmul')
    // Rows 1 to 9 (4-row tiles and the rest), columns 4 to 20 (8-column tiles, a 4-column edge), K 1 to 6, B and A broadcast.
    const cases: [number, number, number, number, 'a' | 'b' | ''][] = []
    for (const M of [1, 3, 4, 5, 9]) for (const N of [4, 8, 12, 20]) for (const K of [1, 6]) cases.push([2, M, K, N, ''])
    cases.push([3, 5, 7, 12, 'a'], [3, 5, 7, 12, 'b'], [1, 1, 600, 64, ''])
    for (const [batches, M, K, N, broadcast] of cases) {
      const aBatches = broadcast === 'a' ? 1 : batches
      const bBatches = broadcast === 'b' ? 1 : batches
      const f = new Float32Array(memory.buffer)
      const [a, b, c] = [64, 64 + 4 * aBatches * M * K + 16, 64 + 4 * (aBatches * M * K + bBatches * K * N) + 32]
      for (let i = 0; i < aBatches * M * K; i++) f[a / 4 + i] = rng.normalApprox()
      for (let i = 0; i < bBatches * K * N; i++) f[b / 4 + i] = rng.normalApprox()
      f.fill(NaN, c / 4, c / 4 + batches * M * N + 8)
      mm(a, b, c, M, K, N, batches, aBatches === 1 ? 0 : 4 * M * K, bBatches === 1 ? 0 : 4 * K * N)
      const want = inOrderProduct(f.subarray(a / 4, a / 4 + aBatches * M * K), f.subarray(b / 4, b / 4 + bBatches * K * N), batches, M, K, N)
      assert.deepEqual(f.subarray(c / 4, c / 4 + batches * M * N), want, `batches ${batches} ${M}x${K}x${N} broadcast ${broadcast || 'none'}`)
      // Nothing written past the result.
      assert.ok(Number.isNaN(f[c / 4 + batches * M * N]))
    }
  })

  it('BatchMatMul on wasm takes the SIMD product where it applies, and the original kernel elsewhere', () => {
    const rng = Rng.fromSeed('matmul-paths')
    const rand = (shape: number[]): tf.Tensor => tf.tensor(Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normalApprox()), shape)
    const before = tf.memory().numTensors
    // SIMD: batched (attention), one row (bias gradient), a small product, batches broadcast
    // either way. Original: N not a multiple of 4, batch shapes that broadcast from more than 1,
    // and a right operand over 1 MiB (XNNPACK also sums in order there, so only the values are checked).
    const cases: [number[], number[], 'simd' | 'original'][] = [
      [[2, 4, 32, 32], [2, 4, 32, 16], 'simd'], [[2, 3, 8, 64], [2, 3, 64, 16], 'simd'], [[1, 512], [512, 64], 'simd'], [[48, 64], [64, 64], 'simd'],
      [[3, 5, 7], [7, 8], 'simd'], [[5, 7], [3, 7, 12], 'simd'],
      [[6, 5], [5, 6], 'original'], [[1, 3, 5, 7], [2, 3, 7, 4], 'original'], [[8, 520], [520, 512], 'original'],
    ]
    let orderMatters = false
    for (const [as, bs, path] of cases) {
      const a = rand(as)
      const b = rand(bs)
      setWasmBatchMatMulFix(false)
      const ref = tf.matMul(a, b)
      setWasmBatchMatMulFix(true)
      const got = tf.matMul(a, b)
      assert.deepEqual(got.shape, ref.shape, `[${as}] x [${bs}]`)
      const g = got.dataSync()
      const r = ref.dataSync()
      for (let i = 0; i < r.length; i++) assert.ok(Math.abs(g[i] - r[i]) < 1e-4 * Math.max(1, Math.abs(r[i])), `[${as}] x [${bs}] at ${i}: ${g[i]} vs ${r[i]}`)
      if (path === 'simd') {
        const [M, K, N] = [a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1]]
        const want = inOrderProduct(a.dataSync(), b.dataSync(), ref.size / (M * N), M, K, N)
        assert.deepEqual(g, want, `[${as}] x [${bs}]: not the SIMD product's values`)
        orderMatters ||= r.some((x, i) => x !== want[i])
      } else assert.deepEqual(g, r, `[${as}] x [${bs}]: not the original kernel's values`)
      tf.dispose([a, b, ref, got])
    }
    // A batched case with K over the original kernel's block of k tells the two apart: the test sees which one ran.
    assert.ok(orderMatters)
    assert.equal(tf.memory().numTensors, before)
  })

  it('UnsortedSegmentSum on wasm sums rows into segments (gradient of gather)', async () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2])
    const ids = tf.tensor1d([2, 0, 2, 9], 'int32') // 9 is out of range: dropped
    const s = tf.unsortedSegmentSum(x, ids, 3)
    assert.deepEqual(Array.from(await s.data()), [3, 4, 0, 0, 6, 8])
    // And through autodiff of an embedding lookup.
    const table = tf.variable(tf.zeros([5, 2]))
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor1d([1, 3, 1], 'int32'))))(table)
    assert.deepEqual(Array.from(await g.data()), [0, 0, 2, 2, 0, 0, 1, 1, 0, 0])
    tf.dispose([x, ids, s, table, g])
  })

  it('GatherV2 on wasm (row copy along axis 0, original kernel otherwise) gathers the right values', () => {
    const x = tf.tensor3d(Array.from({ length: 24 }, (_, i) => i), [4, 3, 2])
    const rows = tf.gather(x, tf.tensor2d([3, 0, 3, 1], [2, 2], 'int32'))
    assert.deepEqual(rows.shape, [2, 2, 3, 2])
    assert.deepEqual(Array.from(rows.dataSync()), [18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 23, 6, 7, 8, 9, 10, 11])
    const cols = tf.gather(x, tf.tensor1d([2, 0], 'int32'), 1)
    assert.deepEqual(cols.shape, [4, 2, 2])
    assert.deepEqual(Array.from(cols.dataSync()).slice(0, 4), [4, 5, 0, 1])
    const before = tf.memory().numTensors
    const bad = tf.tensor1d([4], 'int32')
    assert.throws(() => tf.gather(x, bad), /not in \[0, 3\]/)
    bad.dispose()
    assert.equal(tf.memory().numTensors, before)
    tf.dispose([x, rows, cols])
  })

  it('encoder returns [B,T,H] and pooled [B,H]; padding does not change real tokens', () => {
    const w = toWeights(initBody(config, 'enc'), initHead(config, 3, 'enc'))
    try {
      const tok = new HashedWordTokenizer(config.vocab_size)
      const texts = ['the quick brown fox', 'jumps']
      const short = tok.encodeBatch(texts, 64)
      const long = tok.encodeBatch(texts, 64, { padToMaxLen: true })
      const H = config.hidden_size
      tf.tidy(() => {
        const a = encoderForward(config, w, short)
        const b = encoderForward(config, w, long)
        assert.deepEqual(a.lastHiddenState.shape, [2, short.seqLen, H])
        assert.deepEqual(b.lastHiddenState.shape, [2, 64, H])
        assert.deepEqual(a.pooled!.shape, [2, H])
        const ah = a.lastHiddenState.arraySync()
        const bh = b.lastHiddenState.arraySync()
        for (let r = 0; r < 2; r++) {
          // The shorter row is padded within `short` too: its real tokens must not see the padding.
          const real = short.attentionMask.subarray(r * short.seqLen, (r + 1) * short.seqLen).reduce((p, m) => p + m, 0)
          for (let t = 0; t < real; t++) {
            for (let h = 0; h < H; h++) assert.ok(Math.abs(ah[r][t][h] - bh[r][t][h]) < 1e-5, `row ${r} token ${t}`)
          }
        }
        // A row alone equals the same row in a batch with a longer neighbour.
        const alone = encoderForward(config, w, tok.encodeBatch(['jumps'], 64)).lastHiddenState.arraySync()
        for (let h = 0; h < H; h++) assert.ok(Math.abs(alone[0][0][h] - ah[1][0][h]) < 1e-5)
        const logits = classifierForward(config, w, a.lastHiddenState)
        assert.deepEqual(logits.shape, [2, 3])
        assert.ok(Array.from(logits.dataSync()).every(Number.isFinite))
      })
    } finally {
      for (const t of w.values()) t.dispose()
    }
  })

  it('refuses unsupported configs and too-long sequences', () => {
    const w: Weights = new Map()
    const batch = encodeBatch(['a'], 8, config.vocab_size)
    const bad = { ...builtinModelConfig(), position_embedding_type: 'relative_key' } as ModelConfig
    assert.throws(() => encoderForward(bad, w, batch), /unsupported model config: position_embedding_type/)
    const dec = { ...builtinModelConfig(), is_decoder: true } as ModelConfig
    assert.throws(() => encoderForward(dec, w, batch), /is_decoder/)
    const tooLong = encodeBatch(['a'], 65, config.vocab_size)
    tooLong.seqLen = 65
    tooLong.inputIds = new Int32Array(65).fill(5)
    tooLong.attentionMask = new Int32Array(65).fill(1)
    assert.throws(() => encoderForward(config, w, tooLong), /exceeds/)
  })
})
