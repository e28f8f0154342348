import { readFile } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { writeFileAtomic } from '../util/atomic.js'
import { ConfigError } from '../util/errors.js'

/**
 * Private swarms. A pre-shared key (libp2p pnet) encrypts every connection with a key only members
 * hold, so an outsider cannot even complete a handshake; an allowlist of peer ids refuses
 * connections from, and messages authored by, anyone else.
 */

const KEY_HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

export async function createSwarmKey(path: string): Promise<void> {
  const bytes = new Uint8Array(KEY_HEADER.length + 64)
  generateKey(bytes)
  await writeFileAtomic(path, bytes, 0o600)
}

export async function loadSwarmKey(path: string): Promise<Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the swarm key (${(err as NodeJS.ErrnoException).code}); create one with \`coldfusiond swarm key --out FILE\` and give the same file to every member`)
  }
  const text = bytes.toString('utf8').trim()
  if (!text.startsWith(KEY_HEADER.trim().split('\n')[0]) || !/^[0-9a-fA-F]{64}$/.test(text.split('\n').pop() ?? '')) {
    throw new ConfigError(`${path}: not a libp2p swarm key (expected "${KEY_HEADER.replace(/\n/g, '\\n')}" followed by 64 hex digits)`)
  }
  return new Uint8Array(Buffer.from(text + '\n'))
}

/** A gater that admits only allowlisted peers, in front of another gater (if any). */
export function allowlistGater(allow: Iterable<string>, inner?: ConnectionGater): ConnectionGater {
  const ok = new Set(allow)
  const denied = (peer: PeerId): boolean => !ok.has(peer.toString())
  return {
    ...inner,
    denyDialPeer: async (peer) => denied(peer) || Boolean(await inner?.denyDialPeer?.(peer)),
    denyInboundEncryptedConnection: async (peer, conn) => denied(peer) || Boolean(await inner?.denyInboundEncryptedConnection?.(peer, conn)),
    denyOutboundEncryptedConnection: async (peer, conn) => denied(peer) || Boolean(await inner?.denyOutboundEncryptedConnection?.(peer, conn)),
  }
}
