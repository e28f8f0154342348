import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic.js'
import type { Example } from './load.js'
import { pick, randInt, rngFor, shuffle, type Rng } from './rng.js'
import * as L from './lexicon.js'

/**
 * Generated local datasets for the built-in demo: one TASK per node, deterministic from a seed.
 * All tasks draw on the shared lexicon (lexicon.ts): sentiment needs adjective polarity and
 * negation, topic needs noun clusters, subjectivity needs opinion vs report markers (and the
 * adjectives), question needs question words and answer-type nouns. Every sentence mixes in
 * words of the other clusters, so a fused encoder body that knows all clusters helps every task.
 * Sentences have 6-20 words; 10% of labels are replaced by another class (label noise), so
 * accuracy is not trivially 100%.
 */

export interface TaskSpec {
  name: string
  labels: readonly string[]
  description: string
}

export const TASKS: readonly TaskSpec[] = Object.freeze([
  { name: 'sentiment', labels: ['negative', 'positive'], description: 'polarity of the adjectives, flipped by a negator' },
  { name: 'topic', labels: [...L.TOPICS], description: 'which of four topics the nouns are about' },
  { name: 'subjectivity', labels: ['objective', 'subjective'], description: 'opinion versus factual report' },
  { name: 'question', labels: [...L.ANSWER_TYPES], description: 'the kind of answer a question expects' },
])

export const LABEL_NOISE = 0.1
const MIN_WORDS = 6
const MAX_WORDS = 20

export function getTask(name: string): TaskSpec {
  const t = TASKS.find((x) => x.name === name)
  if (!t) throw new RangeError(`unknown synthetic task ${JSON.stringify(name)} (known: ${TASKS.map((x) => x.name).join(', ')})`)
  return t
}

const PLURAL_DETERMINERS = ['the', 'our', 'their', 'my', 'some', 'many', 'those']
/** Subjects that agree with present-tense verbs (love, think). */
const PLURAL_PRONOUNS = ['i', 'we', 'they', 'you']
const chance = (r: Rng, p: number) => r() < p
const anyNoun = (r: Rng) => pick(r, L.TOPIC_NOUNS[pick(r, L.TOPICS)])
const anyAdj = (r: Rng) => pick(r, chance(r, 0.5) ? L.POSITIVE_ADJ : L.NEGATIVE_ADJ)
const maybe = (r: Rng, p: number, words: () => string[]): string[] => (chance(r, p) ? words() : [])

function fillerPhrase(r: Rng, nounFor: (r: Rng) => string = anyNoun): string[] {
  switch (randInt(r, 6)) {
    case 0:
    case 1:
      return [pick(r, L.PREPOSITIONS), pick(r, L.DETERMINERS), nounFor(r)]
    case 2:
      return [pick(r, L.PREPOSITIONS), pick(r, L.TIME_WORDS)]
    case 3:
      return ['with', pick(r, PLURAL_DETERMINERS), pick(r, L.PEOPLE)]
    case 4:
      return [pick(r, L.TIME_WORDS)]
    default:
      return [pick(r, L.FILLERS)]
  }
}

/** Pad a core phrase with filler phrases (mostly after it) to a random length in [6, 20]. */
function pad(r: Rng, core: string[], nounFor?: (r: Rng) => string, prepend = 0.25): string[] {
  const target = MIN_WORDS + randInt(r, MAX_WORDS - MIN_WORDS + 1)
  const words = [...core]
  while (words.length < target) {
    let phrase = fillerPhrase(r, nounFor)
    if (words.length + phrase.length > MAX_WORDS) phrase = [pick(r, L.FILLERS)]
    if (chance(r, prepend)) words.unshift(...phrase)
    else words.push(...phrase)
  }
  return words
}

type Generator = (r: Rng, label: number) => string[]

