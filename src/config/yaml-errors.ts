import YAML, { LineCounter, isNode } from 'yaml'
import type { ZodError } from 'zod'
import { ConfigError } from '../util/errors.js'

/**
 * Parse YAML and validate it with a zod schema, turning every problem into a ConfigError that
 * names the file, the line and the key, so a user can fix the file without guessing.
 */
export function parseYamlWith<T>(text: string, file: string, validate: (raw: unknown) => { success: true; data: T } | { success: false; error: ZodError }): T {
  const lineCounter = new LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]
    const line = e.linePos?.[0]?.line
    throw new ConfigError(`${file}${line ? `:${line}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`)
  }
  const raw = doc.toJS() ?? {}
  const result = validate(raw)
  if (result.success) return result.data
  const msgs = result.error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.map(String)
    const node = path.length ? doc.getIn(path, true) : undefined
    let where = file
    if (isNode(node) && node.range) where += `:${lineCounter.linePos(node.range[0]).line}`
    else if (path.length > 1) {
      const parent = doc.getIn(path.slice(0, -1), true)
      if (isNode(parent) && parent.range) where += `:${lineCounter.linePos(parent.range[0]).line}`
    }
    const key = path.length ? path.join('.') : '(top level)'
    return `${where}: ${key}: ${issue.message}`
  })
  throw new ConfigError(msgs.join('\n'))
}
