/** A plain-text table: padded columns, a dashed rule under the header, no trailing spaces. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)))
  const line = (cells: string[]): string => cells.map((v, c) => (v ?? '').padEnd(widths[c])).join('  ').trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** Key/value lines with the keys aligned. */
export function formatFields(rows: [string, string][]): string {
  const w = Math.max(...rows.map((r) => r[0].length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')
}
