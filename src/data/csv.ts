/**
 * A small RFC 4180 parser (no CSV library is installed): fields separated by `delimiter`, records
 * by CRLF, LF or CR; a field starting with `"` is quoted and may hold delimiters, newlines and
 * doubled quotes. Like Python's csv module, a quote inside an unquoted field is kept literally
 * (TSV files often contain raw quotes). Line numbers are those where each record starts.
 */

export interface CsvRecord {
  fields: string[]
  line: number
}

export class CsvSyntaxError extends Error {
  constructor(message: string, readonly line: number) {
    super(message)
  }
}

export function parseDelimited(text: string, delimiter: ',' | '\t'): CsvRecord[] {
  const records: CsvRecord[] = []
  const len = text.length
  let i = 0
  let line = 1
  while (i < len) {
    const recordLine = line
    const fields: string[] = []
    for (;;) {
      let field: string
      if (text[i] === '"') {
        const startLine = line
        i++
        field = ''
        for (;;) {
          const j = text.indexOf('"', i)
          if (j < 0) throw new CsvSyntaxError(`a quoted field starting on line ${startLine} is never closed (a field that starts with " must end with "; write "" for a quote inside it)`, startLine)
          const chunk = text.slice(i, j)
          field += chunk
          line += countNewlines(chunk)
          if (text[j + 1] === '"') {
            field += '"'
            i = j + 2
          } else {
            i = j + 1
            break
          }
        }
        const c = text[i]
        if (i < len && c !== delimiter && c !== '\n' && c !== '\r') {
          throw new CsvSyntaxError(`unexpected ${JSON.stringify(c)} after a closing quote (quote the whole field, and write "" for a quote inside it)`, line)
        }
      } else {
        let j = i
        while (j < len) {
          const c = text[j]
          if (c === delimiter || c === '\n' || c === '\r') break
          j++
        }
        field = text.slice(i, j)
        i = j
      }
      fields.push(field)
      if (i < len && text[i] === delimiter) {
        i++
        continue
      }
      // End of record (or of input).
      if (text[i] === '\r' && text[i + 1] === '\n') i += 2
      else if (i < len) i++
      line++
      break
    }
    records.push({ fields, line: recordLine })
  }
  return records
}

function countNewlines(s: string): number {
  let n = 0
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k)
    if (c === 10 || (c === 13 && s.charCodeAt(k + 1) !== 10)) n++
  }
  return n
}
