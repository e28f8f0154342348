import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { builtinModelConfig } from '../model/config.js'

/**
 * The PyTorch reference step (scripts/bench/torch_step.py) on the built-in model. Uses the first
 * Python that imports torch: Debian's python3-torch lives in /usr/bin/python3's packages, which
 * a python3 earlier on PATH (pyenv, venv) may not see. With --install-torch, installs it first.
 */
const SCRIPT = fileURLToPath(new URL('../../../scripts/bench/torch_step.py', import.meta.url))
const CANDIDATES = ['/usr/bin/python3', 'python3']

export interface TorchResult {
  python: string
  torch: string
  threads: number
  msPerStep: Record<string, number>
}

function findPython(): string | undefined {
  return CANDIDATES.find((py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0)
}

export function installTorch(): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit', env })
  spawnSync('apt-get', ['install', '-y', '-q', 'python3-torch', 'libopenblas0-pthread'], { stdio: 'inherit', env })
}

/** Returns undefined (and why) when no Python with torch is found. */
export function torchStep(batches: number[], steps: number, threads: number): TorchResult | { missing: string } {
  const python = findPython()
  if (!python) return { missing: 'no python3 with torch (apt-get install python3-torch libopenblas0-pthread, or run the bench with --install-torch)' }
  const c = builtinModelConfig()
  const arg = { vocab: c.vocab_size, hidden: c.hidden_size, layers: c.num_hidden_layers, heads: c.num_attention_heads, intermediate: c.intermediate_size, positions: c.max_position_embeddings, seq: 32, batches, steps, threads }
  // OpenBLAS has its own thread pool: pin it too, or "1 thread" is not one thread.
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) }
  const r = spawnSync(python, [SCRIPT, JSON.stringify(arg)], { encoding: 'utf8', env, timeout: 600_000 })
  if (r.status !== 0) return { missing: `torch_step.py failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; ms_per_step: Record<string, number> }
  return { python, torch: out.torch, threads: out.threads, msPerStep: out.ms_per_step }
}
