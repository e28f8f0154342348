import { TopicValidatorResult, type PeerId, type Message, type SubscriptionChangeData } from '@libp2p/interface'
import type { SwarmLibp2p } from './node.js'
import type { SwarmTopics } from './topics.js'
import { decodeMessage, encodeMessage, type GossipMessage } from './messages.js'
import { PayloadError } from '../util/errors.js'
import type { BanList } from './banlist.js'
import type { Logger } from '../util/log.js'
import type { TransferMeter } from '../api/metrics.js'
import { MemberView } from './members.js'

export type GossipHandler = (msg: GossipMessage, from: string) => void

/**
 * Gossip for one swarm: validation happens in gossipsub's topic validator, so a malformed
 * message is rejected (lowering the sender's score) before it is delivered or forwarded.
 */
export class SwarmGossip {
  readonly rejected = new Map<string, number>()
  private handler: GossipHandler = () => {}
  private joined: () => void = () => {}
  private newMember: () => void = () => {}
  private readonly view: MemberView
  /** Counts gossip bytes by message type, when set (the daemon's metrics). */
  meter?: TransferMeter

  constructor(
    private readonly node: SwarmLibp2p,
    private readonly topics: SwarmTopics,
    private readonly swarmId: string,
    private readonly log: Logger,
    /** If set, only messages authored by these peers are accepted (relayed ones included). */
    private readonly authors?: ReadonlySet<string>,
    private readonly bans?: BanList,
    /** How long a far member counts after its last message (see MemberView). */
    memberTtlMs = 120_000,
  ) {
    this.view = new MemberView(memberTtlMs)
  }

  start(handler: GossipHandler): void {
    this.handler = handler
    const pubsub = this.node.services.pubsub
    for (const topic of [this.topics.announce, this.topics.vote]) {
      pubsub.topicValidators.set(topic, (peer: PeerId, msg: Message) => this.validate(topic, peer, msg))
      pubsub.subscribe(topic)
    }
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscription)
    this.node.addEventListener('peer:disconnect', this.onDisconnect)
  }

  /** Called when a peer subscribes to our announce topic (a new or returning swarm member). */
  onJoin(cb: () => void): void {
    this.joined = cb
  }

  /** Called when a member not known before is heard (a direct peer, or the author of relayed gossip). */
  onNewMember(cb: () => void): void {
    this.newMember = cb
  }

  stop(): void {
    const pubsub = this.node.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    this.node.removeEventListener('peer:disconnect', this.onDisconnect)
    for (const topic of [this.topics.announce, this.topics.vote]) {
      pubsub.unsubscribe(topic)
      pubsub.topicValidators.delete(topic)
    }
  }

  async publish(msg: GossipMessage): Promise<number> {
    const topic = msg.type === 'announce' ? this.topics.announce : this.topics.vote
    const data = encodeMessage(msg)
    const res = await this.node.services.pubsub.publish(topic, data)
    this.meter?.sent(msg.type, data.length * res.recipients.length)
    return res.recipients.length
  }

  /** The swarm members we can hear (not us): peers subscribed to our topic, and authors of recent gossip relayed by them. */
  members(): string[] {
    return this.view.list(this.node.services.pubsub.getSubscribers(this.topics.announce).map((p) => p.toString()))
  }

  private validate(topic: string, peer: PeerId, msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') return this.reject('unsigned', topic, peer)
    if (this.authors && !this.authors.has(msg.from.toString())) {
      this.log.warn({ from: msg.from.toString(), topic }, 'rejected gossip from a peer outside the allowlist')
      return this.reject('not-allowed', topic, peer)
    }
    try {
      const m = decodeMessage(msg.data, this.swarmId)
      const expected = m.type === 'announce' ? this.topics.announce : this.topics.vote
      if (topic !== expected) return this.reject('wrong-topic', topic, peer)
      return TopicValidatorResult.Accept
    } catch (err) {
      const reason = err instanceof PayloadError ? err.reason : 'invalid'
      this.log.warn({ from: msg.from.toString(), topic, reason, err: (err as Error).message }, 'rejected gossip message')
      return this.reject(reason, topic, peer)
    }
  }

  /** Reject (gossipsub lowers the forwarder's score); a repeated offender is cut off and banned. */
  private reject(reason: string, _topic: string, peer: PeerId): TopicValidatorResult {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1)
    if (this.bans?.offend(peer.toString())) {
      this.log.warn({ peer: peer.toString(), reason }, 'disconnecting and banning a peer that keeps sending invalid messages')
      void this.node.hangUp(peer).catch(() => {})
    }
    return TopicValidatorResult.Reject
  }

  private readonly onSubscription = (evt: CustomEvent<SubscriptionChangeData>): void => {
    const change = evt.detail.subscriptions.find((s) => s.topic === this.topics.announce)
    if (!change) return
    if (change.subscribe) {
      this.joined()
      this.newMember()
    } else this.view.forget(evt.detail.peerId.toString())
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.view.forget(evt.detail.toString())
  }

  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== this.topics.announce && msg.topic !== this.topics.vote) return
    if (msg.type !== 'signed') return
    try {
      const m = decodeMessage(msg.data, this.swarmId)
      this.meter?.received(m.type, msg.data.length)
      const from = msg.from.toString()
      if (from !== this.node.peerId.toString() && this.view.heardFrom(from)) this.newMember()
      this.handler(m, from)
    } catch (err) {
      this.log.error({ err }, 'gossip handler failed')
    }
  }
}
