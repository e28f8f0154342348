import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/**
 * Runs a benchmark part in its own Node process: a fresh heap for memory figures (peak RSS is
 * per process), a fresh tfjs engine, and parallel work on several cores. The child prints one
 * JSON line last on stdout; its stderr is passed through.
 */
export function runChild<T>(script: string, arg: unknown, opts: { quiet?: boolean; execArgv?: string[]; killAfterSec?: number } = {}): Promise<T> {
  const file = fileURLToPath(new URL(script, import.meta.url))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.execArgv ?? []), file, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', opts.quiet ? 'ignore' : 'inherit'] })
    let out = ''
    // A part whose own deadline cannot fire (a starved event loop) is ended from here.
    let killed = false
    const timer = opts.killAfterSec === undefined ? undefined : setTimeout(() => {
      killed = true
      child.kill('SIGKILL')
    }, opts.killAfterSec * 1000)
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const last = out.trim().split('\n').pop() ?? ''
      if (killed) return reject(new Error(`${script} was stopped after ${opts.killAfterSec} s`))
      if (code !== 0) return reject(new Error(`${script} exited with ${code}${last ? `: ${last.slice(0, 300)}` : ''}`))
      try {
        resolve(JSON.parse(last) as T)
      } catch {
        reject(new Error(`${script} printed no JSON result`))
      }
    })
  })
}

/** In a child: parse the argument, run, print the JSON result (or the error, exit 1). */
export function childMain<A, T>(run: (arg: A) => Promise<T>): void {
  run(JSON.parse(process.argv[2] ?? '{}') as A)
    .then((r) => {
      process.stdout.write(JSON.stringify(r) + '\n')
      process.exit(0)
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    })
}

/** Run `jobs` at most `limit` at a time; results in input order. */
export async function pool<T>(limit: number, jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length)
  let next = 0
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++
      results[i] = await jobs[i]()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker))
  return results
}
