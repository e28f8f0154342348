/**
 * A WebAssembly SIMD kernel for the hot loop of fusion with q8 values: for one block run of n
 * int8 values q with scale s, acc[i] += w * f64(f32(q[i]) * s) (one float32 rounding of the
 * exact product, then float64 multiply-add: the very operations of Q8Stream's JS loop, so the
 * sums are bit-identical; wasm floats are IEEE 754 with round-to-nearest on every engine). It
 * returns 1 if some q is -128 (non-canonical; the JS loop then names it).
 *
 * The module is assembled here from the instruction list below (no binary is shipped). Its
 * memory holds the fusion accumulator, one piece of q bytes and one piece of the base:
 *   [0, 8 * cap)        float64 accumulator (fuseBySum's, via accumulator)
 *   [8 * cap, 9 * cap)  the current piece's int8 values, copied in by Q8Stream
 *   then cap float32    a piece of the base, finished in place (finish)
 *
 * (func $q8add (param $q i32) (param $n i32) (param $acc i32) (param $s f32) (param $w f64) (result i32)
 *   16 values per step: load, flag -128, sign-extend to 4 x i32x4, convert to f32x4, multiply by
 *   splat(s), promote each half to f64x2, multiply by splat(w), add to acc; then a scalar tail.)
 */

// Value types and opcodes (WebAssembly core and SIMD).
const I32 = 0x7f
const F32 = 0x7d
const F64 = 0x7c
const V128 = 0x7b
const op = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load8S: 0x2c, f32Load: 0x2a, f64Load: 0x2b, f32Store: 0x38, f64Store: 0x39, i32Const: 0x41,
  i32Eq: 0x46, i32GtS: 0x4a, i32GeS: 0x4e, i32Add: 0x6a, i32Shl: 0x74,
  f32Mul: 0x94, f64Add: 0xa0, f64Mul: 0xa2, f64Div: 0xa3, f32ConvertI32S: 0xb2, f32DemoteF64: 0xb6, f64PromoteF32: 0xbb,
}
const simd = {
  load: 0x00, store: 0x0b, const: 0x0c, shuffle: 0x0d, f32x4Splat: 0x13, f64x2Splat: 0x14,
  i8x16Eq: 0x23, or: 0x50, anyTrue: 0x53, f32x4DemoteF64x2Zero: 0x5e, f64x2PromoteLowF32x4: 0x5f,
  i16x8ExtendLowI8x16S: 0x87, i16x8ExtendHighI8x16S: 0x88, i32x4ExtendLowI16x8S: 0xa7, i32x4ExtendHighI16x8S: 0xa8,
  f32x4Mul: 0xe6, f64x2Add: 0xf0, f64x2Mul: 0xf2, f64x2Div: 0xf3, f32x4ConvertI32x4S: 0xfa,
}

function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

function sleb(n: number): number[] {
  const out: number[] = []
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b]
    out.push(b | 0x80)
  }
}

const v = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm]
const memarg = (align: number, offset: number) => [align, ...uleb(offset)]
const get = (i: number) => [op.localGet, i]
const set = (i: number) => [op.localSet, i]

// Locals: params 0..4, then i, ap (acc address), k, and v128s: S, W, M (-128 x16), bad, x, lo, hi, f.
const [Q, N, ACC, S_, W_] = [0, 1, 2, 3, 4]
const [I, AP, K] = [5, 6, 7]
const [S, W, M, BAD, X, LO, HI, F] = [8, 9, 10, 11, 12, 13, 14, 15]

