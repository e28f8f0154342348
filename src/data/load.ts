import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { DataError } from '../util/errors.js'
import { CsvSyntaxError, parseDelimited } from './csv.js'

export interface Example {
  text: string
  /** Class id: an index into `labels`. */
  label: number
}

export interface LoadedExamples {
  examples: Example[]
  /** Label names by id. */
  labels: string[]
}

export interface LoadOptions {
  /** Known label names (e.g. from labels.json): string labels must be among them, integer labels below their count. */
  labels?: string[]
  /** Refuse files with fewer distinct classes (default 2: a classifier needs two). */
  minClasses?: number
}

const JSONL_HINT = 'each line needs {"text": string, "label": integer or string}'

/** A label as written in the file, before it is mapped to an id. */
type RawLabel = { kind: 'int'; value: number } | { kind: 'string'; value: string }

interface RawExample {
  text: string
  label: RawLabel
  line: number
}

/**
 * Load labelled sentences from JSON Lines (.jsonl, .json: one {"text", "label"} object per line)
 * or CSV/TSV (.csv, .tsv: a header row naming `text` and `label` columns). Every problem is a
 * DataError naming the file, the line and what to do. String labels map to ids by sorted unique
 * name (or by position in opts.labels); integer labels are used as they are (max + 1 classes).
 */
