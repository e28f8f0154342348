#!/bin/sh
# One node of the compose mesh: init its home (first start only), publish its peer id on the shared
# volume, wait for the other nodes' ids, then start with all of them as bootstrap peers.
set -eu
DATA=${DATA_DIR:-/data}
SHARED=${SHARED_DIR:-/shared}
: "${NODE_NAME:?NODE_NAME must be set}"
if [ ! -f "$DATA/identity.key" ]; then
  coldfusiond init --home "$DATA" --swarm "$SHARED/swarm.json" --demo-task "${TASK:-sentiment}" \
    --listen /ip4/0.0.0.0/tcp/4001 --no-mdns --api-port 8080
fi
coldfusiond status --home "$DATA" --json | sed -n 's/.*"peerId": "\([^"]*\)".*/\1/p' > "$SHARED/$NODE_NAME.peer"
BOOT=""
for peer in ${PEERS:-}; do
  while [ ! -s "$SHARED/$peer.peer" ]; do sleep 1; done
  BOOT="$BOOT --bootstrap /dns4/$peer/tcp/4001/p2p/$(cat "$SHARED/$peer.peer")"
done
# shellcheck disable=SC2086
exec coldfusiond start --home "$DATA" $BOOT --api-host 0.0.0.0 --rounds "${ROUNDS:-3}"
