import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadExamples, type Example } from '../data/load.js'
import { rngFor, shuffle } from '../data/rng.js'

/** The four real tasks of ../shared/data, one per simulated node (DESIGN.md, "Data"). */
export const REAL_TASKS = ['mr', 'subj', 'mpqa', 'trec'] as const

export interface Task {
  name: string
  labels: string[]
  train: Example[]
  test: Example[]
}

/** Load a task and draw seeded samples of its train and test files (all of a file if it is smaller). */
export async function loadTask(dir: string, name: string, trainN: number, testN: number, seed: string): Promise<Task> {
  const labels = JSON.parse(await readFile(join(dir, name, 'labels.json'), 'utf8')) as string[]
  const train = (await loadExamples(join(dir, name, 'train.jsonl'), { labels })).examples
  const test = (await loadExamples(join(dir, name, 'test.jsonl'), { labels })).examples
  return {
    name,
    labels,
    train: shuffle(rngFor('bench-train', name, seed), train).slice(0, trainN),
    test: shuffle(rngFor('bench-test', name, seed), test).slice(0, testN),
  }
}
