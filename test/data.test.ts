import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TASKS, generateTask, lexiconSize, loadExamples, parseDelimited, splitHeldOut, writeTaskDataset } from '../src/data/index.js'
import { DataError } from '../src/util/errors.js'

describe('data', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cf-data-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function file(name: string, content: string): Promise<string> {
    const p = join(dir, name)
    await writeFile(p, content)
    return p
  }

  /** Load and expect a DataError with this file, line and message. */
  async function fails(name: string, content: string | null, line: number | undefined, pattern: RegExp, opts?: { labels?: string[] }): Promise<void> {
    const p = content === null ? join(dir, name) : await file(name, content)
    try {
      await loadExamples(p, opts)
    } catch (err) {
      assert.ok(err instanceof DataError, `expected DataError, got ${(err as Error).stack}`)
      assert.equal(err.file, p)
      assert.equal(err.line, line)
      assert.ok(err.message.startsWith(line === undefined ? `${p}: ` : `${p}:${line}: `), err.message)
      assert.match(err.message, pattern)
      return
    }
    assert.fail(`expected ${name} to be rejected`)
  }

  describe('loadExamples', () => {
    it('reads JSON Lines with integer labels, skipping blank lines, CRLF and a BOM', async () => {
      const p = await file('int.jsonl', '\ufeff{"text": "a fine day", "label": 1}\r\n\n  \n{"text":"a bad day","label":0,"extra":true}\n{"text":"x y","label":3}\n')
      const { examples, labels } = await loadExamples(p)
      assert.deepEqual(examples, [
        { text: 'a fine day', label: 1 },
        { text: 'a bad day', label: 0 },
        { text: 'x y', label: 3 },
      ])
      assert.deepEqual(labels, ['0', '1', '2', '3'])
    })

    it('maps string labels by sorted name, or by a given labels list', async () => {
      const p = await file('str.json', '{"text":"t1","label":"pos"}\n{"text":"t2","label":"neg"}\n{"text":"t3","label":"pos"}\n')
      assert.deepEqual(await loadExamples(p), { examples: [{ text: 't1', label: 1 }, { text: 't2', label: 0 }, { text: 't3', label: 1 }], labels: ['neg', 'pos'] })
      const given = await loadExamples(p, { labels: ['pos', 'neutral', 'neg'] })
      assert.deepEqual(given.labels, ['pos', 'neutral', 'neg'])
      assert.deepEqual(given.examples.map((e) => e.label), [0, 2, 0])
    })

    it('reads CSV with quoted commas, doubled quotes and newlines inside quotes', async () => {
      const p = await file('q.csv', 'id,text,label\r\n1,"hello, world",pos\r\n2,"she said ""hi""",neg\n3,"two\nlines",pos\n\n4,plain text with a "quote" inside,neg\n5,trailing,neg')
      const { examples, labels } = await loadExamples(p)
      assert.deepEqual(labels, ['neg', 'pos'])
      assert.deepEqual(examples.map((e) => e.text), ['hello, world', 'she said "hi"', 'two\nlines', 'plain text with a "quote" inside', 'trailing'])
      assert.deepEqual(examples.map((e) => e.label), [1, 0, 1, 0, 0])
    })

    it('reads TSV with integer labels', async () => {
      const p = await file('t.tsv', 'label\ttext\n0\tone, two\n1\t"quoted\ttab"\n')
      assert.deepEqual(await loadExamples(p), { examples: [{ text: 'one, two', label: 0 }, { text: 'quoted\ttab', label: 1 }], labels: ['0', '1'] })
    })

    it('numbers CSV errors by the line where the record starts', async () => {
      await fails('lines.csv', 'text,label\n"a\nb\nc",x\nd,y,z\n', 5, /expected 2 fields as in the header, found 3 \(put fields containing commas in double quotes/)
      assert.deepEqual(parseDelimited('a,"b\r\nc"\r\nd,e', ',').map((r) => r.line), [1, 3])
    })

    it('rejects each kind of bad file with file, line, problem and what to do', async () => {
      const ok = '{"text":"fine","label":0}\n{"text":"fine too","label":1}\n'
      const lines16 = ok.repeat(8)
      await fails('train.jsonl', lines16 + '{"text":"no label here"}\n', 17, /^.*train\.jsonl:17: "label" is missing \(each line needs \{"text": string, "label": integer or string\}\)$/)
      await fails('bad.jsonl', ok + '{"text": "oops", label: 1}\n', 3, /invalid JSON: .*each line needs/)
      await fails('arr.json', '[{"text":"a","label":0},\n{"text":"b","label":1}]\n', 1, /found an array \(write one \{"text", "label"\} object per line\)/)
      await fails('notobj.jsonl', ok + '"just a string"\n', 3, /not a JSON object/)
      await fails('notext.jsonl', '{"label":0}\n', 1, /"text" is missing/)
      await fails('emptytext.jsonl', ok + '{"text":"   ","label":0}\n', 3, /"text" must be a non-empty string, got "   "/)
      await fails('numtext.jsonl', '{"text":5,"label":0}\n', 1, /"text" must be a non-empty string, got number 5/)
      await fails('float.jsonl', ok + '{"text":"a","label":1.5}\n', 3, /"label" must be an integer or a string, got number 1\.5/)
      await fails('bool.jsonl', '{"text":"a","label":true}\n', 1, /"label" must be an integer or a string, got boolean true/)
      await fails('null.jsonl', '{"text":"a","label":null}\n', 1, /"label" must be an integer or a string, got null/)
      await fails('neg.jsonl', ok + '{"text":"a","label":-1}\n', 3, /"label" is negative \(-1\) \(class ids start at 0\)/)
      await fails('mixed.jsonl', ok + '{"text":"a","label":"pos"}\n', 3, /label "pos" is a string, but line 1 uses integer labels \(use one kind/)
      await fails('missing.jsonl', null, undefined, /file not found \(check the path\)/)
      await fails('empty.jsonl', '', undefined, /no examples \(the file is empty or has only blank lines\)/)
      await fails('blank.csv', '\n\n', undefined, /no examples/)
      await fails('headeronly.csv', 'text,label\n', undefined, /no examples/)
      await fails('one.jsonl', '{"text":"a","label":1}\n{"text":"b","label":1}\n', undefined, /only one class is present \("1" on all 2 examples; a classifier needs at least 2 classes/)
      await fails('data.txt', 'hello', undefined, /unsupported file extension "\.txt" \(use \.jsonl or \.json for JSON Lines, \.csv or \.tsv/)
      await fails('fields.csv', 'text,label\n"a, b",0\na, b,1\n', 3, /expected 2 fields as in the header, found 3/)
      await fails('nolabel.csv', 'text,category\na,0\n', 1, /the header row has no "label" column \(found: "text", "category"; the first row of a CSV file must name its columns/)
      await fails('notext.tsv', 'sentence\tlabel\na\t0\n', 1, /the header row has no "text" column/)
      await fails('dup.csv', 'text,label,text\na,0,b\n', 1, /names "text" 2 times/)
      await fails('quote.csv', 'text,label\na,0\n"never closed,1\n', 3, /quoted field starting on line 3 is never closed/)
      await fails('after.csv', 'text,label\n"a"b,0\n', 2, /unexpected "b" after a closing quote/)
      await fails('emptylabel.csv', 'text,label\na,\n', 2, /"label" is empty/)
      await fails('negcsv.csv', 'text,label\na,0\nb,-2\n', 3, /"label" is negative \(-2\)/)
      await fails('unknown.jsonl', '{"text":"a","label":"pos"}\n{"text":"b","label":"meh"}\n', 2, /label "meh" is not one of the known labels \("pos", "neg"\)/, { labels: ['pos', 'neg'] })
      await fails('range.jsonl', ok + '{"text":"a","label":2}\n', 3, /label 2 is out of range \(the labels list has 2 names, ids 0\.\.1\)/, { labels: ['neg', 'pos'] })
    })
  })

  describe('splitHeldOut', () => {
    const xs = Array.from({ length: 103 }, (_, i) => ({ text: `t${i}`, label: i % 3 === 0 ? 0 : i % 3 === 1 ? 1 : 2 }))

    it('is deterministic, stratified, disjoint and complete', () => {
      const a = splitHeldOut(xs, 0.2, 7)
      assert.deepEqual(a, splitHeldOut(xs, 0.2, 7))
      assert.notDeepEqual(a.eval, splitHeldOut(xs, 0.2, 8).eval)
      assert.equal(a.train.length + a.eval.length, xs.length)
      assert.equal(new Set([...a.train, ...a.eval]).size, xs.length)
      for (const label of [0, 1, 2]) {
        const n = xs.filter((e) => e.label === label).length
        assert.equal(a.eval.filter((e) => e.label === label).length, Math.round(n * 0.2))
      }
      // Both parts keep the input order.
      assert.deepEqual(a.train, xs.filter((e) => a.train.includes(e)))
    })

    it('holds out at least one example of each class with two or more, and none at fraction 0', () => {
      const few = [{ label: 0 }, { label: 0 }, { label: 1 }, { label: 1 }, { label: 2 }]
      assert.equal(splitHeldOut(few, 0.1, 1).eval.length, 2)
      assert.equal(splitHeldOut(xs, 0, 1).eval.length, 0)
      assert.throws(() => splitHeldOut(xs, 1, 1), RangeError)
    })
  })

  describe('synthetic tasks', () => {
    it('has a shared lexicon of about 400 words and four tasks', () => {
      const n = lexiconSize()
      assert.ok(n >= 350 && n <= 500, `${n} words`)
      assert.deepEqual(TASKS.map((t) => t.name), ['sentiment', 'topic', 'subjectivity', 'question'])
    })

    for (const task of TASKS) {
      it(`${task.name}: deterministic, balanced, 6-20 words`, () => {
        const a = generateTask(task.name, 2000, 42)
        assert.deepEqual(a, generateTask(task.name, 2000, 42))
        assert.notDeepEqual(a, generateTask(task.name, 2000, 43))
        const k = task.labels.length
        for (let c = 0; c < k; c++) {
          const count = a.filter((e) => e.label === c).length
          assert.ok(Math.abs(count - 2000 / k) < 0.12 * (2000 / k), `class ${task.labels[c]}: ${count}`)
        }
        for (const e of a) {
          const words = e.text.split(' ').filter((w) => w !== '?').length
          assert.ok(words >= 6 && words <= 20, `${words} words: ${e.text}`)
        }
        assert.ok(new Set(a.map((e) => e.text)).size > 1900, 'sentences should rarely repeat')
      })
    }

    it('different tasks with the same seed differ', () => {
      assert.notDeepEqual(generateTask('sentiment', 50, 1).map((e) => e.text), generateTask('subjectivity', 50, 1).map((e) => e.text))
      assert.throws(() => generateTask('nope', 5, 1), RangeError)
    })

    it('writes train.jsonl and labels.json that the loader reads back unchanged', async () => {
      const out = join(dir, 'topic-node')
      const written = await writeTaskDataset(out, 'topic', 300, 5, { nTest: 40 })
      const labels = JSON.parse(await readFile(written.labels, 'utf8'))
      assert.deepEqual(labels, ['sports', 'science', 'food', 'travel'])
      const back = await loadExamples(written.train, { labels })
      assert.deepEqual(back.examples, generateTask('topic', 300, 5))
      assert.deepEqual(back.labels, labels)
      const test = await loadExamples(written.test!, { labels })
      assert.equal(test.examples.length, 40)
      const train = new Set(back.examples.map((e) => e.text))
      assert.ok(test.examples.filter((e) => train.has(e.text)).length < 4, 'test should be an independent draw')
      // Rewriting gives the same bytes.
      const before = await readFile(written.train)
      await writeTaskDataset(out, 'topic', 300, 5)
      assert.ok(before.equals(await readFile(written.train)))
    })
  })
})
