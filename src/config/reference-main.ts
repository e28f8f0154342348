import { readFile, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { updateReadme } from './reference.js'

// `npm run docs`: regenerate the README's configuration reference from the config schema.
const readme = resolve(dirname(fileURLToPath(import.meta.url)), '../../../README.md')
const before = await readFile(readme, 'utf8')
const after = updateReadme(before)
if (after !== before) await writeFile(readme, after)
process.stdout.write(`${readme}: configuration reference ${after === before ? 'already up to date' : 'updated'}\n`)
