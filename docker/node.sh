#!/bin/sh
# One node of the compose swarm. Every replica runs this same script, so the node count is just
# the service's replica count. On its first start a node creates its home (the lowest free slot
# picks its demo task, in the order `coldfusiond mesh` uses); on every start it registers in the
# roster on the shared volume (bootstrap address, API URL and token, which the checker reads),
# waits until $NODES nodes are registered, and starts with all the others as bootstrap peers.
set -eu
DATA=${DATA_DIR:-/data}
SHARED=${SHARED_DIR:-/shared}
ROSTER=$SHARED/roster
NODES=${NODES:-3}
P2P_PORT=${P2P_PORT:-4001}
API_PORT=${API_PORT:-8080}
HOST=${ADVERTISE_HOST:-$(hostname -i | awk '{print $1}')}
mkdir -p "$ROSTER" "$SHARED/slots" "$DATA"

# The swarm definition: restored from this node's home if it has one (a restart), otherwise made
# once by whichever node takes the lock.
if [ ! -s "$SHARED/swarm.json" ]; then
  if [ -s "$DATA/swarm.json" ]; then
    cp "$DATA/swarm.json" "$SHARED/.swarm.json.$$" && mv "$SHARED/.swarm.json.$$" "$SHARED/swarm.json"
  elif mkdir "$SHARED/genesis.lock" 2>/dev/null; then
    sh "$(dirname "$0")/genesis.sh"
  fi
fi
while [ ! -s "$SHARED/swarm.json" ]; do sleep 1; done

if [ ! -f "$DATA/identity.key" ]; then
  slot=0
  while ! mkdir "$SHARED/slots/$slot" 2>/dev/null; do slot=$((slot + 1)); done
  set -- sentiment topic subjectivity question
  shift $((slot % 4))
  # --api-host 0.0.0.0 makes init write a bearer token (api-token): the API is reachable on the network.
  coldfusiond init --home "$DATA" --swarm "$SHARED/swarm.json" --demo-task "${TASK:-$1}" \
    --listen "/ip4/0.0.0.0/tcp/$P2P_PORT" --no-mdns --api-host 0.0.0.0 --api-port "$API_PORT" >/dev/null
fi

PEER=$(coldfusiond status --home "$DATA" --json | sed -n 's/.*"peerId": "\([^"]*\)".*/\1/p')
ENTRY=$ROSTER/$PEER
mkdir -p "$ENTRY"
# Each file is renamed into place, so a reader never sees it half-written; addr comes last and
# marks the entry complete.
put() { cat > "$ENTRY/.$1.tmp" && mv "$ENTRY/.$1.tmp" "$ENTRY/$1"; }
put token < "$DATA/api-token"
echo "http://$HOST:$API_PORT" | put api
echo "/ip4/$HOST/tcp/$P2P_PORT/p2p/$PEER" | put addr
echo "registered $PEER at $HOST (roster: $ROSTER)"

waited=0
while [ "$(ls "$ROSTER"/*/addr 2>/dev/null | wc -l)" -lt "$NODES" ] && [ "$waited" -lt "${WAIT_SEC:-300}" ]; do
  sleep 1
  waited=$((waited + 1))
done
BOOT=""
for f in "$ROSTER"/*/addr; do
  [ "$f" = "$ENTRY/addr" ] || BOOT="$BOOT --bootstrap $(cat "$f")"
done
ROUNDS_FLAG=""
[ "${ROUNDS:-0}" -gt 0 ] && ROUNDS_FLAG="--rounds $ROUNDS"
BACKEND_FLAG=""
[ -n "${BACKEND:-}" ] && BACKEND_FLAG="--backend $BACKEND"
# shellcheck disable=SC2086
exec coldfusiond start --home "$DATA" $BOOT $ROUNDS_FLAG $BACKEND_FLAG
