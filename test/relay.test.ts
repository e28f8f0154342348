import assert from 'node:assert/strict'
import { Incoming } from '../src/p2p/relay.js'

describe('relaying content as it arrives (Incoming)', () => {
  const collect = async (it: AsyncGenerator<Uint8Array>): Promise<number[]> => {
    const out: number[] = []
    for await (const piece of it) out.push(...piece)
    return out
  }

  it('gives a reader the bytes received so far, then the rest as they come, in pieces of at most chunk', async () => {
    const buf = new Uint8Array(10)
    const inc = new Incoming()
    // A reader that comes before the header waits for it.
    const early = collect(inc.bytes(4))
    inc.start(10, buf)
    buf.set([0, 1, 2, 3], 0)
    inc.grew(4)
    const pieces: number[] = []
    const reading = (async () => {
      for await (const p of inc.bytes(3)) pieces.push(p.length)
    })()
    const all = collect(inc.bytes(100))
    await new Promise((r) => setTimeout(r, 10))
    buf.set([4, 5, 6, 7, 8, 9], 4)
    inc.grew(10)
    inc.finish()
    await reading
    assert.deepEqual(await all, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.deepEqual(await early, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.ok(pieces.every((n) => n <= 3) && pieces.reduce((a, b) => a + b, 0) === 10)
    await inc.settled
  })

  it('cuts readers off when the transfer it relays fails', async () => {
    const inc = new Incoming()
    inc.start(8, new Uint8Array(8))
    inc.grew(2)
    const reading = collect(inc.bytes(4))
    await new Promise((r) => setTimeout(r, 10))
    inc.fail(new Error('upstream hung up'))
    await assert.rejects(reading, /relayed transfer failed: upstream hung up/)
    await assert.rejects(inc.settled, /upstream hung up/)
  })

  it('a transfer that fails before its header tells waiting readers so', async () => {
    const inc = new Incoming()
    const reading = collect(inc.bytes(4))
    inc.fail(new Error('dial failed'))
    await assert.rejects(reading, /dial failed/)
    await assert.rejects(inc.size, /dial failed/)
  })
})