/** acc[ap + off .. +32) += w * promote(f32x4.mul(convert(extend(src)), S)), lanes 0-1 then 2-3. */
function group(src: number, high: boolean, off: number): number[] {
  const halfTo64 = (upper: boolean) => [
    ...get(AP),
    ...get(AP), ...v(simd.load, ...memarg(3, off + (upper ? 16 : 0))),
    ...get(F),
    ...(upper ? [...get(F), ...v(simd.shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)] : []),
    ...v(simd.f64x2PromoteLowF32x4), ...get(W), ...v(simd.f64x2Mul), ...v(simd.f64x2Add),
    ...v(simd.store, ...memarg(3, off + (upper ? 16 : 0))),
  ]
  return [
    ...get(src), ...v(high ? simd.i32x4ExtendHighI16x8S : simd.i32x4ExtendLowI16x8S),
    ...v(simd.f32x4ConvertI32x4S), ...get(S), ...v(simd.f32x4Mul), ...set(F),
    ...halfTo64(false),
    ...halfTo64(true),
  ]
}

function q8addBody(): number[] {
  const code = [
    ...get(S_), ...v(simd.f32x4Splat), ...set(S),
    ...get(W_), ...v(simd.f64x2Splat), ...set(W),
    ...v(simd.const, ...new Array(16).fill(0x80)), ...set(M),
    // Vector part: while i + 16 <= n.
    op.block, 0x40, op.loop, 0x40,
    ...get(I), op.i32Const, ...sleb(16), op.i32Add, ...get(N), op.i32GtS, op.brIf, 1,
    ...get(Q), ...get(I), op.i32Add, ...v(simd.load, ...memarg(0, 0)), ...set(X),
    ...get(BAD), ...get(X), ...get(M), ...v(simd.i8x16Eq), ...v(simd.or), ...set(BAD),
    ...get(ACC), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, ...set(AP),
    ...get(X), ...v(simd.i16x8ExtendLowI8x16S), ...set(LO),
    ...get(X), ...v(simd.i16x8ExtendHighI8x16S), ...set(HI),
    ...group(LO, false, 0), ...group(LO, true, 32), ...group(HI, false, 64), ...group(HI, true, 96),
    ...get(I), op.i32Const, ...sleb(16), op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    // Scalar tail.
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(N), op.i32GeS, op.brIf, 1,
    ...get(Q), ...get(I), op.i32Add, op.i32Load8S, ...memarg(0, 0), op.localTee, K,
    op.i32Const, ...sleb(-128), op.i32Eq, op.if, 0x40, op.i32Const, 1, op.return, op.end,
    ...get(ACC), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, op.localTee, AP,
    ...get(AP), op.f64Load, ...memarg(3, 0),
    ...get(K), op.f32ConvertI32S, ...get(S_), op.f32Mul, op.f64PromoteF32, ...get(W_), op.f64Mul, op.f64Add,
    op.f64Store, ...memarg(3, 0),
    ...get(I), op.i32Const, 1, op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    ...get(BAD), ...v(simd.anyTrue),
    op.end,
  ]
  // Two local groups: 3 x i32 (i, ap, k), 8 x v128.
  return [2, 3, I32, 8, V128, ...code]
}

/**
 * (func $finish (param $acc i32) (param $b i32) (param $n i32) (param $scale f64) (param $div f64))
 *   b[i] = f32(f64(b[i]) + (scale * acc[i]) / div), 4 values per step, then a scalar tail: the
 *   summing rules' finish (fuseBySum), in place on a piece of the base copied in.
 */
