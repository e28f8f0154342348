/**
 * Names scoped by the swarm id: nodes of different swarms (or different settings) share no
 * topic and no protocol, so they cannot mix messages even on the same network.
 */
export interface SwarmTopics {
  announce: string
  vote: string
  fetchProtocol: string
}

export function swarmTopics(swarmId: string): SwarmTopics {
  return {
    announce: `/coldfusion/3/${swarmId}/announce/json`,
    vote: `/coldfusion/3/${swarmId}/vote/json`,
    fetchProtocol: `/coldfusion/1/${swarmId.slice(0, 32)}/fetch/3.0.0`,
  }
}
