/**
 * Every benchmark result is a named figure with its unit and the sizes it was measured at, so
 * the JSON file says what each number means without the code.
 */
export interface Figure {
  value: number | null
  unit: string
  /** The sizes and settings behind the value (nodes, params, codec, batch, ...). */
  sizes: Record<string, number | string | boolean>
  /** Why a value is null, or what to keep in mind reading it. */
  note?: string
}

export type Figures = Record<string, Figure>

export function fig(value: number | null, unit: string, sizes: Figure['sizes'] = {}, note?: string): Figure {
  const v = value === null || !Number.isFinite(value) ? null : Number(value.toPrecision(6))
  return note === undefined ? { value: v, unit, sizes } : { value: v, unit, sizes, note }
}

/** What one benchmark module returns: its figures, detail rows (curves) and table lines. */
export interface BenchResult {
  figures: Figures
  /** Detail series, e.g. the bytes-vs-accuracy curve; each row carries its own units in field names. */
  curves?: Record<string, unknown[]>
  /** Readable lines for the printed table (already formatted). */
  table: string[]
}
