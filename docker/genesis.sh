#!/bin/sh
# Create the swarm definition every node of the compose mesh shares (once).
set -eu
SHARED=${SHARED_DIR:-/shared}
if [ ! -s "$SHARED/swarm.json" ]; then
  coldfusiond swarm create --out "$SHARED/swarm.json" --name compose-mesh \
    --min-contributors "${MIN_CONTRIBUTORS:-2}" --collect-timeout 90 --vote-timeout 15
fi
echo "swarm definition: $SHARED/swarm.json"
