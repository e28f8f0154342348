import { mulberry32 } from '../data/rng.js'
import type { GossipHandler } from './gossip.js'

/** Fault injection for drills and tests: lose or repeat a share of the gossip a node receives. */
export interface GossipFaults {
  /** Probability that a received message is lost. */
  drop: number
  /** Probability that a delivered message is delivered twice. */
  duplicate: number
  seed: number
}

export function withGossipFaults(handler: GossipHandler, f: GossipFaults): GossipHandler {
  const rnd = mulberry32(f.seed)
  return (msg, from) => {
    if (rnd() < f.drop) return
    handler(msg, from)
    if (rnd() < f.duplicate) handler(msg, from)
  }
}
