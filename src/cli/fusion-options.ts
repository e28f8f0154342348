import { Option, type Command } from 'commander'
import { fusionRuleIds, getFusionRule, type FusionParams } from '../fusion/index.js'
import type { SwarmDefinition } from '../config/swarm.js'
import { UserError } from '../util/errors.js'
import { collect } from './options.js'

type RuleId = SwarmDefinition['fusion']['rule']

/** `--fusion`, `--fusion-param` and `--trim`, shared by the commands that create a swarm. */
export function fusionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--fusion <rule>', 'fusion rule (default mean; see the README\'s fusion rules table)').choices(fusionRuleIds()))
    .option(
      '--fusion-param <key=value>',
      'a parameter of the fusion rule, repeatable; part of the swarm id (trimmed-mean: trim; task-arithmetic: scale; ties: density, scale; dare: drop, scale)',
      collect,
    )
    .option('--trim <fraction>', 'trimmed-mean: fraction dropped at each end per coordinate, in [0, 0.5) (default 0.2); same as --fusion-param trim=F')
}

/**
 * The rule and params the fusion options ask for, checked by the rule itself so that the error
 * names the flag and the allowed range. Undefined fields mean the defaults (mean, no params).
 */
export function fusionSettings(o: { fusion?: string; fusionParam?: string[]; trim?: string }): { fusionRule?: RuleId; fusionParams?: FusionParams } {
  const params: Record<string, number | string | boolean> = {}
  const flags: Record<string, string> = {}
  const add = (flag: string, key: string, raw: string) => {
    if (key in params) throw new UserError(`${flag}: ${key} is given twice (${flags[key]})`)
    params[key] = parseValue(raw)
    flags[key] = flag
  }
  for (const kv of o.fusionParam ?? []) {
    const m = /^([A-Za-z][A-Za-z0-9_-]*)=(.+)$/.exec(kv)
    if (!m) throw new UserError(`--fusion-param ${kv}: expected key=value, e.g. --fusion ties --fusion-param density=0.2`)
    add(`--fusion-param ${kv}`, m[1], m[2])
  }
  if (o.trim !== undefined) add(`--trim ${o.trim}`, 'trim', o.trim)

  const id = o.fusion ?? 'mean'
  const rule = getFusionRule(id)
  if (!rule) throw new UserError(`--fusion ${id}: unknown rule (known: ${fusionRuleIds().join(', ')})`)
  // One key at a time first (every param has a default), so the error names its flag.
  for (const key of Object.keys(params)) {
    try {
      rule.checkParams?.({ [key]: params[key] })
    } catch (err) {
      throw new UserError(`${flags[key]}: ${(err as Error).message}${o.fusion === undefined ? ' (choose the rule with --fusion)' : ''}`)
    }
  }
  try {
    rule.checkParams?.(params)
  } catch (err) {
    throw new UserError(`--fusion ${id}: ${(err as Error).message}`)
  }
  return {
    fusionRule: o.fusion as RuleId | undefined,
    fusionParams: Object.keys(params).length > 0 ? params : undefined,
  }
}

/** Numbers and booleans as such; anything else stays a string (and the rule says what it wanted). */
function parseValue(raw: string): number | string | boolean {
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw)) return Number(raw)
  if (raw === 'true' || raw === 'false') return raw === 'true'
  return raw
}
