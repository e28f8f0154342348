import assert from 'node:assert/strict'
import * as tf from '@tensorflow/tfjs-core'
import { activateBackend } from '../src/model/backend.js'
import { builtinModelConfig } from '../src/model/config.js'
import { initBody, initHead } from '../src/model/init.js'
import { Rng } from '../src/model/prng.js'
import { selectTensors, type TensorMap } from '../src/model/tensors.js'
import { ADAM_UPDATE, adamUpdateInto, ensureAdamKernel, setFusedAdam } from '../src/train/adam.js'
import { AbortError, evaluate, fineTune, type Example } from '../src/train/trainer.js'

/** Label 1 iff the text contains the word "alpha"; other words are filler. */
function alphaTask(n: number, seed: string): Example[] {
  const rng = Rng.fromSeed('alpha-task', seed)
  const filler = ['red', 'green', 'blue', 'cat', 'dog', 'runs', 'sleeps', 'the', 'a', 'big', 'small', 'house', 'tree', 'river', 'beta', 'gamma']
  const out: Example[] = []
  for (let i = 0; i < n; i++) {
    const len = 3 + rng.int(8)
    const words = Array.from({ length: len }, () => filler[rng.int(filler.length)])
    const label = i % 2
    if (label === 1) words[rng.int(len)] = 'alpha'
    out.push({ text: words.join(' '), label })
  }
  return out
}

function sameData(a: TensorMap, b: TensorMap): boolean {
  if (a.size !== b.size) return false
  for (const [n, t] of a) {
    const u = b.get(n)
    if (!u || u.data.length !== t.data.length || !u.data.every((x, i) => x === t.data[i])) return false
  }
  return true
}

