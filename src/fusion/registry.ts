import type { FusionRule } from './types.js'
import { meanRule } from './mean.js'
import { medianRule } from './median.js'
import { trimmedMeanRule } from './trimmed-mean.js'
import { weightedMeanRule } from './weighted-mean.js'
import { taskArithmeticRule } from './task-arithmetic.js'
import { tiesRule } from './ties.js'
import { dareRule } from './dare.js'

/** Fusion rules by id. The id is part of the swarm's settings: it must never change meaning. */
const rules = new Map<string, FusionRule>()

export function registerFusionRule(rule: FusionRule): void {
  if (!/^[a-z0-9][a-z0-9.-]{0,31}$/.test(rule.id)) throw new RangeError(`fusion rule id ${JSON.stringify(rule.id)} is not a short lowercase id`)
  if (rules.has(rule.id) && rules.get(rule.id) !== rule) throw new RangeError(`fusion rule ${rule.id} is already registered`)
  rules.set(rule.id, rule)
}

export function getFusionRule(id: string): FusionRule | undefined {
  return rules.get(id)
}

export function fusionRuleIds(): string[] {
  return [...rules.keys()].sort()
}

registerFusionRule(meanRule)
registerFusionRule(medianRule)
registerFusionRule(trimmedMeanRule)
registerFusionRule(weightedMeanRule)
registerFusionRule(taskArithmeticRule)
registerFusionRule(tiesRule)
registerFusionRule(dareRule)
