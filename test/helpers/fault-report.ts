import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Rows the fault and fuzz suites record, printed as tables by `npm run test:faults`. */
export const REPORT = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test-artifacts', 'fault-report.json')

export type Report = Record<string, Record<string, unknown>[]>

export async function recordRow(section: string, row: Record<string, unknown>): Promise<void> {
  await mkdir(dirname(REPORT), { recursive: true })
  let report: Report = {}
  try {
    report = JSON.parse(await readFile(REPORT, 'utf8'))
  } catch {
    // first row
  }
  const rows = (report[section] ??= [])
  const key = JSON.stringify(Object.values(row)[0])
  const i = rows.findIndex((r) => JSON.stringify(Object.values(r)[0]) === key)
  if (i >= 0) rows[i] = row
  else rows.push(row)
  await writeFile(REPORT, JSON.stringify(report, null, 2) + '\n')
}
