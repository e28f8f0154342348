import { PayloadError } from '../util/errors.js'
import { isHex64, sha256Hex } from '../util/hash.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import { createHash } from 'node:crypto'
import type { CodecParams, CodecSettings, DeltaMeta, SectionSource, SectionStream } from './types.js'
import { ArrayStream, memorySource, subSource } from './stream.js'
import { CODEC_ID_PATTERN, codecIds, getCodec } from './registry.js'

/**
 * The delta container: the exact bytes that travel, get hashed (deltaId = sha256Hex(payload)) and
 * get fused. Everything is little-endian.
 *
 *   0        "CFDL"                      magic
 *   4        u16   format version (1)
 *   6        u8    L = codec id length (1..32), then L bytes of ASCII codec id
 *   7+L      u32   H = header length, then H bytes of canonical JSON:
 *                  {"meta":{"round","baseHash","examples"},"params":{..sorted..},
 *                   "tensors":[{"name","shape","bytes"},..]}   (names sorted, strictly increasing)
 *   11+L+H   body: one codec section per tensor, in header order, byte lengths as in the header
 *   end-8    checksum: the first 8 bytes of sha256 over everything before it
 *
 * Format 2 (codecs with `layoutDigest`) differs only in the header, which names the tensors by
 * the digest of their layout instead of listing them:
 *                  {"layout":layoutDigest(names, shapes),"meta":{..},"params":{..},"sizes":[bytes,..]}
 * so a reader needs the expected layout (DecodeExpect.layout; fusion and validation always
 * have it: the base). Format 1 payloads stay readable and are still written by f32 and q8-block.
 *
 * Decoding trusts nothing: every path throws PayloadError (with a `reason`), never anything else.
 * The header must be byte-for-byte canonical, so one delta has exactly one valid encoding.
 */

export const DELTA_MAGIC = 'CFDL'
/** The newest container format; every format in DELTA_FORMAT_VERSIONS is read. */
export const DELTA_FORMAT_VERSION = 2
export const DELTA_FORMAT_VERSIONS: readonly number[] = [1, 2]
const MAGIC = new TextEncoder().encode(DELTA_MAGIC)
const CHECKSUM_BYTES = 8
const MIN_PAYLOAD = 4 + 2 + 1 + 1 + 4 + 2 + CHECKSUM_BYTES
const MAX_HEADER = 16 * 1024 * 1024
const MAX_NAME = 512
const MAX_RANK = 16
/** Per tensor: Float32Array and Int8Array lengths stay far from engine limits. */
const MAX_TENSOR_VALUES = 2 ** 31 - 1
export const DEFAULT_MAX_VALUES = 2 ** 28

/** Names and shapes to match: a TensorMap (e.g. the base's shared body) fits. */
export type Layout = ReadonlyMap<string, { readonly shape: readonly number[] }>

export interface DecodeExpect {
  /** Reject unless the payload has exactly these tensor names and shapes. */
  layout?: Layout
  /** Reject payloads larger than this (bytes). */
  maxBytes?: number
  /** Reject payloads declaring more values in total (default 2^28); bounds memory for sparse codecs. */
  maxValues?: number
  /** Reject unless bound to this round / base. */
  round?: number
  baseHash?: string
}

export interface TensorEntry {
  readonly name: string
  readonly shape: readonly number[]
  readonly numel: number
}

/** An opened (structurally validated, checksum-verified) payload; values are decoded on demand. */
export interface DeltaReader {
  readonly meta: DeltaMeta
  readonly codec: string
  readonly params: CodecParams
  readonly byteLength: number
  /** Canonical (sorted-name) order. */
  readonly tensors: readonly TensorEntry[]
  /**
   * Decode one tensor into `out` (a new array if omitted; length must be its numel).
   * Throws PayloadError if its values are invalid (non-finite, non-canonical).
   */
  read(name: string, out?: Float32Array): Float32Array
  /**
   * Check one tensor's values as `read` would (the same PayloadError), without decoding where the
   * codec can (Codec.validate); else it decodes into `scratch` (at least numel values) if given.
   */
  check(name: string, scratch?: Float32Array): void
  /**
   * The same values piece by piece (see SectionStream), reading only each piece's bytes. Errors
   * are PayloadErrors naming the tensor. Streams of one reader share read buffers: use one at a
   * time.
   */
  stream(name: string): SectionStream
}