function finishBody(): number[] {
  const [A, B, N, SC, DV] = [0, 1, 2, 3, 4]
  const [I, PA, PB] = [5, 6, 7]
  const [SCV, DVV, BV, LO, HI] = [8, 9, 10, 11, 12]
  const half = (accOff: number, upper: boolean) => [
    ...get(BV), ...(upper ? [...get(BV), ...v(simd.shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)] : []),
    ...v(simd.f64x2PromoteLowF32x4),
    ...get(SCV), ...get(PA), ...v(simd.load, ...memarg(3, accOff)), ...v(simd.f64x2Mul), ...get(DVV), ...v(simd.f64x2Div),
    ...v(simd.f64x2Add),
  ]
  const code = [
    ...get(SC), ...v(simd.f64x2Splat), ...set(SCV),
    ...get(DV), ...v(simd.f64x2Splat), ...set(DVV),
    op.block, 0x40, op.loop, 0x40,
    ...get(I), op.i32Const, ...sleb(4), op.i32Add, ...get(N), op.i32GtS, op.brIf, 1,
    ...get(A), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, ...set(PA),
    ...get(B), ...get(I), op.i32Const, ...sleb(2), op.i32Shl, op.i32Add, op.localTee, PB,
    ...v(simd.load, ...memarg(2, 0)), ...set(BV),
    ...half(0, false), ...set(LO),
    ...half(16, true), ...set(HI),
    ...get(PB),
    ...get(LO), ...v(simd.f32x4DemoteF64x2Zero), ...get(HI), ...v(simd.f32x4DemoteF64x2Zero),
    ...v(simd.shuffle, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
    ...v(simd.store, ...memarg(2, 0)),
    ...get(I), op.i32Const, ...sleb(4), op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(N), op.i32GeS, op.brIf, 1,
    ...get(B), ...get(I), op.i32Const, ...sleb(2), op.i32Shl, op.i32Add, op.localTee, PB,
    ...get(PB), op.f32Load, ...memarg(2, 0), op.f64PromoteF32,
    ...get(SC), ...get(A), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, op.f64Load, ...memarg(3, 0), op.f64Mul,
    ...get(DV), op.f64Div, op.f64Add, op.f32DemoteF64,
    op.f32Store, ...memarg(2, 0),
    ...get(I), op.i32Const, 1, op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    op.end,
  ]
  return [2, 3, I32, 5, V128, ...code]
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content]
}

const str = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))]

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const add = q8addBody()
  const finish = finishBody()
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, 0x60, 5, I32, I32, I32, F32, F64, 1, I32, 0x60, 5, I32, I32, I32, F64, F64, 0]),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, [3, ...str('mem'), 0x02, 0, ...str('q8add'), 0x00, 0, ...str('finish'), 0x00, 1]),
    ...section(10, [2, ...uleb(add.length), ...add, ...uleb(finish.length), ...finish]),
  ])
}

export interface Q8Kernel {
  /** acc (a view returned by accumulator) += w * fround(q * s) for q at byte `qAt` of the q area; 1 if some q is -128. */
  add(qAt: number, n: number, accAt: number, s: number, w: number): number
  /** Float64 accumulator of `cap` values in the kernel's memory (valid until the next call). */
  accumulator(cap: number): Float64Array
  /** The q area (cap bytes), right after the accumulator. */
  qArea(): Uint8Array
  /** A float32 area of cap values after the q area, for finish. */
  baseArea(): Float32Array
  /** base[i] = fround(base[i] + (scale * acc[i]) / div) for i < n, on baseArea (fuseBySum's finish). */
  finish(accAt: number, baseAt: number, n: number, scale: number, div: number): void
  readonly memory: WebAssembly.Memory
}

let kernel: Q8Kernel | null | undefined
let enabled = true

function instantiate(): Q8Kernel | null {
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()))
    const memory = instance.exports.mem as WebAssembly.Memory
    const add = instance.exports.q8add as Q8Kernel['add']
    const finish = instance.exports.finish as Q8Kernel['finish']
    let cap = 0
    return {
      memory,
      add,
      finish,
      accumulator(want: number) {
        const need = 13 * want + 16
        if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536))
        cap = want
        return new Float64Array(memory.buffer, 0, want)
      },
      qArea() {
        return new Uint8Array(memory.buffer, 8 * cap, cap)
      },
      baseArea() {
        return new Float32Array(memory.buffer, 9 * cap + ((4 - ((9 * cap) % 4)) % 4), cap)
      },
    }
  } catch {
    return null // no WebAssembly SIMD here: the JS loop does the work
  }
}

/** The kernel, or null when disabled or WebAssembly SIMD is not available. */
export function q8Kernel(): Q8Kernel | null {
  if (!enabled) return null
  if (kernel === undefined) kernel = instantiate()
  return kernel
}

/** Turn the kernel off (or on again): tests compare it with the JS loop. */
export function useQ8Kernel(on: boolean): void {
  enabled = on
}
