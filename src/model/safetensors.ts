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

export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array {
  const names = sortedNames(tensors)
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
    const bytes = t.data.length * 4
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  let json = JSON.stringify(header)
  // Pad the header with spaces to an 8-byte boundary, as the reference implementation does.
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' '
  const headerBytes = Buffer.from(json, 'utf8')
  const out = new Uint8Array(8 + headerBytes.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let pos = 8 + headerBytes.length
  for (const name of names) {
    const t = tensors.get(name)!
    out.set(f32ToLE(t.data), pos)
    pos += t.data.length * 4
  }
  return out
}

export interface DecodedSafetensors {
  tensors: TensorMap
  metadata: Record<string, string>
  dtypes: Map<string, DType>
}

export function decodeSafetensors(buf: Uint8Array, what = 'safetensors'): DecodedSafetensors {
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
  const tensors: TensorMap = new Map()
  const dtypes = new Map<string, DType>()
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
    const n = numel(e.shape)
    const bytes = buf.subarray(dataStart + begin, dataStart + end)
    let data: Float32Array
    switch (e.dtype) {
      case 'F32':
        if (bytes.length !== n * 4) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} F32 values`, 'malformed')
        data = leToF32(bytes)
        break
      case 'F16':
        if (bytes.length !== n * 2) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} F16 values`, 'malformed')
        data = f16ToF32(bytes)
        break
      case 'BF16':
        if (bytes.length !== n * 2) throw new PayloadError(`${what}: tensor ${name}: ${bytes.length} bytes for ${n} BF16 values`, 'malformed')
        data = bf16ToF32(bytes)
        break
      default:
        throw new PayloadError(`${what}: tensor ${name} has unsupported dtype ${e.dtype} (supported: F32, F16, BF16)`, 'unsupported')
    }
    tensors.set(name, { shape: [...e.shape], data })
    dtypes.set(name, e.dtype as DType)
  }
  return { tensors, metadata, dtypes }
}

export async function readSafetensorsFile(path: string): Promise<DecodedSafetensors> {
  const fh = await open(path, 'r')
  try {
    const buf = await fh.readFile()
    return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path)
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

function leToF32(bytes: Uint8Array): Float32Array {
  // Copy: the source may be unaligned and must not be aliased by the caller's tensors.
  const out = new Float32Array(bytes.length / 4)
  if (littleEndian) {
    new Uint8Array(out.buffer).set(bytes)
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true)
  }
  return out
}

function f16ToF32(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(bytes.length / 2)
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

function bf16ToF32(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(bytes.length / 2)
  const u = new Uint32Array(out.buffer)
  for (let i = 0; i < out.length; i++) u[i] = dv.getUint16(i * 2, true) << 16
  return out
}