/** A whole payload to read from: in memory, or a file (file-bytes.ts). */
export type PayloadSource = SectionSource

/** How openDelta treats the container checksum. */
export interface OpenOptions {
  /**
   * The checksum's verdict when the caller already knows it: computed in the same pass as the
   * delta id (payloadDigests), or not needed because the bytes are known to be ones validated
   * before (their sha256 is the id of a payload that passed validateDelta). Default: checked here.
   */
  checksumOk?: boolean
}

export interface EncodedDelta {
  payload: Uint8Array
  /** sha256Hex(payload): the delta's id everywhere (announce, fetch, ledger, fusion order). */
  deltaId: string
  /** The values a receiver decodes, bit for bit: delta - reconstruction is the error-feedback residual. */
  reconstruction: TensorMap
}

function fail(message: string, reason: string): never {
  throw new PayloadError(`delta payload: ${message}`, reason)
}

function sortedParams(params: CodecParams): Record<string, number> {
  const p: Record<string, number> = {}
  for (const k of Object.keys(params).sort()) p[k] = params[k]
  return p
}

function canonicalHeader(meta: DeltaMeta, params: CodecParams, entries: readonly { name: string; shape: readonly number[]; bytes: number }[]): string {
  return JSON.stringify({
    meta: { round: meta.round, baseHash: meta.baseHash, examples: meta.examples },
    params: sortedParams(params),
    tensors: entries.map((e) => ({ name: e.name, shape: e.shape, bytes: e.bytes })),
  })
}

function canonicalHeaderV2(meta: DeltaMeta, params: CodecParams, layout: string, entries: readonly { bytes: number }[]): string {
  return JSON.stringify({
    layout,
    meta: { round: meta.round, baseHash: meta.baseHash, examples: meta.examples },
    params: sortedParams(params),
    sizes: entries.map((e) => e.bytes),
  })
}

/** sha256 hex of the sorted tensor names and shapes: what a format-2 header names. */
export function layoutDigest(layout: Layout): string {
  const list = [...layout.keys()].sort().map((name) => [name, [...layout.get(name)!.shape]])
  return sha256Hex(new TextEncoder().encode(`coldfusion-layout-v1\n${JSON.stringify(list)}`))
}

function checksum(bytes: Uint8Array): Uint8Array {
  return Buffer.from(sha256Hex(bytes).slice(0, CHECKSUM_BYTES * 2), 'hex')
}

/**
 * A payload's id (sha256 of all of it) and whether its container checksum (sha256 of all but the
 * last 8 bytes) matches, in one pass over the bytes: the checksum's hash state is the id's
 * halfway, so it is copied there.
 */
export class PayloadHasher {
  private readonly h = createHash('sha256')
  private done = 0
  private sum: Buffer | undefined
  private readonly tail = new Uint8Array(CHECKSUM_BYTES)

  constructor(readonly byteLength: number) {}

  /** Bytes hashed so far: the next update must start there. */
  get position(): number {
    return this.done
  }

  update(bytes: Uint8Array): void {
    const cut = this.byteLength - CHECKSUM_BYTES
    let from = 0
    if (this.sum === undefined && cut >= 0 && this.done <= cut && this.done + bytes.length >= cut) {
      from = cut - this.done
      this.h.update(bytes.subarray(0, from))
      this.sum = this.h.copy().digest()
    }
    this.h.update(bytes.subarray(from))
    // Keep what lands in the last 8 bytes: the stored checksum.
    for (let i = Math.max(0, cut - this.done); i < bytes.length; i++) this.tail[this.done + i - cut] = bytes[i]
    this.done += bytes.length
  }

  /** Call once every byte went through update. */
  result(): { id: string; checksumOk: boolean } {
    const id = this.h.digest('hex')
    let ok = this.sum !== undefined && this.byteLength >= MIN_PAYLOAD
    for (let i = 0; ok && i < CHECKSUM_BYTES; i++) ok = this.tail[i] === this.sum![i]
    return { id, checksumOk: ok }
  }
}

