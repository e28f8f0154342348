import { appendFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic.js'
import { UserError } from '../util/errors.js'
import type { EvalRecord } from './report.js'

const OPTIONS = 'options.json'
const STAGES = 'stages.jsonl'
const RECORDS = 'records.jsonl'

export const recordKey = (r: Pick<EvalRecord, 'arm' | 'round' | 'task' | 'protocol' | 'seed'>): string => `${r.arm}|${r.round}|${r.task}|${r.protocol}|${r.seed}`

/**
 * What an experiment run has finished, kept in its output directory so that a killed run can be
 * resumed without losing work: the options it was started with (options.json), each finished
 * stage's result (stages.jsonl: swarms, reference training, rule simulations) and each finished
 * evaluation (records.jsonl). Lines are appended only once their work is complete.
 */
export class RunJournal {
  private constructor(
    readonly out: string,
    private readonly stages: Map<string, unknown>,
    private readonly done: Map<string, EvalRecord>,
  ) {}

  /** A new run in an empty `out`, or with `resume` the run already there (same options). */
  static async open(out: string, options: Record<string, unknown>, resume: boolean, log: (l: string) => void): Promise<RunJournal> {
    if (!resume) {
      await mkdir(out, { recursive: true })
      if ((await readdir(out)).length > 0) throw new UserError(`${out} is not empty; give --out a new directory, or --resume ${out} to continue the run in it`)
      await writeFile(join(out, OPTIONS), JSON.stringify(options, null, 2) + '\n')
      return new RunJournal(out, new Map(), new Map())
    }
    const saved = await readJson(join(out, OPTIONS))
    if (saved === undefined) {
      if ((await readdir(out).catch(() => [])).length === 0) throw new UserError(`--resume ${out}: no experiment run there`)
      log(`resume: ${out} has no ${OPTIONS}; assuming it was started with these options`)
      await writeFileAtomic(join(out, OPTIONS), JSON.stringify(options, null, 2) + '\n')
    } else {
      const diff = Object.keys({ ...saved, ...options }).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(options[k]))
      if (diff.length > 0) {
        throw new UserError(`--resume ${out}: the run was started with other options (${diff.map((k) => `${k}: ${JSON.stringify(saved[k])} there, ${JSON.stringify(options[k])} now`).join('; ')}); resume with the same options`)
      }
    }
    const stages = new Map<string, unknown>()
    for (const l of await readLines(join(out, STAGES))) stages.set(l.stage as string, l.result)
    const done = new Map<string, EvalRecord>()
    const records = await readLines(join(out, RECORDS))
    for (const r of records as unknown as EvalRecord[]) done.set(recordKey(r), r)
    // Drop a line torn by the kill, so that appending continues on a clean file.
    await writeFileAtomic(join(out, RECORDS), records.map((r) => JSON.stringify(r) + '\n').join(''))
    log(`resume: ${stages.size} stages and ${done.size} evaluations already done in ${out}`)
    return new RunJournal(out, stages, done)
  }

  /** Run a stage once: its recorded result when resuming, else `run()` in a fresh `dir`. */
  async stage<T>(name: string, dir: string | undefined, run: () => Promise<T>): Promise<T> {
    if (this.stages.has(name)) return this.stages.get(name) as T
    if (dir) await rm(dir, { recursive: true, force: true }) // left half-done by a killed run
    const result = await run()
    this.stages.set(name, result)
    await appendFile(join(this.out, STAGES), JSON.stringify({ stage: name, result }) + '\n')
    return result
  }

  /** Evaluations already recorded, in the order they were done. */
  records(): EvalRecord[] {
    return [...this.done.values()]
  }

  has(key: string): boolean {
    return this.done.has(key)
  }

  async record(rec: EvalRecord): Promise<void> {
    this.done.set(recordKey(rec), rec)
    await appendFile(join(this.out, RECORDS), JSON.stringify(rec) + '\n')
  }
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UserError(`${file}: ${(err as Error).message}`)
  }
}

/** JSON lines of a file; a line that does not parse (cut short by a kill) is skipped. */
async function readLines(file: string): Promise<Record<string, unknown>[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const out: Record<string, unknown>[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      out.push(JSON.parse(line))
    } catch {
      // torn line: its work is redone
    }
  }
  return out
}
