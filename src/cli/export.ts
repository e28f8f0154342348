import { Command, InvalidArgumentError, Option } from 'commander'
import { Ledger } from '../store/ledger.js'
import { ContentStore } from '../store/content-store.js'
import { HomeLayout } from '../store/home.js'
import { loadSwarmDefinition } from '../config/swarm.js'
import { decodeSafetensors, type DType } from '../model/safetensors.js'
import { writeHfDirectory } from '../model/hf/export.js'
import { readInstalledTokenizerFiles } from '../model/hf/swarm.js'
import { UserError } from '../util/errors.js'
import { writeFileAtomic } from '../util/atomic.js'
import { join } from 'node:path'

export interface ExportOptions {
  home: string
  out: string
  /** A committed round (0 is the swarm's starting base); default: the last committed round. */
  round?: number
  dtype?: DType
}

export interface ExportResult {
  out: string
  round: number
  hash: string
  files: string[]
  /** The built-in model has no Hugging Face tokenizer to write. */
  noTokenizer: boolean
}

/**
 * `coldfusiond export`: the fused base of a committed round as a Hugging Face model directory,
 * named and stored as the swarm's original checkpoint was.
 */
export async function exportBase(o: ExportOptions): Promise<ExportResult> {
  const L = new HomeLayout(o.home)
  const { def } = await loadSwarmDefinition(L.swarm)
  const ledger = await Ledger.open(L.ledger, def.model.base.hash)
  const last = ledger.headRound()
  const round = o.round ?? last
  let hash = def.model.base.hash
  if (round > 0) {
    const entry = ledger.chain().find((e) => e.round === round)
    if (!entry) throw new UserError(`round ${round} is not committed in ${L.root} (its last committed round is ${last})`)
    hash = entry.hash
  }
  const bytes = await new ContentStore(L.checkpoints, 'safetensors').get(hash)
  if (!bytes) throw new UserError(`the base of round ${round} (${hash.slice(0, 12)}) is not in ${L.checkpoints}; this node no longer holds it`)
  const body = decodeSafetensors(bytes, `checkpoint ${hash.slice(0, 12)}`).tensors
  const src = def.model.base.source
  const files = await writeHfDirectory({
    out: o.out,
    config: def.model.architecture,
    body,
    names: src.kind === 'huggingface' ? src.names : undefined,
    dtype: o.dtype,
    tokenizerFiles: await readInstalledTokenizerFiles(def, L.root),
  })
  // The built-in model's tokenizer has no Hugging Face file: record what `eval` needs to rebuild it.
  if (def.model.tokenizer.kind === 'hashed-words') {
    await writeFileAtomic(join(o.out, 'coldfusiond.json'), JSON.stringify({ tokenizer: def.model.tokenizer }, null, 2) + '\n')
    files.push('coldfusiond.json')
  }
  return { out: o.out, round, hash, files, noTokenizer: def.model.tokenizer.kind !== 'huggingface' }
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('Write the fused base of a committed round as a Hugging Face model directory (config.json, model.safetensors with the original tensor names and dtype, tokenizer files)')
    .requiredOption('--home <dir>', 'node home directory')
    .requiredOption('--out <dir>', 'directory to create (must be new or empty)')
    .option('--round <n>', 'committed round to export (0: the starting base; default: the last committed round)', (v: string) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--round must be an integer >= 0')
      return n
    })
    .addOption(new Option('--dtype <dtype>', 'store the weights in this dtype (default: the original checkpoint\'s)').choices(['F32', 'F16', 'BF16']))
    .action(async (o) => {
      const r = await exportBase({ home: o.home, out: o.out, round: o.round, dtype: o.dtype })
      process.stdout.write(`exported round ${r.round} (base ${r.hash.slice(0, 12)}) to ${r.out}: ${r.files.join(', ')}\n`)
      if (r.noTokenizer) process.stdout.write('note: the built-in model uses a hashed-word tokenizer, which has no Hugging Face tokenizer file\n')
    })
}
