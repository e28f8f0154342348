/** Just enough of a WebAssembly assembler for the kernels (wasm-q8.ts, wasm-q8-fuse.ts): opcodes and encodings. */

// Value types and opcodes (WebAssembly core and SIMD).
export const I32 = 0x7f
export const F32 = 0x7d
export const F64 = 0x7c
export const V128 = 0x7b
export const op = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i32Load8S: 0x2c, f32Load: 0x2a, f64Load: 0x2b, f32Store: 0x38, f64Store: 0x39, i32Const: 0x41,
  i32Eq: 0x46, i32GtS: 0x4a, i32GeS: 0x4e, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Or: 0x72, i32Shl: 0x74,
  f32Mul: 0x94, f64Ne: 0x62, f64Add: 0xa0, f64Sub: 0xa1, f64Mul: 0xa2, f64Div: 0xa3, f32ConvertI32S: 0xb2, f32DemoteF64: 0xb6, f64PromoteF32: 0xbb,
}
export const simd = {
  load: 0x00, load8x8S: 0x01, store: 0x0b, const: 0x0c, shuffle: 0x0d, f32x4Splat: 0x13, f64x2Splat: 0x14,
  i8x16Eq: 0x23, i16x8Eq: 0x2d, or: 0x50, anyTrue: 0x53, f32x4DemoteF64x2Zero: 0x5e, f64x2PromoteLowF32x4: 0x5f,
  i16x8ExtendLowI8x16S: 0x87, i16x8ExtendHighI8x16S: 0x88, i32x4ExtendLowI16x8S: 0xa7, i32x4ExtendHighI16x8S: 0xa8,
  f32x4Mul: 0xe6, f64x2Add: 0xf0, f64x2Sub: 0xf1, f64x2Mul: 0xf2, f64x2Div: 0xf3, f32x4ConvertI32x4S: 0xfa,
}

export function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

export function sleb(n: number): number[] {
  const out: number[] = []
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b]
    out.push(b | 0x80)
  }
}

export const v = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm]
export const memarg = (align: number, offset: number) => [align, ...uleb(offset)]
export const get = (i: number) => [op.localGet, i]
export const set = (i: number) => [op.localSet, i]

export function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content]
}

export const str = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))]

/** A module's first 8 bytes: the magic number and version 1. */
export const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/** The import section of a module whose one import is (import "k" "mem" (memory 1 maxPages shared)): the kernel arena's memory. */
export const importSharedMemory = (maxPages: number) => section(2, [1, ...str('k'), ...str('mem'), 0x02, 0x03, ...uleb(1), ...uleb(maxPages)])

export const v128Zero = () => v(simd.const, ...new Array(16).fill(0))

/** while (!exit) body: `exit` leaves an i32 (non-zero ends the loop); body must not branch out. */
export const whileNot = (exit: number[], body: number[]) => [op.block, 0x40, op.loop, 0x40, ...exit, op.brIf, 1, ...body, op.br, 0, op.end, op.end]

/** if (cond) a else b. */
export const ifElse = (cond: number[], a: number[], b: number[]) => [...cond, op.if, 0x40, ...a, 0x05, ...b, op.end]

/**
 * A module of one exported function `name` (the given parameter types, no result) on an
 * imported memory that need not be shared (e.g. the tfjs wasm backend's): compiled once, on
 * first use; `on(memory)` gives the function on that memory, or null where the module does not
 * compile (no WebAssembly SIMD) or cannot take that memory.
 */
export function memoryKernel<F>(name: string, params: number[], body: () => number[]): (memory: WebAssembly.Memory) => F | null {
  let compiled: WebAssembly.Module | null | undefined
  return (memory) => {
    if (compiled === undefined) {
      try {
        const code = body()
        compiled = new WebAssembly.Module(new Uint8Array([
          ...WASM_HEADER,
          ...section(1, [1, 0x60, params.length, ...params, 0]),
          // (import "k" "mem" (memory 1)): any size, not shared.
          ...section(2, [1, ...str('k'), ...str('mem'), 0x02, 0x00, ...uleb(1)]),
          ...section(3, [1, 0]),
          ...section(7, [1, ...str(name), 0x00, 0]),
          ...section(10, [1, ...uleb(code.length), ...code]),
        ]))
      } catch {
        compiled = null
      }
    }
    if (!compiled) return null
    try {
      return new WebAssembly.Instance(compiled, { k: { mem: memory } }).exports[name] as F
    } catch {
      return null // a memory it cannot import (shared, from a threaded build): the caller's own path
    }
  }
}
