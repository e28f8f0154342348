import { InvalidArgumentError } from 'commander'

/** Option parsers shared by the commands: each names the option in its error. */
export const int = (name: string, min = 0) => (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`)
  return n
}

export const num = (name: string) => (v: string): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`)
  return n
}

/** A repeatable option's values, in order. */
export const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v]