export async function loadExamples(path: string, opts: LoadOptions = {}): Promise<LoadedExamples> {
  const ext = extname(path).toLowerCase()
  if (!['.jsonl', '.json', '.csv', '.tsv'].includes(ext)) {
    throw new DataError(`${path}: unsupported file extension ${JSON.stringify(ext || '(none)')} (use .jsonl or .json for JSON Lines, .csv or .tsv with a header row)`, path)
  }
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new DataError(`${path}: file not found (check the path)`, path)
    if (code === 'EISDIR') throw new DataError(`${path}: is a directory, not a data file`, path)
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`, path)
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // UTF-8 byte order mark
  const raw = ext === '.csv' || ext === '.tsv' ? parseCsv(path, text, ext === '.csv' ? ',' : '\t') : parseJsonl(path, text)
  if (raw.length === 0) throw new DataError(`${path}: no examples (the file is empty or has only blank lines)`, path)
  return mapLabels(path, raw, opts)
}

function parseJsonl(path: string, text: string): RawExample[] {
  const out: RawExample[] = []
  const lines = text.split('\n')
  for (let k = 0; k < lines.length; k++) {
    const lineNo = k + 1
    const s = lines[k].trim()
    if (s === '') continue
    const fail = (problem: string): never => {
      throw new DataError(`${path}:${lineNo}: ${problem}`, path, lineNo)
    }
    let obj: unknown
    try {
      obj = JSON.parse(s)
    } catch (err) {
      if (out.length === 0 && s.startsWith('[')) fail(`expected one JSON object per line (JSON Lines), found an array (write one {"text", "label"} object per line)`)
      fail(`invalid JSON: ${(err as Error).message} (${JSONL_HINT})`)
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail(`not a JSON object (${JSONL_HINT})`)
    const o = obj as Record<string, unknown>
    if (!Object.hasOwn(o, 'text')) fail(`"text" is missing (${JSONL_HINT})`)
    if (typeof o.text !== 'string' || o.text.trim() === '') fail(`"text" must be a non-empty string, got ${describe(o.text)} (${JSONL_HINT})`)
    if (!Object.hasOwn(o, 'label')) fail(`"label" is missing (${JSONL_HINT})`)
    const label = o.label
    let rl: RawLabel
    if (typeof label === 'number') {
      if (!Number.isSafeInteger(label)) fail(`"label" must be an integer or a string, got ${describe(label)} (class ids are 0, 1, 2, ...)`)
      if (label < 0) fail(`"label" is negative (${label}) (class ids start at 0)`)
      rl = { kind: 'int', value: label }
    } else if (typeof label === 'string') {
      if (label.trim() === '') fail(`"label" is an empty string (give the class name or its integer id)`)
      rl = { kind: 'string', value: label }
    } else {
      fail(`"label" must be an integer or a string, got ${describe(label)} (${JSONL_HINT})`)
    }
    out.push({ text: o.text as string, label: rl!, line: lineNo })
  }
  return out
}

function parseCsv(path: string, text: string, delimiter: ',' | '\t'): RawExample[] {
  let records
  try {
    records = parseDelimited(text, delimiter).filter((r) => !(r.fields.length === 1 && r.fields[0].trim() === ''))
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw new DataError(`${path}:${err.line}: ${err.message}`, path, err.line)
    throw err
  }
  if (records.length === 0) return []
  const header = records[0]
  const names = header.fields.map((f) => f.trim())
  const kind = delimiter === ',' ? 'CSV' : 'TSV'
  for (const col of ['text', 'label']) {
    const count = names.filter((n) => n === col).length
    if (count === 0) {
      throw new DataError(`${path}:${header.line}: the header row has no "${col}" column (found: ${names.map((n) => JSON.stringify(n)).join(', ')}; the first row of a ${kind} file must name its columns, including "text" and "label")`, path, header.line)
    }
    if (count > 1) throw new DataError(`${path}:${header.line}: the header row names "${col}" ${count} times (keep one "${col}" column)`, path, header.line)
  }
  const ti = names.indexOf('text')
  const li = names.indexOf('label')
  const out: RawExample[] = []
  for (const r of records.slice(1)) {
    const fail = (problem: string): never => {
      throw new DataError(`${path}:${r.line}: ${problem}`, path, r.line)
    }
    if (r.fields.length !== names.length) {
      fail(`expected ${names.length} fields as in the header, found ${r.fields.length} (${delimiter === ',' ? 'put fields containing commas in double quotes, "like, this"' : 'a text containing a tab must be quoted'})`)
    }
    const t = r.fields[ti]
    if (t.trim() === '') fail(`"text" is empty (each row needs a non-empty text)`)
    const l = r.fields[li].trim()
    if (l === '') fail(`"label" is empty (give the class name or its integer id)`)
    let rl: RawLabel
    if (/^[+-]?\d+$/.test(l)) {
      const v = Number(l)
      if (v < 0) fail(`"label" is negative (${l}) (class ids start at 0)`)
      if (!Number.isSafeInteger(v)) fail(`"label" ${l} is too large for a class id`)
      rl = { kind: 'int', value: v }
    } else {
      rl = { kind: 'string', value: l }
    }
    out.push({ text: t, label: rl, line: r.line })
  }
  return out
}

function mapLabels(path: string, raw: RawExample[], opts: LoadOptions): LoadedExamples {
  const first = raw[0].label.kind
  for (const r of raw) {
    if (r.label.kind !== first) {
      throw new DataError(
        `${path}:${r.line}: label ${JSON.stringify(r.label.value)} is ${r.label.kind === 'int' ? 'an integer' : 'a string'}, but line ${raw[0].line} uses ${first === 'int' ? 'integer' : 'string'} labels (use one kind of label in a file)`,
        path,
        r.line,
      )
    }
  }
  let labels: string[]
  let examples: Example[]
  if (first === 'int') {
    let max = 0
    for (const r of raw) max = Math.max(max, r.label.value as number)
    if (opts.labels) {
      labels = [...opts.labels]
      const bad = raw.find((r) => (r.label.value as number) >= labels.length)
      if (bad) throw new DataError(`${path}:${bad.line}: label ${bad.label.value} is out of range (the labels list has ${labels.length} names, ids 0..${labels.length - 1})`, path, bad.line)
    } else {
      labels = Array.from({ length: max + 1 }, (_, i) => String(i))
    }
    examples = raw.map((r) => ({ text: r.text, label: r.label.value as number }))
  } else {
    labels = opts.labels ? [...opts.labels] : [...new Set(raw.map((r) => r.label.value as string))].sort()
    const ids = new Map(labels.map((l, i) => [l, i]))
    examples = raw.map((r) => {
      const id = ids.get(r.label.value as string)
      if (id === undefined) {
        throw new DataError(`${path}:${r.line}: label ${JSON.stringify(r.label.value)} is not one of the known labels (${labels.map((l) => JSON.stringify(l)).join(', ')})`, path, r.line)
      }
      return { text: r.text, label: id }
    })
  }
  const present = new Set(examples.map((e) => e.label))
  const minClasses = opts.minClasses ?? 2
  if (present.size < minClasses) {
    const only = [...present].map((id) => JSON.stringify(labels[id])).join(', ')
    throw new DataError(
      `${path}: only ${present.size === 1 ? 'one class is' : `${present.size} classes are`} present (${only} on all ${examples.length} examples; a classifier needs at least ${minClasses} classes: check the label column)`,
      path,
    )
  }
  return { examples, labels }
}

function describe(x: unknown): string {
  if (x === undefined) return 'nothing'
  if (x === null) return 'null'
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? x.slice(0, 40) + '...' : x)
  if (Array.isArray(x)) return 'an array'
  if (typeof x === 'object') return 'an object'
  return `${typeof x} ${String(x)}`
}
