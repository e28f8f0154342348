/**
 * A WebAssembly SIMD matrix product for the tfjs wasm backend's small products: the batched ones
 * of attention ([B, H, S, D] by [B, H, D, S]: the backend's batched path is a plain scalar loop)
 * and the bias gradients ([1, R] by [R, C]: the backend repacks the whole right operand as
 * "weights" for every call). It runs on the backend's own memory (imported), so it reads the
 * operands and writes the result in place, with no copies.
 *
 * C[b] = A[b] x B[b], row-major float32, A: M x K, B: K x N with N a multiple of 4. Tiles of 4
 * rows by 8 columns (8 vector sums in registers), then 1-row and 4-column tiles for the edges.
 * Every output value is summed over k = 0, 1, .. K-1 in order, one float32 multiply and one add
 * per term: the same value on every engine.
 */

import { I32, V128, get, memarg, memoryKernel, op, set, simd, sleb, v, whileNot } from '../codec/wasm-asm.js'

const F32X4_ADD = 0xe4

// Parameters: a, b, c (byte addresses), M, K, N, batches, aStride, bStride (bytes per batch; 0 broadcasts).
const [A, B, C, M, K, N, BATCHES, ASTRIDE, BSTRIDE] = [0, 1, 2, 3, 4, 5, 6, 7, 8]
// i32 locals.
const [BT, I, J, KK, PB, PC, ROWA, ROWN, ABASE, BBASE, CBASE, CSTRIDE] = [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
const PA = [21, 22, 23, 24]
const I32_LOCALS = 16
// v128 locals: acc[r][c] (4 x 2), the two B vectors, the splat of A.
const ACC = (r: number, c: number) => 25 + 2 * r + c
const BV = [33, 34]
const S = 35
const V128_LOCALS = 11

const i32 = (n: number) => [op.i32Const, ...sleb(n)]
const addTo = (local: number, amount: number[]) => [...get(local), ...amount, op.i32Add, ...set(local)]

/** One tile of `rows` rows (1 or 4) by `vecs` 4-float columns (1 or 2) at (I, J). */
function tile(rows: number, vecs: number): number[] {
  const code: number[] = []
  for (let r = 0; r < rows; r++) for (let c = 0; c < vecs; c++) code.push(...v(simd.const, ...new Array(16).fill(0)), ...set(ACC(r, c)))
  // pa_0 = aBase + i * rowA; pa_r = pa_{r-1} + rowA; pb = bBase + j * 4.
  code.push(...get(ABASE), ...get(I), ...get(ROWA), op.i32Mul, op.i32Add, ...set(PA[0]))
  for (let r = 1; r < rows; r++) code.push(...get(PA[r - 1]), ...get(ROWA), op.i32Add, ...set(PA[r]))
  code.push(...get(BBASE), ...get(J), ...i32(2), op.i32Shl, op.i32Add, ...set(PB))
  code.push(...i32(0), ...set(KK))
  const step: number[] = []
  for (let c = 0; c < vecs; c++) step.push(...get(PB), ...v(simd.load, ...memarg(4, 16 * c)), ...set(BV[c]))
  for (let r = 0; r < rows; r++) {
    step.push(...get(PA[r]), op.f32Load, ...memarg(2, 0), ...v(simd.f32x4Splat), ...set(S))
    for (let c = 0; c < vecs; c++) step.push(...get(ACC(r, c)), ...get(S), ...get(BV[c]), ...v(simd.f32x4Mul), ...v(F32X4_ADD), ...set(ACC(r, c)))
    step.push(...addTo(PA[r], i32(4)))
  }
  step.push(...addTo(PB, get(ROWN)), ...addTo(KK, i32(1)))
  code.push(...whileNot([...get(KK), ...get(K), op.i32GeS], step))
  // pc = cBase + (i * N + j) * 4, one row of C further per row.
  code.push(...get(CBASE), ...get(I), ...get(ROWN), op.i32Mul, op.i32Add, ...get(J), ...i32(2), op.i32Shl, op.i32Add, ...set(PC))
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < vecs; c++) code.push(...get(PC), ...get(ACC(r, c)), ...v(simd.store, ...memarg(4, 16 * c)))
    if (r + 1 < rows) code.push(...addTo(PC, get(ROWN)))
  }
  return code
}

/** The columns of a band of `rows` rows at I: 8 at a time, then 4. */
function band(rows: number): number[] {
  return [
    ...i32(0), ...set(J),
    ...whileNot([...get(J), ...i32(8), op.i32Add, ...get(N), op.i32GtS], [...tile(rows, 2), ...addTo(J, i32(8))]),
    ...whileNot([...get(J), ...get(N), op.i32GeS], [...tile(rows, 1), ...addTo(J, i32(4))]),
  ]
}

function mmBody(): number[] {
  const code = [
    ...get(A), ...set(ABASE), ...get(B), ...set(BBASE), ...get(C), ...set(CBASE),
    ...get(K), ...i32(2), op.i32Shl, ...set(ROWA),
    ...get(N), ...i32(2), op.i32Shl, ...set(ROWN),
    ...get(ROWN), ...get(M), op.i32Mul, ...set(CSTRIDE),
    ...i32(0), ...set(BT),
    ...whileNot([...get(BT), ...get(BATCHES), op.i32GeS], [
      ...i32(0), ...set(I),
      ...whileNot([...get(I), ...i32(4), op.i32Add, ...get(M), op.i32GtS], [...band(4), ...addTo(I, i32(4))]),
      ...whileNot([...get(I), ...get(M), op.i32GeS], [...band(1), ...addTo(I, i32(1))]),
      ...addTo(ABASE, get(ASTRIDE)), ...addTo(BBASE, get(BSTRIDE)), ...addTo(CBASE, get(CSTRIDE)),
      ...addTo(BT, i32(1)),
    ]),
    op.end,
  ]
  return [2, I32_LOCALS, I32, V128_LOCALS, V128, ...code]
}

export type MatMulFn = (a: number, b: number, c: number, m: number, k: number, n: number, batches: number, aStride: number, bStride: number) => void

/** The product on `memory`, or null where WebAssembly SIMD is not available. */
export const matMulOn = memoryKernel<MatMulFn>('mm', new Array(9).fill(I32), mmBody)
