import * as tf from '@tensorflow/tfjs-core'

/**
 * Gradient functions for the kernels the encoder uses. @tensorflow/tfjs-core's Node bundle ships
 * no gradients (the umbrella @tensorflow/tfjs package registers them, and its ESM sources cannot
 * be imported by Node), so without these tf.variableGrads fails. They follow tfjs-core's own
 * definitions; a kernel that already has a gradient (e.g. once @tensorflow/tfjs-node is loaded)
 * keeps it. Only first derivatives are needed.
 */

type Saved = tf.Tensor[]
type Attrs = tf.NamedAttrMap

/** Sums a broadcast gradient back down to the input's shape. */
function unbroadcast(dy: tf.Tensor, inShape: number[], outShape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(inShape, outShape)
  if (axes.length === 0) return tf.reshape(dy, inShape)
  // The common case, a bias [C] added to [N, ..., C]: reduce the leading axes with a product.
  if (axes.every((a, i) => a === i) && dy.dtype === 'float32') {
    const rows = axes.reduce((p, a) => p * outShape[a], 1)
    return tf.reshape(sumRows(tf.reshape(dy, [rows, dy.size / rows]) as tf.Tensor2D), inShape)
  }
  return tf.reshape(tf.sum(dy, axes), inShape)
}

/**
 * Column sums of [R, C] as ones[1, R] x m: on wasm, Sum over a non-last axis transposes first and
 * is about 6 times slower than this product.
 */
export function sumRows(m: tf.Tensor2D): tf.Tensor1D {
  return tf.reshape(tf.matMul(tf.ones([1, m.shape[0]]), m), [m.shape[1]])
}

/** tf.cast copies even when the dtype already matches (an Identity kernel): skip it then. */
function asFloat(x: tf.Tensor): tf.Tensor {
  return x.dtype === 'float32' ? x : tf.cast(x, 'float32')
}

function binaryShapes(saved: Saved): [number[], number[], number[]] {
  const [a, b] = saved
  return [a.shape, b.shape, tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape)]
}

/** dy reshaped with the reduced axes kept as 1 (for Sum/Mean). */
function expandReduced(dy: tf.Tensor, x: tf.Tensor, attrs: Attrs): tf.Tensor {
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape)
  const shape = x.shape.slice()
  for (const a of axes) shape[a] = 1
  return tf.reshape(dy, shape)
}

