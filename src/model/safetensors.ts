import { open } from 'node:fs/promises'
import { PayloadError } from '../util/errors.js'
import { numel, sortedNames, type TensorMap } from './tensors.js'

/**
 * The safetensors format: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}, then raw little-endian data.
 * Our writer is canonical (sorted names, no whitespace, contiguous data), so equal tensors give
 * equal bytes and therefore equal hashes on every machine.
 */

const MAX_HEADER = 100 * 1024 * 1024

export type DType = 'F32' | 'F16' | 'BF16'

interface HeaderEntry {
  dtype: string
  shape: number[]
  data_offsets: [number, number]
}

export interface EncodeOptions {
  /**
   * Storage dtype, for every tensor or per name (default F32, the canonical form that checkpoints
   * and hashes use). F16 and BF16 round to nearest even; a value beyond the F16 range is refused.
   */
  dtype?: DType | ((name: string) => DType)
}

export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>, opts: EncodeOptions = {}): Uint8Array {
  const parts = safetensorsParts(tensors, metadata, opts)
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0))
  let pos = 0
  for (const p of parts) {
    out.set(p, pos)
    pos += p.length
  }
  return out
}

/**
 * The bytes of encodeSafetensors in order, without joining them: the length and header, then each
 * tensor's data (on a little-endian host, F32 data is a view of the tensor itself, not a copy),
 * so that hashing a model does not need a model-sized buffer.
 */
export function safetensorsParts(tensors: TensorMap, metadata?: Record<string, string>, opts: EncodeOptions = {}): Uint8Array[] {
  const names = sortedNames(tensors)
  const dtypeOf = (name: string): DType => (typeof opts.dtype === 'function' ? opts.dtype(name) : (opts.dtype ?? 'F32'))
  const header: Record<string, unknown> = {}
  if (metadata && Object.keys(metadata).length > 0) {
    const sorted: Record<string, string> = {}
    for (const k of Object.keys(metadata).sort()) sorted[k] = metadata[k]
    header.__metadata__ = sorted
  }
  let offset = 0
  for (const name of names) {
    const t = tensors.get(name)!
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`tensor ${name}: ${t.data.length} values do not fill shape [${t.shape}]`)
    }
    const dtype = dtypeOf(name)
    const bytes = t.data.length * DTYPE_BYTES[dtype]
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  let json = JSON.stringify(header)
  // Pad the header with spaces to an 8-byte boundary, as the reference implementation does.
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' '
  const headerBytes = Buffer.from(json, 'utf8')
  const head = new Uint8Array(8 + headerBytes.length)
  new DataView(head.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  head.set(headerBytes, 8)
  const parts: Uint8Array[] = [head]
  for (const name of names) {
    const t = tensors.get(name)!
    const dtype = dtypeOf(name)
    parts.push(dtype === 'F32' ? f32ToLE(t.data) : dtype === 'F16' ? f32ToF16(t.data, name) : f32ToBF16(t.data))
  }
  return parts
}

const DTYPE_BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 }

export interface DecodedSafetensors {
  tensors: TensorMap
  metadata: Record<string, string>
  dtypes: Map<string, DType>
}

export interface SafetensorsEntry {
  name: string
  dtype: string
  shape: number[]
  /** Byte range within the data section. */
  begin: number
  end: number
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[]
  metadata: Record<string, string>
  /** Offset of the data section in the file. */
  dataStart: number
}

/** The header of a safetensors file, checked for consistency; the data is not read. */
export function readSafetensorsHeader(buf: Uint8Array, what = 'safetensors'): SafetensorsHeader {
  if (buf.length < 8) throw new PayloadError(`${what}: file too short (${buf.length} bytes)`, 'truncated')
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const hlen = Number(view.getBigUint64(0, true))
  if (hlen > MAX_HEADER || 8 + hlen > buf.length) {
    throw new PayloadError(`${what}: header length ${hlen} exceeds the file (${buf.length} bytes)`, 'truncated')
  }
  let header: Record<string, unknown>
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, hlen).toString('utf8'))
  } catch (err) {
    throw new PayloadError(`${what}: header is not valid JSON (${(err as Error).message})`, 'malformed')
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new PayloadError(`${what}: header is not a JSON object`, 'malformed')
  }
  const dataStart = 8 + hlen
  const dataLen = buf.length - dataStart
  const entries: SafetensorsEntry[] = []
  let metadata: Record<string, string> = {}
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>
      continue
    }
    const e = raw as HeaderEntry
    if (!e || typeof e !== 'object' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
      throw new PayloadError(`${what}: tensor ${name} has a malformed header entry`, 'malformed')
    }
    const [begin, end] = e.data_offsets
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || end > dataLen) {
      throw new PayloadError(`${what}: tensor ${name} has data offsets [${begin}, ${end}] outside the data (${dataLen} bytes)`, 'truncated')
    }
    if (!e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new PayloadError(`${what}: tensor ${name} has an invalid shape`, 'malformed')
    }
    entries.push({ name, dtype: String(e.dtype), shape: [...e.shape], begin, end })
  }
  return { entries, metadata, dataStart }
}

