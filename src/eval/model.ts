import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelConfigSchema, type ModelConfig } from '../model/config.js'
import { maxSequenceLength } from '../model/encoder.js'
import { loadHfModelDir } from '../model/hf/model-dir.js'
import { CONFIG_FILE, WEIGHTS_FILE } from '../model/hf/files.js'
import { decodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import { HashedWordTokenizer, type Tokenizer } from '../model/tokenizer.js'
import { UserError } from '../util/errors.js'

/** `export` writes this next to a built-in model's config.json: what tokenizer the base expects. */
export const SIDE_FILE = 'coldfusiond.json'
/** The built-in swarm's default tokens per example (SWARM_DEFAULTS.maxLength). */
export const BUILTIN_MAX_LEN = 32
export const HF_MAX_LEN = 128

export interface EvalBase {
  dir: string
  config: ModelConfig
  body: TensorMap
  tokenizer: Tokenizer
  /** Tokens per example including <s> and </s>: the side file's, else a default. */
  maxLen: number
  tokenizerKind: 'hashed-words' | 'huggingface'
}

/**
 * Loads a model directory as `export` writes it: with tokenizer.json, a Hugging Face base (as
 * `init --model` loads it); without, the built-in model over hashed words (vocab_size from
 * config.json, maxLength from coldfusiond.json when present).
 */
export async function loadEvalBase(dir: string): Promise<EvalBase> {
  let side: { tokenizer?: { kind?: string; maxLength?: number } } = {}
  try {
    side = JSON.parse(await readFile(join(dir, SIDE_FILE), 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`${join(dir, SIDE_FILE)}: ${(err as Error).message}`)
  }
  const hasTokenizerJson = await readFile(join(dir, 'tokenizer.json')).then(() => true, () => false)
  if (hasTokenizerJson && side.tokenizer?.kind !== 'hashed-words') {
    const m = await loadHfModelDir(dir)
    return { dir, config: m.config, body: m.base.body, tokenizer: m.tokenizer, maxLen: side.tokenizer?.maxLength ?? Math.min(HF_MAX_LEN, maxSequenceLength(m.config)), tokenizerKind: 'huggingface' }
  }
  let config: ModelConfig
  try {
    config = ModelConfigSchema.parse(JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8')))
  } catch (err) {
    throw new UserError(`${join(dir, CONFIG_FILE)}: not a model config (${(err as Error).message.split('\n')[0]}); --model needs a directory written by \`coldfusiond export\``)
  }
  let bytes: Buffer
  try {
    bytes = await readFile(join(dir, WEIGHTS_FILE))
  } catch (err) {
    throw new UserError(`${join(dir, WEIGHTS_FILE)}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const body = decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), join(dir, WEIGHTS_FILE)).tensors
  const maxLen = Math.min(side.tokenizer?.maxLength ?? BUILTIN_MAX_LEN, maxSequenceLength(config))
  return { dir, config, body, tokenizer: new HashedWordTokenizer(config.vocab_size), maxLen, tokenizerKind: 'hashed-words' }
}
