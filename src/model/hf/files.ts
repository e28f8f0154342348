import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { UserError } from '../../util/errors.js'
import { sha256Hex } from '../../util/hash.js'

/**
 * The files of a Hugging Face model directory (as `save_pretrained` writes it) that a swarm
 * pins by hash: the architecture, the weights, and the tokenizer with its side files.
 */

export const CONFIG_FILE = 'config.json'
export const WEIGHTS_FILE = 'model.safetensors'
export const TOKENIZER_FILE = 'tokenizer.json'
/** Tokenizer side files that save_pretrained writes next to tokenizer.json; pinned and copied when present. */
export const TOKENIZER_SIDE_FILES = ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', 'vocab.txt'] as const

export interface PinnedFile {
  name: string
  bytes: Uint8Array
  sha256: string
}

/** Reads a required file of a model directory; a missing file is explained, with what to do. */
export async function readModelFile(dir: string, name: string): Promise<PinnedFile> {
  const path = join(dir, name)
  let buf: Buffer
  try {
    buf = await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new UserError(await missingFileMessage(dir, name))
    throw new UserError(`${path}: cannot read (${code ?? (err as Error).message})`)
  }
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  return { name, bytes, sha256: sha256Hex(bytes) }
}

/** tokenizer.json (required) and whichever side files the directory has, in a fixed order. */
export async function readTokenizerFiles(dir: string): Promise<PinnedFile[]> {
  const files = [await readModelFile(dir, TOKENIZER_FILE)]
  const present = new Set(await readdir(dir))
  for (const name of TOKENIZER_SIDE_FILES) if (present.has(name)) files.push(await readModelFile(dir, name))
  return files
}

export function parseJsonFile(file: PinnedFile, dir: string): unknown {
  try {
    return JSON.parse(Buffer.from(file.bytes).toString('utf8'))
  } catch (err) {
    throw new UserError(`${join(dir, file.name)} is not valid JSON (${(err as Error).message}); restore it from the model's original files`)
  }
}

async function missingFileMessage(dir: string, name: string): Promise<string> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return `${dir} is not a readable directory: --model needs a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)`
  }
  const path = join(dir, name)
  if (name === WEIGHTS_FILE) {
    if (names.includes('model.safetensors.index.json')) {
      return `${path} not found: the checkpoint is sharded (model.safetensors.index.json), which is not supported; save it as one file (save_pretrained with a max_shard_size above the model size)`
    }
    if (names.includes('pytorch_model.bin')) {
      return `${path} not found: only pytorch_model.bin is there; convert it to safetensors (model.save_pretrained(DIR, safe_serialization=True))`
    }
  }
  if (name === TOKENIZER_FILE) {
    return `${path} not found: the tokenizer must be in the fast-tokenizer format; AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR) writes it`
  }
  return `${path} not found: --model needs a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)`
}
