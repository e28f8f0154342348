import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { describeOptions, renderConfigReference, updateReadme } from '../src/config/reference.js'
import { NodeConfigSchema } from '../src/config/node.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

describe('configuration reference (README)', () => {
  it('documents every option of the config schema with its default, and the README has the current table (`npm run docs`)', async () => {
    const rows = describeOptions()
    const keys = rows.map((r) => r.key)
    const expected = (shape: z.ZodRawShape, prefix = ''): string[] => Object.entries(shape).flatMap(([k, v]) => {
      let t: z.ZodTypeAny = v
      while (t instanceof z.ZodDefault || t instanceof z.ZodOptional) t = t._def.innerType
      return [prefix + k, ...(t instanceof z.ZodObject ? expected(t.shape, `${prefix}${k}.`) : [])]
    })
    assert.deepEqual(keys, expected(NodeConfigSchema.shape))
    assert.deepEqual(rows.find((r) => r.key === 'api.host'), { key: 'api.host', type: 'string', default: '"127.0.0.1"', meaning: 'Address the HTTP API and dashboard bind to. Any address but loopback requires a bearer token.' })
    assert.equal(rows.find((r) => r.key === 'data.train')!.default, '**required**')
    assert.equal(rows.find((r) => r.key === 'api.token')!.default, '(none)')
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
    assert.equal(updateReadme(readme), readme, 'README.md is out of date: run `npm run docs`')
    assert.ok(readme.includes(renderConfigReference()))
  })

  it('refuses an option without a description', () => {
    assert.throws(() => describeOptions(z.object({ x: z.number().default(1) })), /config option x has no description/)
  })

  it('the README shows the systemd unit in deploy/ as it is', async () => {
    const unit = (await readFile(join(ROOT, 'deploy', 'coldfusiond.service'), 'utf8')).trimEnd()
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
    assert.ok(readme.includes('```ini\n' + unit + '\n```'), 'README.md and deploy/coldfusiond.service differ')
    for (const k of ['ExecStart=', 'User=coldfusiond', 'Restart=on-failure', 'KillSignal=SIGTERM', 'WantedBy=multi-user.target']) assert.ok(unit.includes(k), k)
  })
})
