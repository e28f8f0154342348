import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/coldfusiond.js')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run the real CLI in its own process. */
export function runCli(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const t = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`coldfusiond ${args.join(' ')} timed out\n${stderr.slice(-2000)}`))
    }, opts.timeoutMs ?? 60_000)
    child.on('exit', (code) => {
      clearTimeout(t)
      resolvePromise({ code, stdout, stderr })
    })
  })
}

/** Start a long-running CLI process (a daemon); the caller stops it. */
export function spawnCli(args: string[]): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & { output: () => string }
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  child.output = () => out
  return child
}
