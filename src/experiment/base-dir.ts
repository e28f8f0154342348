import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ModelConfig } from '../model/config.js'
import { writeHfDirectory } from '../model/hf/export.js'
import type { TensorMap } from '../model/tensors.js'
import { SIDE_FILE } from '../eval/model.js'
import { hashTensors } from '../fusion/index.js'

/** Writes a built-in base as `export` does (config.json, model.safetensors, coldfusiond.json); returns its hash. */
export async function writeBuiltinBaseDir(out: string, config: ModelConfig, body: TensorMap, maxLength: number): Promise<string> {
  await writeHfDirectory({ out, config, body, tokenizerFiles: [] })
  await writeFile(join(out, SIDE_FILE), JSON.stringify({ tokenizer: { kind: 'hashed-words', maxLength } }, null, 2) + '\n')
  return hashTensors(body)
}
