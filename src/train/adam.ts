import * as tf from '@tensorflow/tfjs-core'

/**
 * Adam as in PyTorch (torch.optim.Adam / AdamW without weight decay: eps added to the
 * bias-corrected sqrt(v)), with the learning rate passed per step so schedules are plain
 * arithmetic. Written here rather than tf.train.adam for that, and for PyTorch's eps placement.
 */
export class Adam {
  private readonly m = new Map<string, tf.Variable>()
  private readonly v = new Map<string, tf.Variable>()
  private t = 0

  constructor(
    vars: tf.Variable[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.vars = new Map(vars.map((x) => [x.name, x]))
    try {
      for (const x of vars) {
        // A variable shares its initial tensor's data and adds a reference: drop ours.
        const z = tf.zerosLike(x)
        this.m.set(x.name, tf.variable(z, false))
        this.v.set(x.name, tf.variable(z, false))
        z.dispose()
      }
    } catch (err) {
      this.dispose()
      throw err
    }
  }

  private readonly vars: Map<string, tf.Variable>

  /** One update from gradients keyed by variable name (missing gradients leave a variable as is). */
  apply(grads: tf.NamedTensorMap, lr: number): void {
    this.t++
    const bc1 = 1 - this.beta1 ** this.t
    const bc2 = 1 - this.beta2 ** this.t
    const stepSize = lr / bc1
    const invSqrtBc2 = 1 / Math.sqrt(bc2)
    tf.tidy(() => {
      // Scalars once per step, not once per variable and use.
      const b1 = tf.scalar(this.beta1)
      const c1 = tf.scalar(1 - this.beta1)
      const b2 = tf.scalar(this.beta2)
      const c2 = tf.scalar(1 - this.beta2)
      const inv = tf.scalar(invSqrtBc2)
      const eps = tf.scalar(this.eps)
      const step = tf.scalar(stepSize)
      for (const [name, g] of Object.entries(grads)) {
        const x = this.vars.get(name)
        if (!x || !g) continue
        const m = this.m.get(name)!
        const v = this.v.get(name)!
        const m2 = tf.add(tf.mul(m, b1), tf.mul(g, c1))
        const v2 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), c2))
        const denom = tf.add(tf.mul(tf.sqrt(v2), inv), eps)
        m.assign(m2)
        v.assign(v2)
        x.assign(tf.sub(x, tf.mul(tf.div(m2, denom), step)))
      }
    })
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose()
    for (const x of this.v.values()) x.dispose()
    this.m.clear()
    this.v.clear()
  }
}
