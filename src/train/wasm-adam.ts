/**
 * The Adam update of one variable as a WebAssembly SIMD kernel on the tfjs wasm backend's memory
 * (imported): 4 values per step, then a scalar tail. Its float32 operations are those of
 * adamUpdateInto (adam.ts), in the same order, so its results are the same bits; a step of the
 * built-in model's update takes 0.6 ms with it, 2.2 ms in that JS loop (which pays a float64
 * round trip for every operation) and 3.2 to 4.5 ms as tf ops.
 */

import { F32, I32, V128, get, memarg, memoryKernel, op, set, simd, sleb, v, whileNot } from '../codec/wasm-asm.js'

const F32_OPS = { sqrt: 0x91, add: 0x92, sub: 0x93, div: 0x95 }
const F32X4 = { sqrt: 0xe3, add: 0xe4, sub: 0xe5, div: 0xe7 }

// Parameters: x, m, v, g, xo, mo, vo (byte addresses), n; then the float32 constants.
const [X, M, V, G, XO, MO, VO, N] = [0, 1, 2, 3, 4, 5, 6, 7]
const CONSTS = ['b1', 'c1', 'b2', 'c2', 'inv', 'eps', 'step'] as const
const K = (name: (typeof CONSTS)[number]) => 8 + CONSTS.indexOf(name)
// Locals: i32 p (byte offset), end (bytes); v128 splats of the constants, g, m2, v2, d.
const [P, END] = [15, 16]
const SPLAT = (name: (typeof CONSTS)[number]) => 17 + CONSTS.indexOf(name)
const [GV, M2, V2, D] = [24, 25, 26, 27]

/**
 * m2 = m b1 + g c1; v2 = v b2 + (g g) c2; d = sqrt(v2) inv + eps; x2 = x - (m2 / d) step, on
 * vectors (`vec`) or single values: `load(base)` reads at base + p, `c(name)` is a constant.
 */
function update(vec: boolean): number[] {
  const load = (base: number) => [...get(base), ...get(P), op.i32Add, ...(vec ? v(simd.load, ...memarg(4, 0)) : [op.f32Load, ...memarg(2, 0)])]
  const store = (base: number, value: number) => [...get(base), ...get(P), op.i32Add, ...get(value), ...(vec ? v(simd.store, ...memarg(4, 0)) : [op.f32Store, ...memarg(2, 0)])]
  const c = (name: (typeof CONSTS)[number]) => get(vec ? SPLAT(name) : K(name))
  const mul = vec ? v(simd.f32x4Mul) : [op.f32Mul]
  const [add, sub, div, sqrt] = vec ? [v(F32X4.add), v(F32X4.sub), v(F32X4.div), v(F32X4.sqrt)] : [[F32_OPS.add], [F32_OPS.sub], [F32_OPS.div], [F32_OPS.sqrt]]
  // Scalar steps keep their values in the v128 locals' places: f32 locals of their own.
  const [g, m2, v2, d] = vec ? [GV, M2, V2, D] : [28, 29, 30, 31]
  return [
    ...load(G), ...set(g),
    ...load(M), ...c('b1'), ...mul, ...get(g), ...c('c1'), ...mul, ...add, ...set(m2),
    ...load(V), ...c('b2'), ...mul, ...get(g), ...get(g), ...mul, ...c('c2'), ...mul, ...add, ...set(v2),
    ...get(v2), ...sqrt, ...c('inv'), ...mul, ...c('eps'), ...add, ...set(d),
    ...store(MO, m2), ...store(VO, v2),
    ...get(XO), ...get(P), op.i32Add,
    ...load(X), ...get(m2), ...get(d), ...div, ...c('step'), ...mul, ...sub,
    ...(vec ? v(simd.store, ...memarg(4, 0)) : [op.f32Store, ...memarg(2, 0)]),
  ]
}

function adamBody(): number[] {
  const code = [
    ...CONSTS.flatMap((name) => [...get(K(name)), ...v(simd.f32x4Splat), ...set(SPLAT(name))]),
    ...get(N), op.i32Const, ...sleb(2), op.i32Shl, ...set(END),
    op.i32Const, 0, ...set(P),
    ...whileNot([...get(P), op.i32Const, ...sleb(16), op.i32Add, ...get(END), op.i32GtS], [...update(true), ...get(P), op.i32Const, ...sleb(16), op.i32Add, ...set(P)]),
    ...whileNot([...get(P), ...get(END), op.i32GeS], [...update(false), ...get(P), op.i32Const, ...sleb(4), op.i32Add, ...set(P)]),
    op.end,
  ]
  // Local groups: 2 x i32, 11 x v128, 4 x f32.
  return [3, 2, I32, 11, V128, 4, F32, ...code]
}

export type AdamFn = (x: number, m: number, v: number, g: number, xo: number, mo: number, vo: number, n: number, b1: number, c1: number, b2: number, c2: number, inv: number, eps: number, step: number) => void

/** The update on `memory`, or null where WebAssembly SIMD is not available. */
export const adamOn = memoryKernel<AdamFn>('adam', [...new Array(8).fill(I32), ...new Array(7).fill(F32)], adamBody)
