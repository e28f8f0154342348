import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { HeldAdvertiser } from '../src/rounds/held.js'

describe("'have' advertisements (HeldAdvertiser)", () => {
  const held = new Map<string, string[]>()
  let sent: string[] = []
  const make = (): HeldAdvertiser => new HeldAdvertiser((r, b) => held.get(`${r}:${b}`) ?? [], (r, b, ids) => sent.push(`${r}:${b} ${ids.join(',')}`), 5, 200)
  beforeEach(() => {
    held.clear()
    sent = []
  })

  it('advertises the first delta of a round at once and later ones once, batched', async () => {
    const ad = make()
    held.set('1:a', ['x'])
    ad.due(1, 'a')
    await delay(60)
    assert.deepEqual(sent, ['1:a x'])
    held.set('1:a', ['x', 'y'])
    ad.due(1, 'a')
    held.set('1:a', ['x', 'y', 'z'])
    ad.due(1, 'a')
    await delay(60)
    assert.deepEqual(sent, ['1:a x'], 'later ones wait for the slow period')
    await delay(300)
    assert.deepEqual(sent, ['1:a x', '1:a y,z'], 'only the ids not advertised before')
    ad.stop()
  })

  it("a pending advertisement of one round does not swallow the next round's first", async () => {
    const ad = make()
    held.set('1:a', ['x'])
    ad.due(1, 'a')
    await delay(60)
    // Round 1's last fetch lands (slow timer pending), then round 2 starts and a delta arrives.
    held.set('1:a', ['x', 'y'])
    ad.due(1, 'a')
    held.set('2:b', ['p'])
    ad.due(2, 'b')
    await delay(60)
    assert.deepEqual(sent.sort(), ['1:a x', '1:a y', '2:b p'], 'round 2 is advertised at once, with round 1 pending')
    ad.stop()
  })

  it('stop cancels what is pending', async () => {
    const ad = make()
    held.set('1:a', ['x'])
    ad.due(1, 'a')
    ad.stop()
    await delay(60)
    assert.deepEqual(sent, [])
  })
})
