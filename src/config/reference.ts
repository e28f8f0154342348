import { z } from 'zod'
import { NodeConfigSchema } from './node.js'

/**
 * The configuration reference in the README, generated from the config schema: every option with
 * its type, default and meaning (the schema's descriptions), so the documentation cannot drift.
 */

export interface OptionDoc {
  key: string
  type: string
  default: string
  meaning: string
}

/** One row per option, nested objects flattened to dotted keys (parents first). */
export function describeOptions(schema: z.ZodTypeAny = NodeConfigSchema, prefix = ''): OptionDoc[] {
  const out: OptionDoc[] = []
  const shape = (unwrap(schema).inner as z.ZodObject<z.ZodRawShape>).shape
  for (const [name, field] of Object.entries(shape)) {
    const key = prefix + name
    const u = unwrap(field)
    const isObject = u.inner instanceof z.ZodObject
    if (!u.description) throw new Error(`config option ${key} has no description: add .describe() in the schema`)
    out.push({
      key,
      type: isObject ? 'object' : typeName(u.inner),
      default: u.hasDefault ? (isObject ? '(see below)' : JSON.stringify(u.default)) : u.optional ? '(none)' : '**required**',
      meaning: u.description,
    })
    if (isObject) out.push(...describeOptions(u.inner, key + '.'))
  }
  return out
}

/** The markdown table of the README's "Configuration reference" section. */
export function renderConfigReference(schema: z.ZodTypeAny = NodeConfigSchema): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|')
  const rows = describeOptions(schema).map((o) => `| \`${o.key}\` | ${esc(o.type)} | ${o.default.startsWith('(') || o.default.startsWith('*') ? o.default : '`' + esc(o.default) + '`'} | ${esc(o.meaning)} |`)
  return ['| option | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n'
}

/** Markers around the generated table in README.md. */
export const REFERENCE_BEGIN = '<!-- config-reference: generated from src/config/node.ts by `npm run docs`; do not edit -->'
export const REFERENCE_END = '<!-- end of config-reference -->'

/** README text with the generated table replaced (throws if the markers are missing). */
export function updateReadme(readme: string, table = renderConfigReference()): string {
  const a = readme.indexOf(REFERENCE_BEGIN)
  const b = readme.indexOf(REFERENCE_END)
  if (a < 0 || b < a) throw new Error(`README.md lacks the config-reference markers:\n${REFERENCE_BEGIN}\n${REFERENCE_END}`)
  return readme.slice(0, a + REFERENCE_BEGIN.length) + '\n' + table + readme.slice(b)
}

interface Unwrapped {
  inner: z.ZodTypeAny
  description?: string
  hasDefault: boolean
  default?: unknown
  optional: boolean
}

/** Peel defaults, optionals and refinements off a field, keeping the outermost description. */
function unwrap(t: z.ZodTypeAny): Unwrapped {
  const r: Unwrapped = { inner: t, hasDefault: false, optional: false }
  for (;;) {
    const cur = r.inner
    r.description ??= cur.description
    if (cur instanceof z.ZodDefault) {
      r.hasDefault = true
      r.default = cur._def.defaultValue()
      r.inner = cur._def.innerType
    } else if (cur instanceof z.ZodOptional) {
      r.optional = true
      r.inner = cur._def.innerType
    } else if (cur instanceof z.ZodEffects) {
      r.inner = cur._def.schema
    } else {
      return r
    }
  }
}

function typeName(t: z.ZodTypeAny): string {
  const u = unwrap(t).inner
  if (u instanceof z.ZodEnum) return (u.options as string[]).join(' | ')
  if (u instanceof z.ZodArray) return `list of ${typeName(u.element)}`
  if (u instanceof z.ZodBoolean) return 'boolean'
  if (u instanceof z.ZodString) {
    if (t instanceof z.ZodEffects) return 'multiaddr'
    const min = u._def.checks.find((c) => c.kind === 'min') as { value: number } | undefined
    return min && min.value > 1 ? `string, at least ${min.value} characters` : 'string'
  }
  if (u instanceof z.ZodNumber) {
    const checks = u._def.checks
    const int = checks.some((c) => c.kind === 'int')
    const min = checks.find((c) => c.kind === 'min') as { value: number } | undefined
    const max = checks.find((c) => c.kind === 'max') as { value: number } | undefined
    const range = min !== undefined && max !== undefined ? ` ${min.value}–${max.value}` : ''
    return `${int ? 'integer' : 'number'}${range}`
  }
  return u._def.typeName?.replace(/^Zod/, '').toLowerCase() ?? 'value'
}