const GENERATORS: Record<string, Generator> = {
  sentiment(r, label) {
    const negated = chance(r, 0.15)
    const adjs = (label === 1) !== negated ? L.POSITIVE_ADJ : L.NEGATIVE_ADJ
    const neg = negated ? [pick(r, L.NEGATORS)] : []
    const adj = () => [...maybe(r, 0.4, () => [pick(r, L.INTENSIFIERS)]), pick(r, adjs)]
    const noun = anyNoun(r)
    switch (randInt(r, 3)) {
      case 0:
        return pad(r, [pick(r, L.DETERMINERS), noun, pick(r, L.COPULAS), ...neg, ...adj(), ...maybe(r, 0.8, () => ['and', pick(r, adjs)])])
      case 1:
        return pad(r, [pick(r, L.PRONOUNS), pick(r, L.NEUTRAL_VERBS), 'the', pick(r, adjs), noun, 'and', 'it', pick(r, L.COPULAS), ...neg, ...adj()])
      default:
        return pad(r, [...maybe(r, 0.3, () => [pick(r, L.SUBJECTIVE_ADV)]), 'it', 'was', ...neg, 'a', ...adj(), noun])
    }
  },

  topic(r, label) {
    const nouns = L.TOPIC_NOUNS[L.TOPICS[label]]
    const n1 = pick(r, nouns)
    const n2 = pick(r, nouns)
    // Filler phrases mostly stay on topic, sometimes stray.
    const fillerNoun = (rr: Rng) => (chance(rr, 0.7) ? pick(rr, nouns) : anyNoun(rr))
    switch (randInt(r, 3)) {
      case 0:
        return pad(r, [pick(r, L.DETERMINERS), n1, pick(r, L.COPULAS), ...maybe(r, 0.3, () => [pick(r, L.INTENSIFIERS)]), anyAdj(r), pick(r, L.PREPOSITIONS), 'the', n2], fillerNoun)
      case 1:
        return pad(r, [pick(r, L.PRONOUNS), pick(r, L.NEUTRAL_VERBS), pick(r, L.DETERMINERS), n1, pick(r, L.PREPOSITIONS), 'the', n2], fillerNoun)
      default:
        return pad(r, ['the', n1, pick(r, L.OBJECTIVE_VERBS), 'the', n2, ...maybe(r, 0.5, () => [pick(r, L.OBJECTIVE_ADV)])], fillerNoun)
    }
  },

  subjectivity(r, label) {
    const noun = anyNoun(r)
    if (label === 1) {
      switch (randInt(r, 3)) {
        case 0:
          return pad(r, [pick(r, PLURAL_PRONOUNS), pick(r, L.SUBJECTIVE_VERBS), 'the', noun, ...maybe(r, 0.6, () => ['because', 'it', pick(r, L.COPULAS), anyAdj(r)])])
        case 1:
          return pad(r, [pick(r, L.SUBJECTIVE_ADV), 'the', noun, pick(r, L.COPULAS), ...maybe(r, 0.5, () => [pick(r, L.INTENSIFIERS)]), anyAdj(r)])
        default:
          return pad(r, [pick(r, PLURAL_PRONOUNS), pick(r, L.SUBJECTIVE_LEADS), 'the', noun, 'is', ...maybe(r, 0.3, () => [pick(r, L.NEGATORS)]), anyAdj(r)])
      }
    }
    switch (randInt(r, 3)) {
      case 0:
        return pad(r, ['the', noun, pick(r, L.OBJECTIVE_VERBS), pick(r, L.NUMBERS), pick(r, L.UNITS), ...maybe(r, 0.5, () => [pick(r, L.OBJECTIVE_ADV)])])
      case 1:
        return pad(r, [pick(r, L.DETERMINERS), noun, 'was', pick(r, L.OBJECTIVE_VERBS), pick(r, L.OBJECTIVE_ADV), pick(r, L.PREPOSITIONS), pick(r, L.TIME_WORDS)])
      default:
        return pad(r, [pick(r, L.OBJECTIVE_ADV), pick(r, L.NUMBERS), pick(r, L.PEOPLE), pick(r, L.NEUTRAL_VERBS), 'the', noun])
    }
  },

  question(r, label) {
    const lead = pick(r, L.QUESTION_LEADS[L.ANSWER_TYPES[label]])
    const noun = anyNoun(r)
    const core = chance(r, 0.6)
      ? [...lead, pick(r, L.QUESTION_AUX), 'the', noun, pick(r, L.NEUTRAL_VERBS), ...maybe(r, 0.5, () => ['the', anyNoun(r)])]
      : [...lead, pick(r, L.QUESTION_AUX), 'the', noun, 'so', anyAdj(r)]
    return [...pad(r, core, undefined, 0), '?']
  },
}

/** `n` labelled sentences for `task`, deterministic from (task, seed), labels balanced before noise. */
export function generateTask(task: string, n: number, seed: number): Example[] {
  const spec = getTask(task)
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`example count must be a non-negative integer, got ${n}`)
  const r = rngFor('coldfusion-synthetic', task, seed)
  const k = spec.labels.length
  const intended = shuffle(r, Array.from({ length: n }, (_, i) => i % k))
  const gen = GENERATORS[task]
  return intended.map((label) => {
    const text = gen(r, label).join(' ')
    const noisy = chance(r, LABEL_NOISE) ? (label + 1 + randInt(r, k - 1)) % k : label
    return { text, label: noisy }
  })
}

export interface WrittenDataset {
  train: string
  labels: string
  test?: string
}

/**
 * Write `dir/train.jsonl` ({"text", "label": int} per line), `dir/labels.json` (names by id) and,
 * with opts.nTest, `dir/test.jsonl` from an independent stream; each file atomically.
 */
export async function writeTaskDataset(dir: string, task: string, nTrain: number, seed: number, opts: { nTest?: number } = {}): Promise<WrittenDataset> {
  const spec = getTask(task)
  const toJsonl = (xs: Example[]) => xs.map((e) => JSON.stringify({ text: e.text, label: e.label })).join('\n') + '\n'
  const out: WrittenDataset = { train: join(dir, 'train.jsonl'), labels: join(dir, 'labels.json') }
  await writeFileAtomic(out.train, toJsonl(generateTask(task, nTrain, seed)))
  if (opts.nTest) {
    out.test = join(dir, 'test.jsonl')
    await writeFileAtomic(out.test, toJsonl(generateTask(task, opts.nTest, deriveTestSeed(seed))))
  }
  await writeFileAtomic(out.labels, JSON.stringify(spec.labels) + '\n')
  return out
}

/** The test split's seed: a fixed, distinct function of the train seed. */
function deriveTestSeed(seed: number): number {
  return rngFor('coldfusion-synthetic-test', seed)() * 2 ** 32
}
