import type { NodeStatus } from '../rounds/status.js'
import type { Logger } from '../util/log.js'
import { SwarmHistory } from './history.js'
import { NodeMetrics } from './metrics.js'
import { WarningLog } from './warnings.js'

/**
 * What a node records about itself for operators, in one place: Prometheus metrics, the recent
 * rounds as the dashboard shows them, and recent warnings. The daemon creates one and hands the
 * metrics to the round loop and the p2p layer.
 */
export class NodeTelemetry {
  readonly history = new SwarmHistory()
  readonly warnings = new WarningLog()
  readonly metrics: NodeMetrics

  constructor(status: () => NodeStatus, opts: { processMetrics?: boolean } = {}) {
    this.metrics = new NodeMetrics(status, this.history, opts)
  }

  /** The logger components should use: unchanged output, warnings also kept for the dashboard. */
  logger(log: Logger): Logger {
    return this.warnings.capture(log)
  }
}
