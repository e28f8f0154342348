import { Command, InvalidArgumentError, Option } from 'commander'
import { BACKENDS } from '../config/node.js'
import { selectBackend, type BackendPreference } from '../model/backend.js'
import { maxSequenceLength } from '../model/encoder.js'
import { computeFeatures, rows } from '../model/hf/features.js'
import { loadHfModelDir, summarizeIgnored } from '../model/hf/model-dir.js'
import { UserError } from '../util/errors.js'
import { createLogger, type Logger } from '../util/log.js'

export interface FeaturesOptions {
  model: string
  text: string
  json: boolean
  /** Truncate to this many tokens, special tokens included (default: the model's limit). */
  maxLength?: number
  pooler?: boolean
  backend?: BackendPreference
  log?: Logger
  out?: NodeJS.WritableStream
  err?: NodeJS.WritableStream
}

/**
 * `coldfusiond features`: the encoder's outputs for one text, computed with our TensorFlow.js
 * encoder from a Hugging Face model directory (what RobertaModel/BertModel return in eval mode).
 */
export async function featuresCommand(o: FeaturesOptions): Promise<number> {
  const out = o.out ?? process.stdout
  const err = o.err ?? process.stderr
  const m = await loadHfModelDir(o.model, { log: o.log })
  if (m.base.ignored.length > 0) {
    err.write(`note: ignored ${m.base.ignored.length} tensors of ${o.model}/model.safetensors that are not part of the encoder: ${JSON.stringify(summarizeIgnored(m.base.ignored))}\n`)
  }
  if (m.base.poolerSeed !== undefined) err.write(`note: ${o.model} has no pooler; pooler_output comes from a generated (untrained) pooler\n`)
  const limit = maxSequenceLength(m.config)
  const maxLength = o.maxLength ?? limit
  if (maxLength > limit) throw new UserError(`--max-length ${maxLength} exceeds the model's ${limit} tokens (config.json max_position_embeddings)`)
  if (maxLength < m.tokenizer.specialCount + 1) throw new UserError(`--max-length must leave room for ${m.tokenizer.specialCount} special tokens and one more`)
  await selectBackend({ prefer: o.backend ?? 'auto', log: o.log })
  const batch = m.tokenizer.encodeBatch([o.text], maxLength)
  const f = await computeFeatures(m.config, m.base.body, batch)
  const inputIds = Array.from(batch.inputIds)
  const hidden = rows(f.lastHiddenState, f.hidden)
  if (o.json) {
    const result: Record<string, unknown> = { input_ids: inputIds, last_hidden_state: hidden }
    if (o.pooler) result.pooler_output = f.poolerOutput ? Array.from(f.poolerOutput) : null
    out.write(JSON.stringify(result) + '\n')
    return 0
  }
  const fmt = (v: number[]): string => v.slice(0, 6).map((x) => x.toFixed(4)).join(' ') + (v.length > 6 ? ' ...' : '')
  out.write(`model      ${o.model} (${m.config.model_type}, ${m.config.num_hidden_layers} layers, hidden ${m.config.hidden_size})\n`)
  out.write(`tokens     ${m.tokenizer.tokens(inputIds).join(' ')}\n`)
  out.write(`input_ids  ${inputIds.join(' ')}\n`)
  out.write(`last_hidden_state [1, ${f.seqLen}, ${f.hidden}]\n`)
  for (let t = 0; t < hidden.length; t++) out.write(`  ${String(t).padStart(3)}  ${fmt(hidden[t])}\n`)
  if (o.pooler && f.poolerOutput) out.write(`pooler_output [1, ${f.hidden}]\n       ${fmt(Array.from(f.poolerOutput))}\n`)
  return 0
}

/** How init reports a Hugging Face base: what was left out, and a generated pooler. */
export function modelNotes(m: { ignored: string[]; poolerGenerated: boolean }): string {
  const notes: string[] = []
  if (m.ignored.length > 0) notes.push(`ignored ${Object.entries(summarizeIgnored(m.ignored)).map(([k, n]) => `${k} (${n})`).join(', ')}`)
  if (m.poolerGenerated) notes.push('no pooler in the checkpoint: generated one')
  return notes.length > 0 ? `; ${notes.join('; ')}` : ''
}

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('Print the encoder outputs (input_ids, last_hidden_state) for a text, computed with the TensorFlow.js encoder from a Hugging Face model directory')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--text <text>', 'the text to encode')
    .option('--json', 'print {"input_ids": [...], "last_hidden_state": [[...], ...]}')
    .option('--pooler', 'also print pooler_output')
    .option('--max-length <n>', 'truncate to this many tokens, special tokens included (default: the model\'s limit)', (v: string) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 2) throw new InvalidArgumentError('--max-length must be an integer >= 2')
      return n
    })
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend').choices([...BACKENDS]).default('auto'))
    .action(async (o) => {
      process.exitCode = await featuresCommand({
        model: o.model, text: o.text, json: Boolean(o.json), pooler: Boolean(o.pooler), maxLength: o.maxLength, backend: o.backend,
        log: createLogger({ name: 'features', level: process.env.COLDFUSIOND_LOG_LEVEL ?? 'warn' }),
      })
    })
}
