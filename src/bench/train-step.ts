import { runChild } from './child.js'
import { fig, type BenchResult, type Figures } from './figures.js'
import { installTorch, torchStep } from './pytorch.js'
import type { StepJob, StepResult } from './train-step-worker.js'

/**
 * The built-in model's training step (forward, backward, Adam; full 32-token rows) on wasm and
 * cpu against the same model's step in PyTorch on this CPU; a tf.profile of the wasm step; and
 * the daemon's training loop (fineTune) against a bare TensorFlow.js loop of the same model.
 */
export interface TrainStepOptions {
  batches: number[]
  wasmSteps: number
  cpuSteps: number
  loopSteps: number
  repeats: number
  /** Run the PyTorch reference (the smoke run skips it). */
  torch: boolean
  torchThreads: number
  installTorch: boolean
}

export async function runTrainStep(o: TrainStepOptions): Promise<BenchResult> {
  const wasm = await runChild<StepResult>('./train-step-worker.js', { backend: 'wasm', batches: o.batches, steps: o.wasmSteps, repeats: o.repeats, profile: true, loopSteps: o.loopSteps } satisfies StepJob)
  const cpu = await runChild<StepResult>('./train-step-worker.js', { backend: 'cpu', batches: o.batches, steps: o.cpuSteps, repeats: Math.min(2, o.repeats), profile: false, loopSteps: 0 } satisfies StepJob)
  if (o.installTorch) installTorch()
  const torch = o.torch ? torchStep(o.batches, 20, o.torchThreads) : { missing: 'PyTorch reference not run at these sizes' }
  const torchMs = 'missing' in torch ? undefined : torch.msPerStep
  const figures: Figures = {}
  const model = { model: 'built-in (2 layers, width 64, vocab 2048)', seq: wasm.seqLen }
  for (const r of [wasm, cpu]) {
    for (const b of o.batches) {
      const ms = r.msPerStep[String(b)]
      figures[`train_step_ms_${r.backend}_b${b}`] = fig(ms, 'ms per step (forward, backward, Adam)', { ...model, batch: b, backend: r.backend })
      figures[`train_samples_per_s_${r.backend}_b${b}`] = fig((1000 * b) / ms, 'samples/s', { ...model, batch: b, backend: r.backend })
    }
  }
  for (const b of o.batches) {
    const t = torchMs?.[String(b)]
    const sizes = { ...model, batch: b, torch_threads: o.torchThreads }
    const note = 'missing' in torch ? torch.missing : `PyTorch ${torch.torch} (${torch.python}), ${torch.threads} thread(s); tfjs wasm runs on one thread`
    figures[`train_step_ms_pytorch_b${b}`] = fig(t ?? null, 'ms per step', sizes, note)
    // The first batch size is the headline (16 in the default and full runs).
    figures[b === o.batches[0] ? 'train_step_vs_pytorch' : `train_step_vs_pytorch_b${b}`] = fig(t ? wasm.msPerStep[String(b)] / t : null, 'ratio (wasm ms / PyTorch ms per step)', sizes, note)
  }
  if (wasm.loop) {
    const l = wasm.loop
    figures.train_loop_overhead = fig(l.daemonSeconds / l.bareSeconds - 1, 'fraction (fineTune seconds / bare tfjs loop seconds - 1)', { ...model, batch: l.batch, steps: l.steps, backend: 'wasm' },
      'both include setup and the final weight readback; the bare loop uses tf.train.adam on batches tokenized in advance')
  }
  const top = wasm.profile?.kernels.slice(0, 6) ?? []
  if (wasm.profile) figures.train_step_top_kernel_share = fig(top[0]?.share ?? null, `fraction of kernel time (${top[0]?.kernel})`, { ...model, batch: wasm.profile.batch, backend: 'wasm' })
  const row = (name: string, ms: (b: number) => number | undefined) => `  ${name.padEnd(24)} ${o.batches.map((b) => { const v = ms(b); return v === undefined ? 'n/a'.padStart(22) : `${v.toFixed(1).padStart(9)} ms ${((1000 * b) / v).toFixed(0).padStart(6)}/s` }).join('  ')}`
  const table = [
    `Training step, built-in model, ${wasm.seqLen} tokens per row (ms per step, samples/s)`,
    `  ${''.padEnd(24)} ${o.batches.map((b) => `batch ${b}`.padStart(22)).join('  ')}`,
    row('tfjs wasm', (b) => wasm.msPerStep[String(b)]),
    row('tfjs cpu', (b) => cpu.msPerStep[String(b)]),
    row(`PyTorch (${o.torchThreads} thread)`, (b) => torchMs?.[String(b)]),
    `  wasm / PyTorch: ${o.batches.map((b) => (torchMs ? `${(wasm.msPerStep[String(b)] / torchMs[String(b)]).toFixed(2)}x (batch ${b})` : 'n/a')).join(', ')}${'missing' in torch ? ` (${torch.missing})` : ''}`,
    ...(wasm.loop ? [`  daemon loop (fineTune) vs bare tfjs loop, ${wasm.loop.steps} steps batch ${wasm.loop.batch}: ${wasm.loop.daemonSeconds.toFixed(2)} s vs ${wasm.loop.bareSeconds.toFixed(2)} s (overhead ${(100 * (wasm.loop.daemonSeconds / wasm.loop.bareSeconds - 1)).toFixed(1)}%)`] : []),
    ...(wasm.profile ? [`  wasm step profile (tf.profile, batch ${wasm.profile.batch}): ${top.map((k) => `${k.kernel} ${(100 * k.share).toFixed(0)}%`).join(', ')}`] : []),
  ]
  return { figures, curves: { train_step_profile_wasm: wasm.profile?.kernels ?? [], train_step_runs: [wasm, cpu, torch] }, table }
}
