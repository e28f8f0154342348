import { readFile } from 'node:fs/promises'
import { DASHBOARD_HTML } from './page.js'

/**
 * The dashboard's two assets. The script is client.ts, compiled by tsc next to this module and
 * served as is (no bundler, no CDN: the page works on an air-gapped lab network).
 */

let script: Promise<string> | undefined

export function dashboardPage(): string {
  return DASHBOARD_HTML
}

export function dashboardScript(): Promise<string> {
  script ??= readFile(new URL('./client.js', import.meta.url), 'utf8')
    // The source map is not served; a browser asking for it would only log a 404.
    .then((s) => s.replace(/\n\/\/# sourceMappingURL=\S*\s*$/, '\n'))
    .catch((err: Error) => {
      script = undefined
      throw err
    })
  return script
}
