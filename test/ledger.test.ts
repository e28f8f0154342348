import assert from 'node:assert/strict'
import { mkdtemp, appendFile, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ledger } from '../src/store/ledger.js'
import { ContentStore } from '../src/store/content-store.js'
import { sha256Hex } from '../src/util/hash.js'

const h = (s: string): string => sha256Hex(Buffer.from(s))
const G = h('genesis')

describe('ledger', () => {
  it('appends durably, reloads, and follows the chain through switches', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-ledger-'))
    const path = join(dir, 'ledger.jsonl')
    const l = await Ledger.open(path, G)
    assert.equal(l.headHash(), G)
    assert.equal(l.headRound(), 0)
    const d = [{ id: h('d1'), peer: '12D3KooWA', examples: 10 }]
    await l.append({ round: 1, parent: G, hash: h('b1'), deltas: d, rule: 'mean', kind: 'commit' })
    await l.append({ round: 2, parent: h('b1'), hash: h('b2x'), deltas: d, rule: 'mean', kind: 'commit' })
    await l.append({ round: 2, parent: h('b1'), hash: h('b2'), deltas: d, rule: 'mean', kind: 'switch' })
    const again = await Ledger.open(path, G)
    assert.equal(again.headRound(), 2)
    assert.equal(again.headHash(), h('b2'))
    assert.deepEqual(again.chain().map((e) => e.hash), [h('b1'), h('b2')])
    assert.equal(again.recordFor(h('b1'))?.parent, G)
  })

  it('drops a torn last line (a crash mid-append) and keeps the rest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-ledger-'))
    const path = join(dir, 'ledger.jsonl')
    const l = await Ledger.open(path, G)
    await l.append({ round: 1, parent: G, hash: h('b1'), deltas: [], rule: 'mean', kind: 'commit' })
    const good = await readFile(path, 'utf8')
    await appendFile(path, good.slice(0, 40))
    const again = await Ledger.open(path, G)
    assert.equal(again.headRound(), 1)
    assert.equal(await readFile(path, 'utf8'), good)
  })

  it('refuses a damaged line in the middle, naming file and line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-ledger-'))
    const path = join(dir, 'ledger.jsonl')
    const l = await Ledger.open(path, G)
    await l.append({ round: 1, parent: G, hash: h('b1'), deltas: [], rule: 'mean', kind: 'commit' })
    await l.append({ round: 2, parent: h('b1'), hash: h('b2'), deltas: [], rule: 'mean', kind: 'commit' })
    const lines = (await readFile(path, 'utf8')).split('\n')
    lines[0] = lines[0].replace('"round":1', '"round":7')
    await writeFile(path, lines.join('\n'))
    await assert.rejects(Ledger.open(path, G), /ledger\.jsonl:1: ledger line is damaged \(checksum mismatch\)/)
  })
})

describe('content store', () => {
  it('names files by their sha256 and refuses damaged or mismatched content', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-cs-'))
    const s = new ContentStore(dir, 'bin')
    const bytes = new Uint8Array([1, 2, 3])
    const id = await s.put(bytes)
    assert.equal(id, sha256Hex(bytes))
    assert.deepEqual(await s.get(id), bytes)
    assert.equal(await s.get(h('absent')), undefined)
    await assert.rejects(s.put(bytes, h('other')), /does not match/)
    await writeFile(s.path(id), new Uint8Array([9, 9, 9]))
    await assert.rejects(s.get(id), /is damaged/)
  })
})
