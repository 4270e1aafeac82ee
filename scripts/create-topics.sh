#!/usr/bin/env bash
# Creates the pipeline's topics if they do not exist. The single source of the topic layout:
# docker compose's `topics` service runs it with the image's kafka-topics.sh, and the native
# end-to-end tests run it with scripts/kafka.sh's.
#
#   create-topics.sh BOOTSTRAP
#
# Environment (defaults in brackets):
#   KAFKA_TOPICS_CMD   kafka-topics command   [/opt/kafka/bin/kafka-topics.sh]
#   INPUT_TOPIC        readings               [temperature-readings]
#   OUTPUT_TOPIC       alerts and averages    [temperature-events]
#   DLQ_TOPIC          dead letters           [temperature-readings-dlq]
#   PARTITIONS         partitions of the input and output topics [6]
#   REPLICATION        replication factor     [the cluster's default.replication.factor]
#   MIN_INSYNC_REPLICAS  min.insync.replicas of each topic [the cluster's min.insync.replicas]
#   LAYOUT             which topics: any of "temperature", "logs", "results" [temperature logs results]
#   LOG_TOPIC, LOG_DLQ_TOPIC, REQUESTS_TOPIC, COUNTS_TOPIC
#                      the network-log pipeline's topics
#                      [access-logs, access-logs-dlq, ip-count-requests, ip-counts]
#   SINK_DLQ_TOPIC     pg-sink's dead letters (results) [pg-sink-dlq]
set -euo pipefail

BOOTSTRAP="${1:?usage: create-topics.sh BOOTSTRAP}"
read -r -a TOPICS_CMD <<<"${KAFKA_TOPICS_CMD:-/opt/kafka/bin/kafka-topics.sh}"
INPUT_TOPIC="${INPUT_TOPIC:-temperature-readings}"
OUTPUT_TOPIC="${OUTPUT_TOPIC:-temperature-events}"
DLQ_TOPIC="${DLQ_TOPIC:-temperature-readings-dlq}"
PARTITIONS="${PARTITIONS:-6}"
REPLICATION="${REPLICATION:-}"
MIN_INSYNC_REPLICAS="${MIN_INSYNC_REPLICAS:-}"
LAYOUT="${LAYOUT:-temperature logs results}"

create() {
  local topic="$1" partitions="$2"
  shift 2
  local settings=()
  [[ -z "$REPLICATION" ]] || settings+=(--replication-factor "$REPLICATION")
  [[ -z "$MIN_INSYNC_REPLICAS" ]] || settings+=(--config "min.insync.replicas=$MIN_INSYNC_REPLICAS")
  echo "create-topics: $topic ($partitions partitions${REPLICATION:+, replication $REPLICATION})" >&2
  local attempt output
  for attempt in 1 2 3 4 5 6; do
    if output="$("${TOPICS_CMD[@]}" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
      --topic "$topic" --partitions "$partitions" "${settings[@]}" "$@" 2>&1)"; then
      echo "$output" >&2
      return 0
    fi
    echo "$output" >&2
    # Passing states of a cluster: every broker fenced (a node just started, or one too
    # starved of CPU to heartbeat its controller: seen on a loaded 2-core machine), the
    # controller moving, a timeout. --if-not-exists makes another try safe. Anything else (a
    # bad setting, a replication factor larger than the cluster) fails at once.
    grep -qE 'fenced|NotController|TimeoutException|Timed out' <<<"$output" || return 1
    [[ $attempt -lt 6 ]] || break
    echo "create-topics: $topic: the cluster is not ready; trying again in 5 s" >&2
    sleep 5
  done
  return 1
}

# Each kafka-topics call starts a JVM: run them side by side.
pids=()
if [[ "$LAYOUT" == *temperature* ]]; then
  create "$INPUT_TOPIC" "$PARTITIONS" & pids+=($!)
  create "$OUTPUT_TOPIC" "$PARTITIONS" & pids+=($!)
  # Dead letters are rare and need no ordering: fewer partitions, kept longer (30 days).
  create "$DLQ_TOPIC" 3 --config retention.ms=2592000000 & pids+=($!)
fi
if [[ "$LAYOUT" == *logs* ]]; then
  create "${LOG_TOPIC:-access-logs}" "$PARTITIONS" & pids+=($!)
  create "${LOG_DLQ_TOPIC:-access-logs-dlq}" 3 --config retention.ms=2592000000 & pids+=($!)
  # The IP-count job's repartition topic (keyed by address) and its final counts.
  create "${REQUESTS_TOPIC:-ip-count-requests}" "$PARTITIONS" & pids+=($!)
  create "${COUNTS_TOPIC:-ip-counts}" "$PARTITIONS" & pids+=($!)
fi
if [[ "$LAYOUT" == *results* ]]; then
  create "${SINK_DLQ_TOPIC:-pg-sink-dlq}" 3 --config retention.ms=2592000000 & pids+=($!)
fi
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[[ $status -eq 0 ]] || { echo "create-topics: failed" >&2; exit 1; }
echo "create-topics: done" >&2
