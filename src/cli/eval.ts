import { Command, InvalidArgumentError, Option } from 'commander'
import { BACKENDS } from '../config/node.js'
import { readEvalSet, sampleExamples } from '../eval/data.js'
import { EVAL_DEFAULTS, evalTask, type EvalTaskResult } from '../eval/evaluate.js'
import { loadEvalBase } from '../eval/model.js'
import { selectBackend, type BackendPreference } from '../model/backend.js'
import { UserError } from '../util/errors.js'
import { createLogger } from '../util/log.js'

export interface EvalCommandOptions {
  model: string
  train: string
  test: string
  trainN?: number
  epochs?: number
  lr?: number
  batchSize?: number
  seed?: string
  probe?: boolean
  maxLen?: number
}

export interface EvalReport extends EvalTaskResult {
  model: string
  train: string
  test: string
  protocol: 'probe' | 'fine-tune'
  trainN: number | null
  epochs: number
  lr: number
  batchSize: number
  seed: string
  maxLen: number
  numLabels: number
}

/** `coldfusiond eval`: fine-tune a fresh head (and the body, unless probing) from a base on a task; test accuracy. */
export async function runEval(o: EvalCommandOptions): Promise<EvalReport> {
  const base = await loadEvalBase(o.model)
  const train = await readEvalSet(o.train)
  const test = await readEvalSet(o.test, train.labels)
  const numLabels = train.labels?.length ?? Math.max(...train.examples.map((e) => e.label), ...test.examples.map((e) => e.label)) + 1
  const seed = o.seed ?? '0'
  const trainN = o.trainN
  if (trainN !== undefined && trainN > train.examples.length) throw new UserError(`--train-n ${trainN}: ${o.train} has only ${train.examples.length} examples`)
  const probe = Boolean(o.probe)
  const epochs = o.epochs ?? EVAL_DEFAULTS.epochs
  const lr = o.lr ?? (probe ? EVAL_DEFAULTS.probeLr : EVAL_DEFAULTS.lr)
  const batchSize = o.batchSize ?? EVAL_DEFAULTS.batchSize
  const maxLen = o.maxLen ?? base.maxLen
  const r = await evalTask({
    config: base.config, body: base.body, tokenizer: base.tokenizer, maxLen,
    train: sampleExamples(train.examples, trainN, 'train', seed), test: test.examples, numLabels,
    epochs, lr, batchSize, seed, probe,
  })
  return {
    ...r, model: o.model, train: o.train, test: o.test, protocol: probe ? 'probe' : 'fine-tune', trainN: trainN ?? null,
    epochs, lr, batchSize, seed, maxLen, numLabels,
  }
}

const posInt = (name: string) => (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be an integer >= 1`)
  return n
}
const posNum = (name: string) => (v: string): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`)
  return n
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Evaluate a base as the ColD Fusion paper does: fine-tune a fresh head (and the whole body, unless --probe) on a task\'s training set and print the test accuracy')
    .requiredOption('--model <dir>', 'model directory as `export` writes it (config.json, model.safetensors; tokenizer.json for a Hugging Face base)')
    .requiredOption('--train <file>', 'training examples (JSONL {"text","label"}, CSV or TSV)')
    .requiredOption('--test <file>', 'test examples, same format')
    .option('--train-n <n>', 'use a fixed sample of N training examples, drawn with --seed (default: all)', posInt('--train-n'))
    .option('--epochs <n>', `passes over the training examples (default ${EVAL_DEFAULTS.epochs})`, posInt('--epochs'))
    .option('--lr <rate>', `peak learning rate, decaying linearly to 0 (default ${EVAL_DEFAULTS.lr}; ${EVAL_DEFAULTS.probeLr} with --probe)`, posNum('--lr'))
    .option('--batch-size <n>', `batch size (default ${EVAL_DEFAULTS.batchSize})`, posInt('--batch-size'))
    .option('--seed <seed>', 'seed of the sample, the head, batch order and dropout (default 0)')
    .option('--probe', 'linear probe (ColD-Frozen): freeze the body, train only the head')
    .option('--max-len <n>', 'tokens per example including <s> and </s> (default: the model directory\'s, else 32 built-in / 128 Hugging Face)', posInt('--max-len'))
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend (default auto)').choices([...BACKENDS]))
    .option('--json', 'print one JSON object: {"accuracy", "examples", "seconds", ...}')
    .action(async (o) => {
      await selectBackend({ prefer: (o.backend ?? 'auto') as BackendPreference, log: createLogger({ name: 'eval', level: 'warn' }) })
      const r = await runEval({ model: o.model, train: o.train, test: o.test, trainN: o.trainN, epochs: o.epochs, lr: o.lr, batchSize: o.batchSize, seed: o.seed, probe: o.probe, maxLen: o.maxLen })
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n')
      else {
        process.stdout.write(`accuracy ${(100 * r.accuracy).toFixed(2)} (${r.protocol}, ${r.examples} training examples, ${r.epochs} epochs, lr ${r.lr}, seed ${r.seed}; ${r.testExamples} test examples; ${r.seconds.toFixed(1)} s)\n`)
      }
    })
}
