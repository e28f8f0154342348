import { readFile, stat } from 'node:fs/promises'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { writeFileAtomic } from '../util/atomic.js'
import { ConfigError } from '../util/errors.js'
import { HomeLayout } from '../store/home.js'

/**
 * The API's bearer token. On loopback the API is open (only local users reach it); bound to any
 * other address it needs a token, from `api.token` in config.yaml or the `api-token` file in the
 * node home, and the daemon refuses to start without one.
 */

export const MIN_TOKEN_LENGTH = 16

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h)
  return false
}

/** A new random token: 32 bytes, hex. */
export function generateToken(): string {
  return randomBytes(32).toString('hex')
}

/** Write a new token file (mode 600) into the home, unless one is there; returns its path. */
export async function ensureTokenFile(home: string): Promise<string> {
  const file = new HomeLayout(home).apiToken
  if (!(await readTokenFile(file))) await writeFileAtomic(file, generateToken() + '\n', 0o600)
  return file
}

/**
 * The token clients must present, or undefined when the API is open (bound to loopback).
 * Throws when the API is bound elsewhere without a token.
 */
export async function apiTokenFor(home: string, api: { host: string; token?: string }): Promise<string | undefined> {
  if (isLoopbackHost(api.host)) return undefined
  if (api.token) {
    await mustBePrivate(new HomeLayout(home).config, 'holds api.token but')
    return api.token
  }
  const token = await readToken(home, api)
  if (token) return token
  const file = new HomeLayout(home).apiToken
  throw new ConfigError(
    `the HTTP API is bound to ${api.host}, which is not loopback, and has no bearer token: set api.token in ${new HomeLayout(home).config} ` +
      `(at least ${MIN_TOKEN_LENGTH} characters), or put one in ${file} (mode 600), e.g. \`openssl rand -hex 32 > ${file}\`; ` +
      'or bind the API to 127.0.0.1',
  )
}

/** The configured token (config first, then the home's token file), if any. */
export async function readToken(home: string, api: { token?: string }): Promise<string | undefined> {
  return api.token ?? (await readTokenFile(new HomeLayout(home).apiToken))
}

async function readTokenFile(file: string): Promise<string | undefined> {
  let text: string
  try {
    text = (await readFile(file, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ConfigError(`${file}: cannot read the API token (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  if (text.length < MIN_TOKEN_LENGTH) throw new ConfigError(`${file}: the API token must be at least ${MIN_TOKEN_LENGTH} characters`)
  await mustBePrivate(file, 'is the API token file but')
  return text
}

/** A token others can read is no secret: refuse it rather than serve with it. */
async function mustBePrivate(file: string, what: string): Promise<void> {
  if (process.platform === 'win32') return
  const mode = (await stat(file).catch(() => undefined))?.mode
  if (mode !== undefined && (mode & 0o077) !== 0) {
    throw new ConfigError(`${file} ${what} is readable by other users; run \`chmod 600 ${file}\``)
  }
}

/** Compare a request's Authorization header with the token in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  if (!m) return false
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(m[1]), digest(token))
}