describe('train: fineTune and evaluate (wasm)', function () {
  this.timeout(60_000)
  const config = builtinModelConfig()
  const train = alphaTask(400, 'train')
  const test = alphaTask(200, 'test')

  before(async () => {
    await activateBackend('wasm')
  })

  it('learns a simple task from chance to > 0.9 accuracy without leaking tensors', async () => {
    const body = initBody(config, 'train-test')
    const head = initHead(config, 2, 'train-test')
    const tensorsBefore = tf.memory().numTensors
    const base = await evaluate({ config, body, head, examples: test, maxLen: 16 })
    assert.equal(base.n, 200)
    assert.ok(base.accuracy < 0.7, `initial accuracy ${base.accuracy}`)
    const losses: number[] = []
    const res = await fineTune({
      config,
      body,
      head,
      examples: train,
      numLabels: 2,
      steps: 60,
      batchSize: 16,
      lr: 1e-3,
      seed: 1,
      maxLen: 16,
      onStep: (step, total, loss) => {
        assert.equal(total, 60)
        assert.equal(step, losses.length + 1)
        losses.push(loss)
      },
    })
    assert.equal(losses.length, 60)
    assert.equal(res.examplesSeen, 60 * 16)
    assert.ok(res.seconds > 0)
    assert.ok(Math.abs(res.meanLoss - losses.reduce((p, l) => p + l, 0) / 60) < 1e-9)
    const after = await evaluate({ config, body: res.body, head: res.head, examples: test, maxLen: 16, batchSize: 50 })
    assert.ok(after.accuracy > 0.9, `accuracy after fine-tuning ${after.accuracy} (before ${base.accuracy})`)
    assert.ok(after.loss < base.loss)
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked')
    // Same names and shapes out as in; the input maps are not modified.
    assert.deepEqual([...res.body.keys()].sort(), [...body.keys()].sort())
    assert.deepEqual([...res.head.keys()].sort(), [...head.keys()].sort())
    for (const [n, t] of res.body) assert.deepEqual(t.shape, body.get(n)!.shape)
    assert.ok(sameData(body, initBody(config, 'train-test')))
    assert.ok(!sameData(res.body, body))
    // The pooler is not on the classification path: returned unchanged.
    assert.deepEqual(res.body.get('pooler.dense.weight')!.data, body.get('pooler.dense.weight')!.data)
  })

  it('returns only the tensors it was given, and repeats exactly with the same seed', async () => {
    const body = selectTensors(initBody(config, 'np'), (n) => !n.startsWith('pooler.'))
    const head = initHead(config, 3, 'np')
    const examples = train.map((e, i) => ({ text: e.text, label: i % 3 }))
    const run = () => fineTune({ config, body, head, examples, numLabels: 3, steps: 3, batchSize: 8, lr: 1e-3, seed: 'rep', maxLen: 12 })
    const a = await run()
    const b = await run()
    assert.deepEqual([...a.body.keys()].sort(), [...body.keys()].sort())
    assert.ok(!a.body.has('pooler.dense.weight'))
    assert.ok(sameData(a.body, b.body) && sameData(a.head, b.head))
    assert.equal(a.meanLoss, b.meanLoss)
  })

  it('stops on abort with an AbortError and frees everything', async () => {
    const body = initBody(config, 'abort')
    const head = initHead(config, 2, 'abort')
    const before = tf.memory().numTensors
    const ac = new AbortController()
    let steps = 0
    await assert.rejects(
      fineTune({
        config,
        body,
        head,
        examples: train,
        numLabels: 2,
        steps: 50,
        batchSize: 4,
        lr: 1e-3,
        seed: 2,
        maxLen: 12,
        signal: ac.signal,
        onStep: (step) => {
          steps = step
          if (step === 2) ac.abort()
        },
      }),
      (err: unknown) => err instanceof AbortError && err.name === 'AbortError',
    )
    assert.equal(steps, 2)
    assert.equal(tf.memory().numTensors, before)
  })

  it('follows the same loss trajectory on the cpu backend (kernel patches agree)', async () => {
    const body = initBody(config, 'xb')
    const head = initHead(config, 2, 'xb')
    const run = async (): Promise<number[]> => {
      const losses: number[] = []
      await fineTune({ config, body, head, examples: train, numLabels: 2, steps: 3, batchSize: 8, lr: 1e-3, seed: 'xb', maxLen: 12, onStep: (_s, _t, l) => losses.push(l) })
      return losses
    }
    const onWasm = await run()
    await activateBackend('cpu')
    try {
      const onCpu = await run()
      for (let i = 0; i < 3; i++) assert.ok(Math.abs(onWasm[i] - onCpu[i]) < 1e-4, `step ${i + 1}: wasm ${onWasm[i]} cpu ${onCpu[i]}`)
    } finally {
      await activateBackend('wasm')
    }
  })

  it('the fused Adam update gives the bits of the unfused tf ops, on wasm and on cpu', async () => {
    const body = initBody(config, 'adam')
    const head = initHead(config, 2, 'adam')
    // lr 1e-2 and 4 steps: large updates, bias corrections still far from 1.
    const run = async (fused: boolean) => {
      setFusedAdam(fused)
      try {
        return await fineTune({ config, body, head, examples: train, numLabels: 2, steps: 4, batchSize: 8, lr: 1e-2, seed: 'adam', maxLen: 12 })
      } finally {
        setFusedAdam(true)
      }
    }
    for (const backend of ['wasm', 'cpu'] as const) {
      await activateBackend(backend)
      try {
        const before = tf.memory().numTensors
        const fused = await run(true)
        const unfused = await run(false)
        assert.ok(!sameData(fused.body, body), `${backend}: the steps changed the weights`)
        assert.ok(sameData(fused.body, unfused.body) && sameData(fused.head, unfused.head), `${backend}: fused and unfused updates differ`)
        assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`)
      } finally {
        await activateBackend('wasm')
      }
    }
  })

  it('the SIMD Adam kernel gives the bits of the JS loop, whatever the length (vector steps and tail)', () => {
    assert.ok(ensureAdamKernel('wasm'))
    const rng = Rng.fromSeed('adam-kernel')
    const k = { b1: Math.fround(0.9), c1: Math.fround(0.1), b2: Math.fround(0.999), c2: Math.fround(0.001), inv: Math.fround(1 / Math.sqrt(0.0019990)), eps: Math.fround(1e-8), step: Math.fround(1e-3 / 0.19) }
    for (const n of [1, 3, 4, 5, 7, 4099]) {
      const arrays = [0, 1, 2, 3].map((j) => Float32Array.from({ length: n }, () => (j === 2 ? Math.abs(rng.normalApprox()) * 1e-3 : rng.normalApprox())))
      const [x, m, v, g] = arrays.map((a) => tf.tensor1d(a))
      const out = tf.engine().runKernel(ADAM_UPDATE, { x, m, v, g }, k as unknown as tf.NamedAttrMap) as tf.Tensor[]
      const want: [Float32Array, Float32Array, Float32Array] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)]
      adamUpdateInto(arrays[0], arrays[1], arrays[2], arrays[3], want, k)
      out.forEach((t, i) => assert.deepEqual(t.dataSync(), want[i], `n = ${n}, output ${i}`))
      tf.dispose([x, m, v, g, ...out])
    }
  })

  it('the fused Adam kernel refuses inputs of different shapes', () => {
    assert.ok(ensureAdamKernel('wasm'))
    const [x, g] = [tf.zeros([4]), tf.zeros([5])]
    const k = { b1: 0.9, c1: 0.1, b2: 0.999, c2: 0.001, inv: 1, eps: 1e-8, step: 1e-3 }
    assert.throws(() => tf.engine().runKernel(ADAM_UPDATE, { x, m: x, v: x, g }, k), /inputs must be float32 of one shape/)
    tf.dispose([x, g])
  })

  it('rejects bad inputs clearly', async () => {
    const body = initBody(config, 'bad')
    const head = initHead(config, 2, 'bad')
    const common = { config, body, head, numLabels: 2, steps: 1, batchSize: 2, lr: 1e-3, seed: 0, maxLen: 8 }
    await assert.rejects(fineTune({ ...common, examples: [{ text: 'x', label: 2 }] }), /label 2 outside/)
    await assert.rejects(fineTune({ ...common, examples: [] }), /no examples/)
    await assert.rejects(fineTune({ ...common, examples: train, maxLen: 500 }), /maxLen/)
    await assert.rejects(fineTune({ ...common, examples: train, numLabels: 3 }), /out_proj.weight has shape/)
    const broken = new Map(body)
    broken.delete('encoder.layer.1.output.dense.weight')
    await assert.rejects(fineTune({ ...common, examples: train, body: broken }), /missing tensor encoder.layer.1.output.dense.weight/)
  })
})
