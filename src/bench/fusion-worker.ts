import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeDelta, openDelta, type CodecSettings } from '../codec/index.js'
import { fuseRound, hashTensors } from '../fusion/index.js'
import type { ModelConfig } from '../model/config.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import { sha256Hex } from '../util/hash.js'
import { childMain } from './child.js'
import { noiseTensors } from './synthetic.js'

/**
 * Fusion throughput, in its own process so that its peak RSS is fusion's alone: `make` writes a
 * base and N encoded deltas to a directory; `fuse` loads the base and the first N payloads, then
 * times a plain copy of the payload bytes and fuseRound over them, side by side.
 */

export type FusionJob =
  | { mode: 'make'; dir: string; config: ModelConfig; deltas: number; codec: CodecSettings }
  | { mode: 'fuse'; dir: string; deltas: number; repeats: number }

export interface MakeResult {
  params: number
  tensors: number
  payloadBytes: number[]
  encodeSeconds: number
}

export interface FuseResult {
  deltas: number
  params: number
  payloadBytes: number
  memcpySeconds: number
  fuseSeconds: number
  /** Of fuseSeconds: checking every delta id (sha256 over the payload). */
  idHashSeconds: number
  /** Decoding every tensor of every delta into one reused buffer (the codec's share of fusion). */
  decodeSeconds: number
  /** Not in fuseSeconds: hashing the base, which fuseRound does when not told the hash. */
  baseHashSeconds: number
  /** Peak RSS of this process (base + payloads + fusion), and RSS before fusing. */
  peakRssMb: number
  loadedRssMb: number
}

const META = (baseHash: string) => ({ round: 1, baseHash, examples: 1000 })

async function make(job: Extract<FusionJob, { mode: 'make' }>): Promise<MakeResult> {
  await mkdir(job.dir, { recursive: true })
  const base = noiseTensors(job.config, 1, 0.1)
  const baseHash = hashTensors(base)
  await writeFile(join(job.dir, 'base.safetensors'), encodeSafetensors(base))
  const payloadBytes: number[] = []
  let encodeSeconds = 0
  for (let j = 0; j < job.deltas; j++) {
    const delta = noiseTensors(job.config, 100 + j, 1e-3)
    const t0 = performance.now()
    const { payload } = encodeDelta(delta, job.codec, META(baseHash))
    encodeSeconds += (performance.now() - t0) / 1000
    payloadBytes.push(payload.length)
    await writeFile(join(job.dir, `delta${j}.cfd`), payload)
  }
  let params = 0
  for (const t of base.values()) params += t.data.length
  return { params, tensors: base.size, payloadBytes, encodeSeconds: encodeSeconds / job.deltas }
}

function best(repeats: number, f: () => void): number {
  let s = Infinity
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now()
    f()
    s = Math.min(s, (performance.now() - t0) / 1000)
  }
  return s
}

async function fuse(job: Extract<FusionJob, { mode: 'fuse' }>): Promise<FuseResult> {
  const buf = await readFile(join(job.dir, 'base.safetensors'))
  const base = decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), 'base').tensors
  const payloads: Uint8Array[] = []
  for (let j = 0; j < job.deltas; j++) {
    const b = await readFile(join(job.dir, `delta${j}.cfd`))
    payloads.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
  }
  const total = payloads.reduce((a, p) => a + p.length, 0)
  let baseHash = ''
  const baseHashSeconds = best(1, () => (baseHash = hashTensors(base)))
  const deltas = payloads.map((payload) => ({ id: sha256Hex(payload), payload, examples: openDelta(payload, { layout: base }).meta.examples }))
  const loadedRssMb = process.memoryUsage().rss / 2 ** 20

  // One fusion first: the peak RSS is read before the copy buffer below exists.
  let fuseSeconds = best(1, () => fuseRound(base, deltas, { baseHash }))
  const peakRssMb = process.resourceUsage().maxRSS / 1024
  // The same bytes, copied once into one buffer (touched first, so page faults are not timed).
  const dest = new Uint8Array(total)
  const copy = () => {
    let off = 0
    for (const p of payloads) {
      dest.set(p, off)
      off += p.length
    }
  }
  copy()
  const idHashSeconds = best(job.repeats, () => payloads.forEach((p) => sha256Hex(p)))
  const readers = payloads.map((p) => openDelta(p, { layout: base }))
  const scratch = new Float32Array(Math.max(...[...base.values()].map((t) => t.data.length)))
  const decodeSeconds = best(job.repeats, () => readers.forEach((r) => r.tensors.forEach((t) => r.read(t.name, scratch.subarray(0, t.numel)))))
  const memcpyA = best(job.repeats, copy)
  fuseSeconds = Math.min(fuseSeconds, best(job.repeats - 1, () => fuseRound(base, deltas, { baseHash })))
  const memcpyB = best(job.repeats, copy)
  let params = 0
  for (const t of base.values()) params += t.data.length
  return {
    deltas: job.deltas, params, payloadBytes: total,
    memcpySeconds: Math.min(memcpyA, memcpyB), fuseSeconds, idHashSeconds, decodeSeconds, baseHashSeconds,
    peakRssMb, loadedRssMb,
  }
}

childMain<FusionJob, MakeResult | FuseResult>((job) => (job.mode === 'make' ? make(job) : fuse(job)))
