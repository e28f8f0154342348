import { createHash } from 'node:crypto'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { memory } from '@libp2p/memory'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { gossipsub, type GossipsubEvents } from '@chainsafe/libp2p-gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import type { ConnectionGater, PrivateKey, PubSub } from '@libp2p/interface'

export type SwarmLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>; pubsub: PubSub<GossipsubEvents> }>

export interface Libp2pOptions {
  privateKey: PrivateKey
  listen: string[]
  announce: string[]
  mdns: boolean
  /** Decides which peers may connect (allowlists, tests that cut links). */
  connectionGater?: ConnectionGater
  /** Pre-shared swarm key (pnet): only holders of the same key can connect. */
  swarmKey?: Uint8Array
  /** 'memory': in-process connections to /memory/<name> addresses only (the simulator); default 'tcp'. */
  transport?: 'tcp' | 'memory'
}

/**
 * A cheap id of a received gossip message as it came off the wire (author, sequence number, topic,
 * data). A copy with the same id is the same message, so it is dropped without re-verification; a
 * forgery that differs in any field gets another id and is verified (and rejected) on its own.
 * Only messages that passed verification enter the cache.
 */
export function fastMessageId(msg: { from?: Uint8Array; seqno?: Uint8Array; topic: string; data?: Uint8Array }): string {
  const h = createHash('sha256')
  for (const part of [msg.from, msg.seqno, Buffer.from(msg.topic), msg.data]) {
    const bytes = part ?? new Uint8Array(0)
    const len = Buffer.alloc(4)
    len.writeUInt32BE(bytes.length)
    h.update(len).update(bytes)
  }
  return h.digest('base64')
}

/** The libp2p host: TCP (or in-process memory), noise, yamux, identify, gossipsub (signed messages), optional mDNS. */
export async function createSwarmLibp2p(opts: Libp2pOptions): Promise<SwarmLibp2p> {
  const node = await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen, announce: opts.announce },
    connectionGater: opts.connectionGater,
    ...(opts.swarmKey ? { connectionProtector: preSharedKey({ psk: opts.swarmKey }) } : {}),
    transports: [opts.transport === 'memory' ? memory() : tcp()],
    connectionEncrypters: [noise()],
    // Deltas are megabytes: 1 MiB frames and a 4 MiB initial window (max stays yamux's 16 MiB)
    // cut per-frame work and window round trips on bulk fetches (about a quarter of the CPU per MiB).
    streamMuxers: [yamux({ maxMessageSize: 1024 * 1024, initialStreamWindowSize: 4 * 1024 * 1024 })],
    peerDiscovery: opts.mdns ? [mdns({ interval: 10_000 })] : [],
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // Messages are signed by their author and checked by every receiver (StrictSign).
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // Many nodes share one IP in local meshes and lab clusters: do not penalise that.
        scoreParams: { IPColocationFactorWeight: 0 },
        // Validation runs in our topic validators, before delivery and forwarding.
        asyncValidation: false,
        // Each message reaches a node once per mesh peer that forwards it. Gossipsub checks the
        // signature before its duplicate cache unless a fast id recognises the copy first: without
        // this, every copy costs an Ed25519 verification (most of a large swarm's CPU).
        fastMsgIdFn: fastMessageId,
        // Every node gets a copy of each message from about each mesh peer, and handling a copy
        // (decrypt, decode, dedup) is most of a large swarm's CPU. A smaller mesh than the default
        // 6 (4, kept between 3 and 8) still leaves every node several disjoint paths, and
        // publishing to the mesh instead of to every subscriber spares the author N-1 sends.
        D: 4,
        Dlo: 3,
        Dhi: 8,
        floodPublish: false,
      }),
    },
  })
  return node as unknown as SwarmLibp2p
}