export interface DecodeOptions {
  /** Decode only the tensors this accepts (others, e.g. int64 buffers, are skipped unread). */
  select?: (name: string) => boolean
  /** Where each tensor's values go (default: a new Float32Array), e.g. shared memory for fusion's helper threads. */
  alloc?: (length: number) => Float32Array
}

export function decodeSafetensors(buf: Uint8Array, what = 'safetensors', opts: DecodeOptions = {}): DecodedSafetensors {
  const { entries, metadata, dataStart } = readSafetensorsHeader(buf, what)
  const tensors: TensorMap = new Map()
  const dtypes = new Map<string, DType>()
  const alloc = opts.alloc ?? ((length: number) => new Float32Array(length))
  for (const e of entries) {
    if (opts.select && !opts.select(e.name)) continue
    const { name } = e
    const n = numel(e.shape)
    const bytes = buf.subarray(dataStart + e.begin, dataStart + e.end)
    let data: Float32Array
    switch (e.dtype) {
      case 'F32':
        if (bytes.length !== n * 4) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} F32 values`, 'malformed')
        data = leToF32(bytes, alloc(n))
        break
      case 'F16':
        if (bytes.length !== n * 2) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} F16 values`, 'malformed')
        data = f16ToF32(bytes, alloc(n))
        break
      case 'BF16':
        if (bytes.length !== n * 2) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} BF16 values`, 'malformed')
        data = bf16ToF32(bytes, alloc(n))
        break
      default:
        throw new PayloadError(`${what}: tensor ${name} has unsupported dtype ${e.dtype} (supported: F32, F16, BF16)`, 'unsupported')
    }
    tensors.set(name, { shape: [...e.shape], data })
    dtypes.set(name, e.dtype as DType)
  }
  return { tensors, metadata, dtypes }
}

export async function readSafetensorsFile(path: string, opts: DecodeOptions = {}): Promise<DecodedSafetensors> {
  const fh = await open(path, 'r')
  try {
    const buf = await fh.readFile()
    return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path, opts)
  } finally {
    await fh.close()
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function f32ToLE(data: Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const out = new Uint8Array(data.length * 4)
  const dv = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i], true)
  return out
}

function leToF32(bytes: Uint8Array, out: Float32Array): Float32Array {
  // Copy: the source may be unaligned and must not be aliased by the caller's tensors.
  if (littleEndian) {
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).copy(new Uint8Array(out.buffer, out.byteOffset, out.byteLength))
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true)
  }
  return out
}

function f16ToF32(bytes: Uint8Array, out: Float32Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) {
    const h = dv.getUint16(i * 2, true)
    const s = h & 0x8000 ? -1 : 1
    const e = (h >> 10) & 0x1f
    const f = h & 0x3ff
    if (e === 0) out[i] = s * f * 2 ** -24
    else if (e === 31) out[i] = f ? NaN : s * Infinity
    else out[i] = s * (1 + f / 1024) * 2 ** (e - 15)
  }
  return out
}

function bf16ToF32(bytes: Uint8Array, out: Float32Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length)
  for (let i = 0; i < out.length; i++) u[i] = dv.getUint16(i * 2, true) << 16
  return out
}

const f32Scratch = new Float32Array(1)
const u32Scratch = new Uint32Array(f32Scratch.buffer)

/** float32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16)); NaN stays NaN. */
function bf16Bits(v: number): number {
  f32Scratch[0] = v
  const u = u32Scratch[0]
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
}

/** float32 -> float16 bits, round to nearest even, subnormals kept; undefined when out of range. */
function f16Bits(v: number): number | undefined {
  f32Scratch[0] = v
  const u = u32Scratch[0]
  const sign = (u >>> 16) & 0x8000
  const exp = (u >>> 23) & 0xff
  let mant = u & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 0x1f) return undefined
  if (e <= 0) {
    if (e < -10) return sign // underflows to (signed) zero
    mant |= 0x800000
    const shift = 14 - e
    const half = 1 << (shift - 1)
    const rest = mant & ((1 << shift) - 1)
    let m = mant >>> shift
    if (rest > half || (rest === half && (m & 1))) m++
    return sign | m
  }
  let m = mant >>> 13
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++
    if (m === 0x400) {
      m = 0
      e++
      if (e >= 0x1f) return undefined
    }
  }
  return sign | (e << 10) | m
}

function f32ToF16(data: Float32Array, name: string): Uint8Array {
  const out = new Uint8Array(data.length * 2)
  const dv = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) {
    const h = f16Bits(data[i])
    if (h === undefined) throw new Error(`tensor ${name}: value ${data[i]} at index ${i} is beyond the float16 range (65504); store it as F32 or BF16`)
    dv.setUint16(i * 2, h, true)
  }
  return out
}

function f32ToBF16(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 2)
  const dv = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) dv.setUint16(i * 2, bf16Bits(data[i]), true)
  return out
}
