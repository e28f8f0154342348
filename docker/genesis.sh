#!/bin/sh
# Create the swarm definition the compose swarm shares (called by the first node that starts).
# swarm create writes atomically: the other nodes never see a half-written file.
set -eu
SHARED=${SHARED_DIR:-/shared}
if [ ! -s "$SHARED/swarm.json" ]; then
  coldfusiond swarm create --out "$SHARED/swarm.json" --name compose-swarm \
    --min-contributors "${MIN_CONTRIBUTORS:-2}" --steps "${STEPS:-100}" \
    --collect-timeout "${COLLECT_TIMEOUT:-90}" --vote-timeout "${VOTE_TIMEOUT:-15}" >/dev/null
fi
echo "swarm definition: $SHARED/swarm.json"
