import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { ModelConfig } from '../config.js'
import { encodeSafetensors, type DType } from '../safetensors.js'
import { sortedNames, type TensorMap } from '../tensors.js'
import { writeFileAtomic } from '../../util/atomic.js'
import { UserError } from '../../util/errors.js'
import { baseModelClass } from './config.js'
import { CONFIG_FILE, WEIGHTS_FILE, type PinnedFile } from './files.js'
import { originalDtype, originalName, type NameMap } from './names.js'

/**
 * Writes a base as a Hugging Face model directory that `RobertaModel.from_pretrained(OUT)` /
 * `BertModel.from_pretrained(OUT)` load with no missing or unexpected keys: config.json with
 * `architectures` set to the base-model class, model.safetensors with the tensor names and dtype
 * the base came with (and the {"format": "pt"} metadata transformers requires), and the
 * tokenizer files.
 */

export interface HfExport {
  out: string
  config: ModelConfig
  body: TensorMap
  /** How the original checkpoint named and stored the body; default: internal names, F32. */
  names?: NameMap
  /** Store every tensor in this dtype instead of the original's. */
  dtype?: DType
  tokenizerFiles: PinnedFile[]
}

const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }

export async function writeHfDirectory(e: HfExport): Promise<string[]> {
  await ensureEmptyDir(e.out)
  const names: NameMap = e.names ?? { prefix: '', renamed: {}, dtype: 'F32' }
  const dtypeOf = (internal: string): DType => e.dtype ?? originalDtype(names, internal)
  const renamed: TensorMap = new Map()
  const dtypes = new Map<string, DType>()
  for (const internal of sortedNames(e.body)) {
    const name = originalName(names, internal)
    renamed.set(name, e.body.get(internal)!)
    dtypes.set(name, dtypeOf(internal))
  }
  const weights = encodeSafetensors(renamed, { format: 'pt' }, { dtype: (name) => dtypes.get(name)! })
  const main = e.dtype ?? names.dtype
  const config = { ...e.config, architectures: [baseModelClass(e.config)], torch_dtype: TORCH_DTYPE[main] }
  await writeFileAtomic(join(e.out, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n')
  await writeFileAtomic(join(e.out, WEIGHTS_FILE), weights)
  for (const f of e.tokenizerFiles) await writeFileAtomic(join(e.out, f.name), f.bytes)
  return [CONFIG_FILE, WEIGHTS_FILE, ...e.tokenizerFiles.map((f) => f.name)]
}

async function ensureEmptyDir(dir: string): Promise<void> {
  let entries: string[] = []
  try {
    entries = await readdir(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOENT') throw new UserError(`--out ${dir}: ${code === 'ENOTDIR' ? 'is a file' : `cannot read (${code})`}`)
  }
  if (entries.length > 0) throw new UserError(`--out ${dir} exists and is not empty; choose a new directory`)
  await mkdir(dir, { recursive: true })
}
