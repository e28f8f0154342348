import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createSwarmDefinition, SWARM_DEFAULTS, type SwarmOptions } from '../../config/genesis.js'
import { parseSwarmDefinition, type SwarmDefinition } from '../../config/swarm.js'
import { writeFileAtomic } from '../../util/atomic.js'
import { UserError } from '../../util/errors.js'
import { sha256Hex } from '../../util/hash.js'
import type { Logger } from '../../util/log.js'
import { maxSequenceLength } from '../encoder.js'
import { totalParams } from '../tensors.js'
import { CONFIG_FILE, WEIGHTS_FILE, type PinnedFile } from './files.js'
import { loadHfModelDir, tokenizerFromFiles, type HfModelDir } from './model-dir.js'
import type { HfTokenizer } from './tokenizer.js'

/**
 * Swarms whose base is a Hugging Face model directory. The definition records the architecture
 * (config.json with transformers' defaults made explicit), the canonical base hash, the sha256 of
 * config.json, model.safetensors, tokenizer.json and each tokenizer side file, and how the
 * checkpoint named and stored the body (for export). A node joins with its own copy of the
 * directory; any file that differs is named and the node is refused.
 */

/** Where a node home keeps the swarm's tokenizer files (copied from the model directory by init). */
export function tokenizerDir(home: string): string {
  return join(home, 'tokenizer')
}

/** Defaults that differ from the built-in model's: a pretrained model wants a small learning rate. */
export const HF_SWARM_DEFAULTS = { learningRate: 5e-5, maxLength: 128 }

export async function createHfSwarmDefinition(dir: string, o: SwarmOptions = {}, log?: Logger): Promise<{ def: SwarmDefinition; model: HfModelDir }> {
  const model = await loadHfModelDir(dir, { log })
  const limit = maxSequenceLength(model.config)
  const maxLength = o.maxLength ?? Math.min(HF_SWARM_DEFAULTS.maxLength, limit)
  if (maxLength > limit) throw new UserError(`--max-length ${maxLength} exceeds what ${dir}/config.json allows (${limit} tokens)`)
  // Room for an uncompressed float32 delta of the whole body.
  const maxDeltaBytes = o.maxDeltaBytes ?? Math.max(SWARM_DEFAULTS.maxDeltaBytes, totalParams(model.base.body) * 4 + (1 << 20))
  // The shared settings (training, fusion, compression, rounds) as for the built-in model; the model section is replaced below.
  const { def: settings } = createSwarmDefinition({ ...o, maxLength: undefined, maxDeltaBytes, learningRate: o.learningRate ?? HF_SWARM_DEFAULTS.learningRate })
  const source = {
    kind: 'huggingface' as const,
    files: { [CONFIG_FILE]: model.configFile.sha256, [WEIGHTS_FILE]: model.weightsFile.sha256 },
    names: model.base.names,
    ...(model.base.poolerSeed !== undefined ? { poolerSeed: model.base.poolerSeed } : {}),
  }
  const def = parseSwarmDefinition(
    {
      ...settings,
      model: {
        architecture: model.config,
        tokenizer: { kind: 'huggingface', maxLength, files: Object.fromEntries(model.tokenizerFiles.map((f) => [f.name, f.sha256])) },
        base: { hash: model.base.hash, source },
      },
    },
    'swarm settings',
  )
  return { def, model }
}

/**
 * Checks a node's copy of the model directory against the swarm definition, file by file, and
 * loads it. Refuses (naming the file) when anything differs.
 */
