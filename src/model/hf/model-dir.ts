import type { ModelConfig } from '../config.js'
import type { Logger } from '../../util/log.js'
import { loadHfBase, type HfBase } from './checkpoint.js'
import { parseHfConfig } from './config.js'
import { CONFIG_FILE, parseJsonFile, readModelFile, readTokenizerFiles, WEIGHTS_FILE, type PinnedFile } from './files.js'
import { HfTokenizer } from './tokenizer.js'
import { join } from 'node:path'

/** A Hugging Face model directory loaded for our encoder: architecture, base, tokenizer. */
export interface HfModelDir {
  dir: string
  config: ModelConfig
  configFile: PinnedFile
  weightsFile: PinnedFile
  tokenizerFiles: PinnedFile[]
  base: HfBase
  tokenizer: HfTokenizer
}

/**
 * Loads and checks a model directory. A missing pooler is generated from `poolerSeed`, by default
 * the sha256 of model.safetensors, so the same checkpoint always gives the same base.
 */
export async function loadHfModelDir(dir: string, opts: { poolerSeed?: string; log?: Logger } = {}): Promise<HfModelDir> {
  const configFile = await readModelFile(dir, CONFIG_FILE)
  const config = parseHfConfig(parseJsonFile(configFile, dir), join(dir, CONFIG_FILE))
  const tokenizerFiles = await readTokenizerFiles(dir)
  const tokenizer = tokenizerFromFiles(tokenizerFiles, dir, config)
  const weightsFile = await readModelFile(dir, WEIGHTS_FILE)
  const base = loadHfBase(weightsFile.bytes, config, join(dir, WEIGHTS_FILE), opts.poolerSeed ?? weightsFile.sha256)
  if (base.ignored.length > 0) {
    opts.log?.info({ file: join(dir, WEIGHTS_FILE), ignored: summarizeIgnored(base.ignored) }, 'ignoring tensors that are not part of the encoder body (pre-training heads, buffers)')
  }
  if (base.poolerSeed !== undefined) {
    opts.log?.info({ file: join(dir, WEIGHTS_FILE), seed: base.poolerSeed }, 'the checkpoint has no pooler; generated one as transformers would initialise it')
  }
  return { dir, config, configFile, weightsFile, tokenizerFiles, base, tokenizer }
}

/** Builds the tokenizer from tokenizer.json and the side files that configure it. */
export function tokenizerFromFiles(files: PinnedFile[], where: string, config?: ModelConfig): HfTokenizer {
  const byName = new Map(files.map((f) => [f.name, f]))
  const parsed = (name: string): unknown => {
    const f = byName.get(name)
    return f ? parseJsonFile(f, where) : undefined
  }
  return new HfTokenizer(
    { tokenizer: parsed('tokenizer.json'), tokenizerConfig: parsed('tokenizer_config.json'), specialTokensMap: parsed('special_tokens_map.json'), where },
    config,
  )
}

/** Ignored tensor names grouped by their first component, e.g. {"lm_head": 6}. */
export function summarizeIgnored(names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of names) {
    const key = n.includes('position_ids') || n.includes('token_type_ids') ? n : n.split('.')[0]
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}