/** payloadDigests(p).id === sha256Hex(p); `checksumOk` is the container checksum's verdict. */
export function payloadDigests(payload: Uint8Array): { id: string; checksumOk: boolean } {
  const h = new PayloadHasher(payload.length)
  h.update(payload)
  return h.result()
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

function checkMeta(meta: DeltaMeta): string | null {
  if (!isCount(meta.round)) return `round must be a non-negative integer, got ${String(meta.round)}`
  if (!isHex64(meta.baseHash)) return `baseHash must be 64 lowercase hex characters`
  if (!isCount(meta.examples)) return `examples must be a non-negative integer, got ${String(meta.examples)}`
  return null
}

/** Compress a delta into a payload. Deterministic: same delta, settings and meta, same bytes. */
export function encodeDelta(delta: TensorMap, settings: CodecSettings, meta: DeltaMeta): EncodedDelta {
  const codec = getCodec(settings.codec)
  if (!codec) throw new RangeError(`unknown codec ${JSON.stringify(settings.codec)} (known: ${codecIds().join(', ')})`)
  const params = codec.paramsFromSettings(settings)
  const bad = checkMeta(meta)
  if (bad) throw new RangeError(`encodeDelta: ${bad}`)
  const names = sortedNames(delta)
  for (const name of names) {
    const t = delta.get(name)!
    if (name.length === 0 || name.length > MAX_NAME) throw new RangeError(`encodeDelta: tensor name must have 1..${MAX_NAME} characters: ${JSON.stringify(name)}`)
    if (t.shape.length > MAX_RANK || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`encodeDelta: tensor ${name} has an invalid shape [${t.shape}]`)
    const n = t.shape.reduce((a, d) => a * d, 1)
    if (n !== t.data.length || n > MAX_TENSOR_VALUES) throw new RangeError(`encodeDelta: tensor ${name}: ${t.data.length} values for shape [${t.shape}]`)
  }
  const { sections, reconstruction } = codec.encode(delta, names, params)
  if (sections.length !== names.length) throw new Error(`codec ${codec.id} returned ${sections.length} sections for ${names.length} tensors`)
  const entries = names.map((name, i) => {
    const shape = [...delta.get(name)!.shape]
    const problem = codec.checkSection(delta.get(name)!.data.length, sections[i].length, params)
    if (problem) throw new Error(`codec ${codec.id} produced an invalid section for ${name}: ${problem}`)
    return { name, shape, bytes: sections[i].length }
  })
  const idBytes = new TextEncoder().encode(codec.id)
  const version = codec.layoutDigest ? 2 : 1
  const header = new TextEncoder().encode(version === 2 ? canonicalHeaderV2(meta, params, layoutDigest(delta), entries) : canonicalHeader(meta, params, entries))
  const bodyLen = sections.reduce((a, s) => a + s.length, 0)
  const total = 4 + 2 + 1 + idBytes.length + 4 + header.length + bodyLen + CHECKSUM_BYTES
  const out = new Uint8Array(total)
  const dv = new DataView(out.buffer)
  let pos = 0
  out.set(MAGIC, pos)
  pos += 4
  dv.setUint16(pos, version, true)
  pos += 2
  dv.setUint8(pos, idBytes.length)
  pos += 1
  out.set(idBytes, pos)
  pos += idBytes.length
  dv.setUint32(pos, header.length, true)
  pos += 4
  out.set(header, pos)
  pos += header.length
  for (const s of sections) {
    out.set(s, pos)
    pos += s.length
  }
  out.set(checksum(out.subarray(0, pos)), pos)
  return { payload: out, deltaId: sha256Hex(out), reconstruction }
}

/**
 * Validate the framing, header, checksum and expectations of a payload, without decoding values.
 * Values are decoded (and checked) tensor by tensor through the returned reader.
 */
export function openDelta(payload: Uint8Array, expect: DecodeExpect = {}, opts: OpenOptions = {}): DeltaReader {
  try {
    if (!(payload instanceof Uint8Array)) fail('not a byte array', 'malformed')
    const checksumOk = opts.checksumOk ?? (() => checksumMatches(payload))
    return openUnchecked(memorySource(payload), expect, checksumOk)
  } catch (err) {
    throw asPayloadError(err)
  }
}

/**
 * openDelta over any source, e.g. a payload's file: sections are read when streamed or read.
 * `checksumOk` is required: a source is not read whole here (a file source checks the checksum
 * and the id as it is read: file-bytes.ts).
 */
export function openDeltaSource(src: PayloadSource, expect: DecodeExpect, checksumOk: boolean): DeltaReader {
  try {
    return openUnchecked(src, expect, checksumOk)
  } catch (err) {
    throw asPayloadError(err)
  }
}

function checksumMatches(payload: Uint8Array): boolean {
  const end = payload.length - CHECKSUM_BYTES
  const want = checksum(payload.subarray(0, end))
  for (let i = 0; i < CHECKSUM_BYTES; i++) if (payload[end + i] !== want[i]) return false
  return true
}

function asPayloadError(err: unknown, context = ''): PayloadError {
  if (err instanceof PayloadError) return context ? new PayloadError(`delta payload: ${context}: ${err.message}`, err.reason) : err
  // Defence in depth: a bug or an engine limit on hostile input still surfaces as a rejection.
  return new PayloadError(`delta payload: ${context ? context + ': ' : ''}${err instanceof Error ? err.message : String(err)}`, 'malformed')
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

function openUnchecked(src: PayloadSource, expect: DecodeExpect, checksumVerdict: boolean | (() => boolean)): DeltaReader {
  const len = src.byteLength
  if (expect.maxBytes !== undefined && len > expect.maxBytes) fail(`${len} bytes exceeds the limit of ${expect.maxBytes}`, 'too-large')
  if (len < MIN_PAYLOAD) fail(`only ${len} bytes (a payload has at least ${MIN_PAYLOAD})`, 'truncated')
  // Magic, version, codec id (at most 32 bytes) and header length: all within the first 43 bytes.
  const payload = src.read(0, Math.min(len, 7 + 32 + 4), -1)
  for (let i = 0; i < 4; i++) if (payload[i] !== MAGIC[i]) fail(`bad magic (not a CFDL delta)`, 'bad-magic')
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const version = dv.getUint16(4, true)
  if (!DELTA_FORMAT_VERSIONS.includes(version)) fail(`format version ${version} is not supported (this build reads ${DELTA_FORMAT_VERSIONS.join(' and ')})`, 'unsupported-version')
  const idLen = payload[6]
  if (idLen < 1 || idLen > 32) fail(`codec id length ${idLen} is out of range`, 'malformed')
  const headerLenPos = 7 + idLen
  if (headerLenPos + 4 + CHECKSUM_BYTES > len) fail(`ends inside the codec id`, 'truncated')
  const codecId = String.fromCharCode(...payload.subarray(7, 7 + idLen))
  if (!CODEC_ID_PATTERN.test(codecId)) fail(`codec id is not plain ASCII`, 'malformed')
  const codec = getCodec(codecId)
  if (!codec) fail(`unknown codec ${JSON.stringify(codecId)} (known: ${codecIds().join(', ')})`, 'unsupported-codec')
  const headerLen = dv.getUint32(headerLenPos, true)
  const headerPos = headerLenPos + 4
  const bodyPos = headerPos + headerLen
  if (headerLen > MAX_HEADER) fail(`header length ${headerLen} exceeds ${MAX_HEADER}`, 'malformed')
  if (bodyPos + CHECKSUM_BYTES > len) fail(`header length ${headerLen} runs past the end (${len} bytes)`, 'truncated')

  let verdict: boolean | undefined = typeof checksumVerdict === 'boolean' ? checksumVerdict : undefined
  const checksumOk = () => (verdict ??= (checksumVerdict as () => boolean)())
  const checksumFail = (): never => fail('checksum mismatch (corrupt or truncated payload)', 'checksum')

  let headerText: string
  let parsed: ReturnType<typeof parseHeader>
  try {
    headerText = utf8.decode(src.read(headerPos, headerLen, -1))
    const maxValues = expect.maxValues ?? DEFAULT_MAX_VALUES
    parsed = version === 2 ? parseHeaderV2(headerText, expect.layout, maxValues) : parseHeader(headerText, maxValues)
  } catch (err) {
    // A corrupt header is most often plain corruption: say so when the checksum agrees.
    if (!checksumOk()) checksumFail()
    throw asPayloadError(err)
  }
  const { meta, rawParams, entries, digest } = parsed
  let bodyLen = 0
  for (const e of entries) bodyLen += e.bytes
  const expected = bodyPos + bodyLen + CHECKSUM_BYTES
  if (len < expected) fail(`${len} bytes, but the header describes ${expected}`, 'truncated')
  if (len > expected) fail(`${len - expected} trailing bytes after the declared content`, 'trailing-bytes')
  if (!checksumOk()) checksumFail()

  const params = codec.checkParams(rawParams)
  const canonical = digest === undefined ? canonicalHeader(meta, params, entries) : canonicalHeaderV2(meta, params, digest, entries)
  if (canonical !== headerText) fail('header is not in canonical form', 'non-canonical')
  if (expect.round !== undefined && meta.round !== expect.round) fail(`made for round ${meta.round}, expected round ${expect.round}`, 'wrong-round')
  if (expect.baseHash !== undefined && meta.baseHash !== expect.baseHash) fail(`made against base ${meta.baseHash.slice(0, 12)}, expected ${expect.baseHash.slice(0, 12)}`, 'wrong-base')
  if (expect.layout) checkLayout(entries, expect.layout)

  const offsets = new Map<string, { index: number; offset: number; bytes: number }>()
  const tensors: TensorEntry[] = []
  let offset = bodyPos
  entries.forEach((e, index) => {
    const problem = codec.checkSection(e.numel, e.bytes, params)
    if (problem) fail(`tensor ${e.name}: ${problem}`, 'malformed')
    offsets.set(e.name, { index, offset, bytes: e.bytes })
    tensors.push(Object.freeze({ name: e.name, shape: Object.freeze([...e.shape]), numel: e.numel }))
    offset += e.bytes
  })

  const locate = (name: string) => {
    const at = offsets.get(name)
    if (!at) throw new RangeError(`delta has no tensor ${name}`)
    return { ...at, n: tensors[at.index].numel, section: subSource(src, at.offset, at.bytes) }
  }
  return {
    meta,
    codec: codecId,
    params,
    byteLength: len,
    tensors,
    read(name: string, out?: Float32Array): Float32Array {
      const { n, section } = locate(name)
      if (out === undefined) out = new Float32Array(n)
      else if (out.length !== n) throw new RangeError(`tensor ${name}: output has ${out.length} values, need ${n}`)
      try {
        codec.decodeInto(section.read(0, section.byteLength, -1), out, params)
      } catch (err) {
        throw asPayloadError(err, `tensor ${name}`)
      }
      return out
    },
    check(name: string, scratch?: Float32Array): void {
      const { n, section } = locate(name)
      if (scratch && scratch.length < n) throw new RangeError(`tensor ${name}: scratch has ${scratch.length} values, need ${n}`)
      try {
        const bytes = section.read(0, section.byteLength, -1)
        if (codec.validate) codec.validate(bytes, n, params)
        else codec.decodeInto(bytes, scratch ? scratch.subarray(0, n) : new Float32Array(n), params)
      } catch (err) {
        throw asPayloadError(err, `tensor ${name}`)
      }
    },
    stream(name: string): SectionStream {
      const { n, section } = locate(name)
      const context = `tensor ${name}`
      let inner: SectionStream
      try {
        if (codec.openStream) inner = codec.openStream(section, n, params)
        else {
          const all = new Float32Array(n)
          codec.decodeInto(section.read(0, section.byteLength, -1), all, params)
          inner = new ArrayStream(all)
        }
      } catch (err) {
        throw asPayloadError(err, context)
      }
      // Called per piece: try/catch in place, no closure per call.
      const fail = (err: unknown) => asPayloadError(err, context)
      const wrapped: SectionStream = {
        decode(out, count) {
          try {
            inner.decode(out, count)
          } catch (err) {
            throw fail(err)
          }
        },
        add(acc, count, w) {
          try {
            inner.add(acc, count, w)
          } catch (err) {
            throw fail(err)
          }
        },
      }
      if (inner.set) {
        wrapped.set = (acc, count, w) => {
          try {
            inner.set!(acc, count, w)
          } catch (err) {
            throw fail(err)
          }
        }
      }
      if ((inner.q8Block !== undefined || inner.f32Kernel) && inner.stage && inner.check) {
        return {
          ...wrapped,
          q8Block: inner.q8Block,
          f32Kernel: inner.f32Kernel,
          stage(slot, count) {
            try {
              return inner.stage!(slot, count)
            } catch (err) {
              throw fail(err)
            }
          },
          check(slot, count) {
            try {
              inner.check!(slot, count)
            } catch (err) {
              throw fail(err)
            }
          },
          skip: inner.skip ? (count) => inner.skip!(count) : undefined,
        }
      }
      return wrapped
    },
  }
}

interface ParsedEntry {
  name: string
  shape: number[]
  bytes: number
  numel: number
}

interface ParsedHeader {
  meta: DeltaMeta
  rawParams: Record<string, unknown>
  entries: ParsedEntry[]
  /** Format 2: the layout digest the header names. */
  digest?: string
}

/** The JSON object, its meta and params, common to both formats. */
function parseCommon(text: string, keysWanted: string): { h: Record<string, unknown>; meta: DeltaMeta; rawParams: Record<string, unknown> } {
  let h: unknown
  try {
    h = JSON.parse(text)
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`, 'malformed')
  }
  if (!isPlainObject(h)) fail('header is not a JSON object', 'malformed')
  const keys = Object.keys(h).sort().join(',')
  if (keys !== keysWanted) fail(`header must have exactly ${keysWanted.split(',').join(', ')} (got ${keys.slice(0, 80)})`, 'malformed')
  const m = h.meta
  if (!isPlainObject(m) || Object.keys(m).sort().join(',') !== 'baseHash,examples,round') fail('header meta must have exactly round, baseHash, examples', 'malformed')
  const meta = { round: m.round, baseHash: m.baseHash, examples: m.examples } as DeltaMeta
  const badMeta = checkMeta(meta)
  if (badMeta) fail(`header meta: ${badMeta}`, 'malformed')
  if (!isPlainObject(h.params)) fail('header params must be an object', 'malformed')
  return { h, meta, rawParams: h.params }
}

function parseHeaderV2(text: string, layout: Layout | undefined, maxValues: number): ParsedHeader {
  const { h, meta, rawParams } = parseCommon(text, 'layout,meta,params,sizes')
  if (typeof h.layout !== 'string' || !isHex64(h.layout)) fail('header layout must be 64 lowercase hex characters', 'malformed')
  if (!Array.isArray(h.sizes)) fail('header sizes must be an array', 'malformed')
  // The digest is all a format-2 payload says about its tensors: the reader supplies them.
  if (!layout) fail('a format-2 payload names its tensors by layout digest; decoding it needs the expected layout', 'layout-required')
  if (h.layout !== layoutDigest(layout)) fail(`made for tensor layout ${h.layout.slice(0, 12)}, expected ${layoutDigest(layout).slice(0, 12)}`, 'layout-mismatch')
  const names = [...layout.keys()].sort()
  if (h.sizes.length !== names.length) fail(`header has ${h.sizes.length} sizes for ${names.length} tensors`, 'malformed')
  const entries: ParsedEntry[] = []
  let total = 0
  names.forEach((name, i) => {
    const shape = [...layout.get(name)!.shape]
    const numel = shape.reduce((a, d) => a * d, 1)
    const bytes = (h.sizes as unknown[])[i]
    if (!isCount(bytes)) fail(`tensor ${name} has an invalid byte length`, 'malformed')
    total += numel
    if (total > maxValues) fail(`declares more than ${maxValues} values`, 'too-large')
    entries.push({ name, shape, bytes, numel })
  })
  return { meta, rawParams, entries, digest: h.layout }
}

function parseHeader(text: string, maxValues: number): ParsedHeader {
  const { h, meta, rawParams } = parseCommon(text, 'meta,params,tensors')
  if (!Array.isArray(h.tensors)) fail('header tensors must be an array', 'malformed')
  const entries: ParsedEntry[] = []
  let total = 0
  let prev: string | null = null
  for (const raw of h.tensors as unknown[]) {
    if (!isPlainObject(raw) || Object.keys(raw).sort().join(',') !== 'bytes,name,shape') fail(`tensor entry ${entries.length} must have exactly name, shape, bytes`, 'malformed')
    const { name, shape, bytes } = raw
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME) fail(`tensor entry ${entries.length} has an invalid name`, 'malformed')
    if (prev !== null && !(prev < name)) fail(`tensor ${name} is out of canonical order (after ${prev})`, 'malformed')
    prev = name
    if (!Array.isArray(shape) || shape.length > MAX_RANK) fail(`tensor ${name} has an invalid shape`, 'malformed')
    let numel = 1
    for (const d of shape as unknown[]) {
      if (!isCount(d)) fail(`tensor ${name} has an invalid dimension ${String(d)}`, 'malformed')
      if (d !== 0 && numel > MAX_TENSOR_VALUES / d) fail(`tensor ${name} shape [${shape}] overflows (max ${MAX_TENSOR_VALUES} values)`, 'too-large')
      numel *= d
    }
    if (!isCount(bytes)) fail(`tensor ${name} has an invalid byte length`, 'malformed')
    total += numel
    if (total > maxValues) fail(`declares more than ${maxValues} values`, 'too-large')
    entries.push({ name, shape: shape as number[], bytes, numel })
  }
  return { meta, rawParams, entries }
}

function checkLayout(entries: readonly ParsedEntry[], layout: Layout): void {
  const want = [...layout.keys()].sort()
  if (want.length !== entries.length) fail(`has ${entries.length} tensors, expected ${want.length}`, 'layout-mismatch')
  for (let i = 0; i < want.length; i++) {
    const e = entries[i]
    if (e.name !== want[i]) fail(`tensor ${e.name} where ${want[i]} was expected`, 'layout-mismatch')
    const ws = layout.get(want[i])!.shape
    if (ws.length !== e.shape.length || ws.some((d, j) => d !== e.shape[j])) fail(`tensor ${e.name} has shape [${e.shape}], expected [${ws}]`, 'layout-mismatch')
  }
}

/** Call `visit` for each tensor in canonical order, one decoded tensor alive at a time. */
export function decodeDeltaInto(
  payload: Uint8Array,
  visit: (name: string, values: Float32Array, shape: readonly number[]) => void,
  expect: DecodeExpect = {},
): DeltaMeta {
  const reader = openDelta(payload, expect)
  for (const t of reader.tensors) visit(t.name, reader.read(t.name), t.shape)
  return reader.meta
}

/** Decode a whole payload. */
export function decodeDelta(payload: Uint8Array, expect: DecodeExpect = {}): { meta: DeltaMeta; codec: string; tensors: TensorMap } {
  const tensors: TensorMap = new Map()
  const reader = openDelta(payload, expect)
  for (const t of reader.tensors) tensors.set(t.name, { shape: [...t.shape], data: reader.read(t.name) })
  return { meta: reader.meta, codec: reader.codec, tensors }
}

/**
 * Fully validate a payload (framing, checksum, expectations and every value): run it when a
 * delta arrives, so that a delta admitted to a round can never fail fusion.
 */
export function validateDelta(payload: Uint8Array, expect: DecodeExpect = {}): DeltaReader {
  const reader = openDelta(payload, expect)
  const scratch = getCodec(reader.codec)?.validate ? undefined : new Float32Array(reader.tensors.reduce((m, t) => Math.max(m, t.numel), 0))
  for (const t of reader.tensors) reader.check(t.name, scratch)
  return reader
}
