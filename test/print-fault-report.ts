import { readFile } from 'node:fs/promises'
import { REPORT, type Report } from './helpers/fault-report.js'

// Prints the tables recorded by the fault, fuzz and poisoning suites (npm run test:faults).
const report: Report = JSON.parse(await readFile(REPORT, 'utf8'))
for (const [section, rows] of Object.entries(report)) {
  if (rows.length === 0) continue
  const cols = Object.keys(rows[0])
  const cells = [cols, ...rows.map((r) => cols.map((c) => String(r[c] ?? '')))]
  const w = cols.map((_, i) => Math.max(...cells.map((row) => row[i].length)))
  process.stdout.write(`\n${section}\n`)
  for (const [k, row] of cells.entries()) {
    process.stdout.write(row.map((v, i) => v.padEnd(w[i])).join('  ').trimEnd() + '\n')
    if (k === 0) process.stdout.write(w.map((n) => '-'.repeat(n)).join('  ') + '\n')
  }
}
process.stdout.write(`\n(${REPORT})\n`)
