import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { loadExamples } from '../data/load.js'
import { rngFor, shuffle } from '../data/rng.js'
import type { Example } from '../train/trainer.js'
import { UserError } from '../util/errors.js'

export interface EvalSet {
  file: string
  examples: Example[]
  /** Class names when known (labels.json beside the file), else undefined. */
  labels?: string[]
  /** Lines left out: empty texts (the public sets have a few). */
  skipped: number
}

/**
 * Reads an eval file. JSONL with integer labels is read leniently (empty texts are skipped, as
 * the public sets have some); anything else goes through the node's loader (CSV/TSV, string
 * labels). labels.json next to the file, when present, names the classes.
 */
export async function readEvalSet(file: string, labels?: string[]): Promise<EvalSet> {
  labels ??= await readLabels(join(dirname(file), 'labels.json'))
  if (file.endsWith('.jsonl') || file.endsWith('.json')) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    const examples: Example[] = []
    let skipped = 0
    let lenient = true
    const lines = text.split('\n')
    for (let i = 0; i < lines.length && lenient; i++) {
      if (lines[i].trim() === '') continue
      let o: { text?: unknown; label?: unknown }
      try {
        o = JSON.parse(lines[i])
      } catch {
        throw new UserError(`${file}:${i + 1}: not valid JSON`)
      }
      if (typeof o.label !== 'number') {
        lenient = false // string labels: the node's loader maps them
        break
      }
      if (!Number.isInteger(o.label) || o.label < 0 || (labels && o.label >= labels.length)) throw new UserError(`${file}:${i + 1}: label ${o.label} is not a class id`)
      if (typeof o.text !== 'string' || o.text.trim() === '') {
        skipped++
        continue
      }
      examples.push({ text: o.text, label: o.label })
    }
    if (lenient) {
      if (examples.length === 0) throw new UserError(`${file}: no examples`)
      return { file, examples, labels, skipped }
    }
  }
  const loaded = await loadExamples(file, { labels })
  return { file, examples: loaded.examples, labels: loaded.labels, skipped: 0 }
}

async function readLabels(file: string): Promise<string[] | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8'))
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined
  } catch {
    return undefined
  }
}

/** A fixed, seeded sample of n examples (all of them, shuffled, if there are fewer). */
export function sampleExamples<T>(examples: readonly T[], n: number | undefined, ...seed: (string | number)[]): T[] {
  const shuffled = shuffle(rngFor('coldfusiond-eval-sample-v1', ...seed), [...examples])
  return n === undefined ? shuffled : shuffled.slice(0, n)
}
