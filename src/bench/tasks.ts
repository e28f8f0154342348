import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Example } from '../data/load.js'
import { rngFor, shuffle } from '../data/rng.js'

/** The four real tasks of ../shared/data, one per simulated node (DESIGN.md, "Data"). */
export const REAL_TASKS = ['mr', 'subj', 'mpqa', 'trec'] as const

export interface Task {
  name: string
  labels: string[]
  train: Example[]
  test: Example[]
}

/**
 * The benchmark reads the files leniently, unlike a node's loader (src/data/load.ts), which
 * stops at the first bad line: the public sets have a few empty texts (mpqa), which are skipped.
 */
async function readJsonl(file: string, numLabels: number): Promise<Example[]> {
  const out: Example[] = []
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (line.trim() === '') continue
    const o = JSON.parse(line) as { text?: unknown; label?: unknown }
    if (typeof o.text !== 'string' || o.text.trim() === '') continue
    if (typeof o.label !== 'number' || !Number.isInteger(o.label) || o.label < 0 || o.label >= numLabels) throw new Error(`${file}: label ${String(o.label)} is not a class id`)
    out.push({ text: o.text, label: o.label })
  }
  return out
}

/** Load a task and draw seeded samples of its train and test files (all of a file if it is smaller). */
export async function loadTask(dir: string, name: string, trainN: number, testN: number, seed: string): Promise<Task> {
  const labels = JSON.parse(await readFile(join(dir, name, 'labels.json'), 'utf8')) as string[]
  const train = await readJsonl(join(dir, name, 'train.jsonl'), labels.length)
  const test = await readJsonl(join(dir, name, 'test.jsonl'), labels.length)
  return {
    name,
    labels,
    train: shuffle(rngFor('bench-train', name, seed), train).slice(0, trainN),
    test: shuffle(rngFor('bench-test', name, seed), test).slice(0, testN),
  }
}
