import { pathToFileURL } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import { activateBackend, getWasmBatchMatMulFix, setWasmBatchMatMulFix, type BackendName } from '../model/backend.js'
import { builtinModelConfig, type ModelConfig } from '../model/config.js'
import { initBody, initHead } from '../model/init.js'
import { Rng } from '../model/prng.js'
import { FIRST_WORD_ID, type EncodedBatch } from '../model/tokenizer.js'
import { TrainState } from './trainer.js'

/**
 * Times one full training step (forward, backward, Adam) of a model on a backend, on synthetic
 * full-length sequences: what sizing the built-in model and the round length depends on.
 * Not a test; `node dist/src/train/stepbench.js [batch] [seqLen] [steps]` prints a small table.
 */
export async function measureStep(
  backend: BackendName,
  batch: number,
  seqLen: number,
  steps: number,
  opts: { matMulFix?: boolean; config?: ModelConfig; warmup?: number } = {},
): Promise<number> {
  const config = opts.config ?? builtinModelConfig()
  await activateBackend(backend)
  const previousFix = getWasmBatchMatMulFix()
  setWasmBatchMatMulFix(opts.matMulFix ?? true)
  const state = new TrainState(config, initBody(config, 'bench'), initHead(config, 2, 'bench'), 2, 'bench')
  try {
    const { data, labels } = syntheticBatch(config, batch, seqLen)
    for (let i = 0; i < (opts.warmup ?? 1); i++) state.step(data, labels, 1e-4)
    const t0 = performance.now()
    for (let i = 0; i < steps; i++) state.step(data, labels, 1e-4)
    return (performance.now() - t0) / 1000 / steps
  } finally {
    state.dispose()
    setWasmBatchMatMulFix(previousFix)
  }
}

/** A full-length batch of random word ids (every row seqLen tokens, <s> ... </s>) and alternating labels. */
export function syntheticBatch(config: ModelConfig, batch: number, seqLen: number, seed = 'stepbench'): { data: EncodedBatch; labels: Int32Array } {
  const rng = Rng.fromSeed(seed)
  const inputIds = new Int32Array(batch * seqLen)
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seqLen; t++) inputIds[b * seqLen + t] = FIRST_WORD_ID + rng.int(config.vocab_size - FIRST_WORD_ID)
    inputIds[b * seqLen] = config.bos_token_id
    inputIds[b * seqLen + seqLen - 1] = config.eos_token_id
  }
  const data: EncodedBatch = { inputIds, attentionMask: new Int32Array(batch * seqLen).fill(1), batch, seqLen }
  return { data, labels: Int32Array.from({ length: batch }, (_, i) => i % 2) }
}

export interface KernelShare {
  kernel: string
  ms: number
  share: number
  calls: number
}

/** tf.profile of one training step on the active backend: time per kernel name, largest first. */
export async function profileStep(batch: number, seqLen: number, config: ModelConfig = builtinModelConfig()): Promise<{ totalMs: number; kernels: KernelShare[] }> {
  const state = new TrainState(config, initBody(config, 'bench'), initHead(config, 2, 'bench'), 2, 'bench')
  try {
    const { data, labels } = syntheticBatch(config, batch, seqLen)
    state.step(data, labels, 1e-4)
    const info = await tf.profile(() => {
      state.step(data, labels, 1e-4)
    })
    const by = new Map<string, { ms: number; calls: number }>()
    let totalMs = 0
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0
      const e = by.get(k.name) ?? { ms: 0, calls: 0 }
      e.ms += ms
      e.calls++
      by.set(k.name, e)
      totalMs += ms
    }
    const kernels = [...by].map(([kernel, e]) => ({ kernel, ms: e.ms, share: e.ms / totalMs, calls: e.calls })).sort((a, b) => b.ms - a.ms)
    return { totalMs, kernels }
  } finally {
    state.dispose()
  }
}

async function main(): Promise<void> {
  const [batch = 16, seqLen = 32, steps = 5] = process.argv.slice(2).map(Number)
  const runs: { label: string; backend: BackendName; fix: boolean; steps: number }[] = [
    { label: 'wasm (BatchMatMul fix)', backend: 'wasm', fix: true, steps },
    { label: 'wasm (original kernel)', backend: 'wasm', fix: false, steps },
    { label: 'cpu', backend: 'cpu', fix: true, steps: Math.max(1, Math.ceil(steps / 5)) },
  ]
  for (const r of runs) {
    // Best of 3: on a shared machine the minimum is the least disturbed estimate.
    let s = Infinity
    for (let i = 0; i < 3; i++) s = Math.min(s, await measureStep(r.backend, batch, seqLen, r.steps, { matMulFix: r.fix }))
    console.log(`${r.label.padEnd(26)} batch ${batch} seq ${seqLen}: ${(s * 1000).toFixed(1)} ms/step (tf ${tf.getBackend()})`)
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