const configs: tf.GradConfig[] = [
  {
    kernelName: tf.Add,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [as, bs, out] = binaryShapes(saved)
      return { a: () => unbroadcast(dy as tf.Tensor, as, out), b: () => unbroadcast(dy as tf.Tensor, bs, out) }
    },
  },
  {
    kernelName: tf.Sub,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [as, bs, out] = binaryShapes(saved)
      return { a: () => unbroadcast(dy as tf.Tensor, as, out), b: () => tf.neg(unbroadcast(dy as tf.Tensor, bs, out)) }
    },
  },
  {
    kernelName: tf.Multiply,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved
      const [as, bs, out] = binaryShapes(saved)
      return {
        a: () => unbroadcast(tf.mul(dy as tf.Tensor, asFloat(b)), as, out),
        b: () => unbroadcast(tf.mul(dy as tf.Tensor, asFloat(a)), bs, out),
      }
    },
  },
  {
    kernelName: tf.RealDiv,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved
      const [as, bs, out] = binaryShapes(saved)
      return {
        a: () => unbroadcast(tf.div(dy as tf.Tensor, b), as, out),
        b: () => unbroadcast(tf.neg(tf.div(tf.mul(dy as tf.Tensor, a), tf.square(b))), bs, out),
      }
    },
  },
  { kernelName: tf.Neg, gradFunc: (dy) => ({ x: () => tf.neg(dy as tf.Tensor) }) },
  { kernelName: tf.Identity, gradFunc: (dy) => ({ x: () => tf.clone(dy as tf.Tensor) }) },
  { kernelName: tf.Cast, gradFunc: (dy) => ({ x: () => tf.clone(dy as tf.Tensor) }) },
  {
    kernelName: tf.Square,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(x, 2)) }),
  },
  {
    kernelName: tf.Sqrt,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as tf.Tensor, tf.mul(tf.sqrt(x), 2)) }),
  },
  {
    kernelName: tf.Rsqrt,
    inputsToSave: ['x'],
    // d/dx x^-1/2 = -1/2 x^-3/2
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(tf.pow(x, -1.5), -0.5)) }),
  },
  {
    kernelName: tf.Exp,
    outputsToSave: [true],
    gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as tf.Tensor, y) }),
  },
  {
    kernelName: tf.Log,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as tf.Tensor, x) }),
  },
  {
    kernelName: tf.Tanh,
    outputsToSave: [true],
    gradFunc: (dy, [y]) => ({ x: () => tf.mul(tf.sub(1, tf.square(y)), dy as tf.Tensor) }),
  },
  {
    kernelName: tf.Erf,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(tf.exp(tf.neg(tf.square(x))), 2 / Math.sqrt(Math.PI))) }),
  },
  {
    kernelName: tf.Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.step(x)) }),
  },
  {
    kernelName: tf.Sum,
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({ x: () => tf.mul(expandReduced(dy as tf.Tensor, x, attrs), tf.onesLike(x)) }),
  },
  {
    kernelName: tf.Mean,
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape)
      const n = axes.reduce((p, a) => p * x.shape[a], 1)
      return { x: () => tf.mul(tf.mul(expandReduced(dy as tf.Tensor, x, attrs), 1 / n), tf.onesLike(x)) }
    },
  },
  {
    kernelName: tf.Reshape,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy as tf.Tensor, x.shape) }),
  },
  {
    kernelName: tf.Transpose,
    gradFunc: (dy, _saved, attrs) => {
      const undo = tf.backend_util.getUndoAxesPermutation(attrs.perm as number[])
      return { x: () => tf.transpose(dy as tf.Tensor, undo) }
    },
  },
  {
    kernelName: tf.Slice,
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[])
      const paddings = x.shape.map((d, i) => [begin[i], d - begin[i] - size[i]] as [number, number])
      return { x: () => tf.pad(dy as tf.Tensor, paddings) }
    },
  },
  {
    kernelName: tf.BatchMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dyIn, [a, b], attrs) => {
      const dy = dyIn as tf.Tensor
      const ta = attrs.transposeA as boolean
      const tb = attrs.transposeB as boolean
      if (!ta && !tb) return { a: () => tf.matMul(dy, b, false, true), b: () => tf.matMul(a, dy, true, false) }
      if (!ta && tb) return { a: () => tf.matMul(dy, b, false, false), b: () => tf.matMul(dy, a, true, false) }
      if (ta && !tb) return { a: () => tf.matMul(b, dy, false, true), b: () => tf.matMul(a, dy, false, false) }
      return { a: () => tf.matMul(b, dy, true, true), b: () => tf.matMul(dy, a, true, true) }
    },
  },
  {
    kernelName: tf.Softmax,
    outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => {
      const dyTimesY = tf.mul(dy as tf.Tensor, y)
      return { logits: () => tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [attrs.dim as number], true), y)) }
    },
  },
  {
    kernelName: tf.GatherV2,
    inputsToSave: ['x', 'indices'],
    gradFunc: (dyIn, [x, indices], attrs) => {
      const dy = dyIn as tf.Tensor
      if ((attrs.batchDims as number) !== 0) throw new Error('GatherV2 gradient: batchDims > 0 is not supported')
      const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0]
      return {
        // The sum of dy's rows into the rows of x they were gathered from (UnsortedSegmentSum).
        x: () => {
          const outer = x.shape.slice(0, axis)
          const inner = x.shape.slice(axis + 1)
          const values = tf.reshape(dy, [...outer, indices.size, ...inner])
          const ids = tf.reshape(indices, [indices.size]) as tf.Tensor1D
          if (axis === 0) return tf.unsortedSegmentSum(values, ids, x.shape[0])
          const perm = [outer.length, ...outer.keys(), ...inner.map((_, i) => outer.length + 1 + i)]
          const summed = tf.unsortedSegmentSum(tf.transpose(values, perm), ids, x.shape[axis])
          return tf.transpose(summed, tf.backend_util.getUndoAxesPermutation(perm))
        },
        indices: () => tf.zerosLike(indices),
      }
    },
  },
]

let registered = false

/** Registers the gradients above where none is registered yet; idempotent. */
export function ensureGradients(): void {
  if (registered) return
  for (const c of configs) {
    if (!tf.getGradient(c.kernelName)) tf.registerGradient(c)
  }
  registered = true
}
