/** Little-endian float32 <-> bytes. The wire format is little-endian whatever the host is. */

/** Whether this host stores numbers little-endian (then the wire's bytes are the memory's). */
export const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** Copy float32 values into `out` at `pos` as little-endian bytes. */
export function writeF32LE(values: Float32Array, out: Uint8Array, pos: number): void {
  if (littleEndianHost) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), pos)
    return
  }
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let i = 0; i < values.length; i++) dv.setFloat32(pos + i * 4, values[i], true)
}

/** Read little-endian float32 bytes into `out` (copying: `bytes` may be unaligned). */
export function readF32LE(bytes: Uint8Array, out: Float32Array): void {
  if (littleEndianHost) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes.subarray(0, out.length * 4))
    return
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true)
}