export async function verifyHfModelDir(def: SwarmDefinition, dir: string, log?: Logger): Promise<HfModelDir> {
  const src = def.model.base.source
  const tok = def.model.tokenizer
  if (src.kind !== 'huggingface' || tok.kind !== 'huggingface') {
    throw new UserError(`--model ${dir}: this swarm uses the built-in model, not a Hugging Face model; leave out --model`)
  }
  const pinned = { ...src.files, ...tok.files }
  for (const [name, want] of Object.entries(pinned)) {
    const path = join(dir, name)
    let bytes: Buffer
    try {
      bytes = await readFile(path)
    } catch (err) {
      throw new UserError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable'}; the swarm pins this file (sha256 ${want.slice(0, 12)}…), so this node cannot join with this model directory`)
    }
    const have = sha256Hex(bytes)
    if (have !== want) {
      throw new UserError(`${path} differs from the swarm's copy (sha256 ${have.slice(0, 12)}… here, ${want.slice(0, 12)}… in the swarm definition): every node must load exactly the same base; use the model directory the swarm was created from`)
    }
  }
  const model = await loadHfModelDir(dir, { poolerSeed: src.poolerSeed, log })
  const files = model.tokenizerFiles.filter((f) => f.name in tok.files)
  if (model.base.hash !== def.model.base.hash) {
    throw new UserError(`${dir}: the files match the swarm's, but this build of coldfusiond derives base ${model.base.hash.slice(0, 12)} from them, not ${def.model.base.hash.slice(0, 12)}; use the coldfusiond version the swarm was created with`)
  }
  return { ...model, tokenizerFiles: files, tokenizer: tokenizerFromFiles(files, dir, def.model.architecture) }
}

/** Copies the swarm's tokenizer files into a node home. */
export async function installTokenizerFiles(home: string, files: PinnedFile[]): Promise<void> {
  const dir = tokenizerDir(home)
  await mkdir(dir, { recursive: true })
  for (const f of files) await writeFileAtomic(join(dir, f.name), f.bytes)
}

/** The swarm's tokenizer files from a node home, each checked against the swarm definition. */
export async function readInstalledTokenizerFiles(def: SwarmDefinition, home: string): Promise<PinnedFile[]> {
  const tok = def.model.tokenizer
  if (tok.kind !== 'huggingface') return []
  const dir = tokenizerDir(home)
  const files: PinnedFile[] = []
  for (const [name, want] of Object.entries(tok.files)) {
    const path = join(dir, name)
    let buf: Buffer
    try {
      buf = await readFile(path)
    } catch {
      throw new UserError(`${path} is missing: this home was not initialised with the swarm's model directory; run \`coldfusiond init --home HOME --swarm swarm.json --model MODEL_DIR\` again in a new home`)
    }
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    const have = sha256Hex(bytes)
    if (have !== want) throw new UserError(`${path} has sha256 ${have.slice(0, 12)}…, the swarm pins ${want.slice(0, 12)}…: the file was changed; restore it from the model directory`)
    files.push({ name, bytes, sha256: have })
  }
  return files
}

/** The tokenizer a node trains with: the swarm's Hugging Face tokenizer, or undefined for the built-in one. */
export async function loadSwarmTokenizer(def: SwarmDefinition, home: string): Promise<HfTokenizer | undefined> {
  if (def.model.tokenizer.kind !== 'huggingface') return undefined
  return tokenizerFromFiles(await readInstalledTokenizerFiles(def, home), tokenizerDir(home), def.model.architecture)
}

/**
 * The model directory a joining node must bring: verified against the swarm when the base is a
 * Hugging Face model; undefined for the built-in model (where giving one is a mistake).
 */
export async function modelForSwarm(def: SwarmDefinition, dir: string | undefined, log?: Logger): Promise<HfModelDir | undefined> {
  if (def.model.base.source.kind !== 'huggingface') {
    if (dir !== undefined) throw new UserError(`--model ${dir}: this swarm uses the built-in model, not a Hugging Face model; leave out --model`)
    return undefined
  }
  if (dir === undefined) {
    const files = Object.keys({ ...def.model.base.source.files, ...(def.model.tokenizer.kind === 'huggingface' ? def.model.tokenizer.files : {}) })
    throw new UserError(`this swarm's base is a Hugging Face ${def.model.architecture.model_type} model: give your copy of its directory with --model DIR (the swarm pins ${files.join(', ')})`)
  }
  return verifyHfModelDir(def, dir, log)
}
