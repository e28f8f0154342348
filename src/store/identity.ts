import { readFile, stat } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { writeFileAtomic } from '../util/atomic.js'
import { ConfigError } from '../util/errors.js'

/** A node's persistent Ed25519 identity: its peer id survives restarts. */
export async function createIdentity(path: string): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519')
  await writeFileAtomic(path, privateKeyToProtobuf(key), 0o600)
  // @libp2p/crypto's newer typings differ from libp2p 2.x's; the runtime key is the same.
  return key as unknown as PrivateKey
}

export async function loadIdentity(path: string): Promise<PrivateKey> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the node identity (${(err as NodeJS.ErrnoException).code}); run \`coldfusiond init --home DIR\` first`)
  }
  try {
    return privateKeyFromProtobuf(bytes) as unknown as PrivateKey
  } catch (err) {
    throw new ConfigError(`${path}: not a valid libp2p private key (${(err as Error).message}); restore it from a backup, or delete the home and run init again (a new peer id)`)
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

export function peerIdOf(key: PrivateKey): string {
  return peerIdFromPrivateKey(key as never).toString()
}
