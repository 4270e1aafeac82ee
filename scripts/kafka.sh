#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft), or a three-node cluster, from Maven Central jars,
# without Docker, and gives access to Kafka's console tools.
#
#   scripts/kafka.sh fetch                       resolve the jars once (cached in ~/.m2)
#   scripts/kafka.sh start [--dir D] [--port P] [--host A] [--secure]
#                                                start a broker in the background, print its address;
#                                                --host: the local address clients reach it at
#                                                (127.0.0.1; another one for clients in a network
#                                                namespace); --secure adds SASL_SSL, SSL (client
#                                                certificates) and SASL_PLAINTEXT listeners, see
#                                                D/secure.env
#   scripts/kafka.sh stop  [--dir D]             stop it (by pid) and wait until it is gone
#   scripts/kafka.sh status [--dir D]            print the address if it runs, exit 1 if not
#   scripts/kafka.sh bootstrap [--dir D]         print the address of a started broker
#   scripts/kafka.sh cluster start [--dir D] [--nodes N]
#                                                N KRaft nodes (3), each broker and controller,
#                                                replication N, min.insync.replicas N-1, topic
#                                                auto-creation and unclean election off; prints
#                                                the bootstrap list (nodes in D/node-1 ...)
#   scripts/kafka.sh cluster stop [--dir D]      stop every node
#   scripts/kafka.sh node stop|kill|start I [--dir D]
#                                                node I of a cluster: SIGTERM (controlled
#                                                shutdown), SIGKILL, or start again on its data
#   scripts/kafka.sh leader TOPIC PARTITION [--dir D]      the node leading a partition
#   scripts/kafka.sh group-coordinator GROUP [--dir D]     the node coordinating a group
#   scripts/kafka.sh txn-coordinator TRANSACTIONAL_ID [--dir D]
#                                                the node coordinating a transactional id
#   scripts/kafka.sh topics ...                  kafka-topics       (org.apache.kafka.tools.TopicCommand)
#   scripts/kafka.sh console-consumer ...        kafka-console-consumer
#   scripts/kafka.sh console-producer ...        kafka-console-producer
#   scripts/kafka.sh consumer-groups ...         kafka-consumer-groups
#   scripts/kafka.sh configs ...                 kafka-configs      (client quotas, topic configs)
#
# A broker's state lives in a directory (default: $KAFKA_STATE_DIR or <repo>/.kafka/default):
# server.properties, data/, broker.log, pid and bootstrap. Starting again on an existing directory
# reuses its storage and ports, so a broker can be restarted with its data.
#
# The broker keeps Kafka's stock topic settings (auto.create.topics.enable=true,
# num.partitions=1), as the official image and many users' clusters do: every test runs against
# them, so no client of the project may create a topic as a side effect of a metadata request.
set -euo pipefail

KAFKA_VERSION=4.3.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sensor-pipeline/kafka-$KAFKA_VERSION"
CLASSPATH_FILE="$CACHE/classpath.txt"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Resolves the broker and tools jars with Maven and records their classpath. Later calls are
# offline: the classpath is reused while every jar on it is still in the local repository.
fetch() {
  if [[ -s "$CLASSPATH_FILE" ]] && classpath_complete; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apache Kafka $KAFKA_VERSION"
  command -v java >/dev/null || die "Java 17 or newer is needed to run Apache Kafka $KAFKA_VERSION"
  mkdir -p "$CACHE"
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central (first run only)"
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:build-classpath \
    -Dkafka.version="$KAFKA_VERSION" -Dmdep.outputFile="$CLASSPATH_FILE.tmp" >&2 \
    || die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  mv "$CLASSPATH_FILE.tmp" "$CLASSPATH_FILE"
  classpath_complete || die "resolved classpath lists missing jars: $CLASSPATH_FILE"
  log "Apache Kafka $KAFKA_VERSION ready ($(tr ':' '\n' <"$CLASSPATH_FILE" | wc -l) jars)"
}

classpath_complete() {
  local jar
  while IFS= read -r jar; do
    [[ -f "$jar" ]] || return 1
  done < <(tr ':' '\n' <"$CLASSPATH_FILE")
}

free_port() {
  python3 "$ROOT/scripts/free-port.py"
}

port_open() {
  (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# Options shared by the state-directory commands.
DIR="${KAFKA_STATE_DIR:-$ROOT/.kafka/default}"
PORT=""
HOST=127.0.0.1
CONTROLLER_PORT=""
SECURE=""
parse_dir_opts() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) DIR="$2"; shift 2 ;;
      --port) PORT="$2"; shift 2 ;;
      --host) HOST="$2"; shift 2 ;;
      --controller-port) CONTROLLER_PORT="$2"; shift 2 ;;
      --secure) SECURE=1; shift ;;
      *) die "unknown option: $1" ;;
    esac
  done
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
}

running_pid() {
  [[ -f "$DIR/pid" ]] || return 1
  local pid
  pid="$(cat "$DIR/pid")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# The settings every node has, single or in a cluster: node ID, client port, controller port,
# quorum voters, data directory, then the replication and minimum in-sync replicas of the
# internal topics (offsets, transaction state).
server_properties() {
  local id="$1" port="$2" controller="$3" voters="$4" data="$5" replication="$6" min_isr="$7"
  cat <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://$HOST:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=1048577
EOF
}

write_config() {
  [[ -n "$PORT" && "$PORT" != 0 ]] || PORT="$(free_port)"
  [[ -n "$CONTROLLER_PORT" && "$CONTROLLER_PORT" != 0 ]] || CONTROLLER_PORT="$(free_port)"
  server_properties 1 "$PORT" "$CONTROLLER_PORT" "1@127.0.0.1:$CONTROLLER_PORT" "$DIR/data" 1 1 \
    >"$DIR/server.properties"
  # A single node is its own controller, with no other broker to hand its partitions to: on a
  # machine starved of CPU (the test suite with a three-node cluster beside it) it missed its
  # 9 s heartbeat to itself, fenced itself, and creating a topic failed with "All brokers are
  # currently fenced". A longer session costs a single node nothing.
  echo "broker.session.timeout.ms=30000" >>"$DIR/server.properties"
  write_log_config
  echo "$HOST:$PORT" >"$DIR/bootstrap"
  [[ -z "$SECURE" ]] || write_secure_config
}

# The broker's logging, into $DIR/broker.log.
write_log_config() {
  cat >"$DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $DIR/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
}

# A throwaway CA, a broker certificate for 127.0.0.1 (only: "localhost" is a name mismatch), a
# client certificate, a second CA the broker does not use (for "untrusted" tests), and a SCRAM
# and PLAIN user `pipeline` with a random password. The plaintext listener stays, for the broker
# itself and for test harnesses; clients under test use the secured ones listed in D/secure.env.
write_secure_config() {
  command -v openssl >/dev/null || die "openssl is needed for --secure"
  local tls="$DIR/tls" sasl_ssl ssl sasl_plain password
  mkdir -p "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sensor-pipeline test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=some other CA" \
      -keyout other-ca.key -out other-ca.pem 2>/dev/null
    for name in broker client; do
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1\n' >"$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    done
    # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the certificate chain.
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
    cat broker.pk8 broker.crt ca.pem >broker.pem
  ) || die "making the test certificates failed"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  echo -n "$password" >"$tls/password"
  sasl_ssl="$(free_port)"; ssl="$(free_port)"; sasl_plain="$(free_port)"
  local plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required user_pipeline=\"$password\";"
  local scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  sed -i \
    -e "s|^listeners=.*|&,SASL_SSL://127.0.0.1:$sasl_ssl,SSL://127.0.0.1:$ssl,SASL_PLAINTEXT://127.0.0.1:$sasl_plain|" \
    -e "s|^advertised.listeners=.*|&,SASL_SSL://127.0.0.1:$sasl_ssl,SSL://127.0.0.1:$ssl,SASL_PLAINTEXT://127.0.0.1:$sasl_plain|" \
    -e "s|^listener.security.protocol.map=.*|&,SASL_SSL:SASL_SSL,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT|" \
    "$DIR/server.properties"
  cat >>"$DIR/server.properties" <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker.pem
listener.name.ssl.ssl.client.auth=required
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$tls/ca.pem
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram_jaas
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_jaas
EOF
  cat >"$DIR/secure.env" <<EOF
SASL_SSL_BOOTSTRAP=127.0.0.1:$sasl_ssl
SSL_BOOTSTRAP=127.0.0.1:$ssl
SASL_PLAINTEXT_BOOTSTRAP=127.0.0.1:$sasl_plain
SASL_USERNAME=pipeline
SASL_PASSWORD_FILE=$tls/password
CA_FILE=$tls/ca.pem
OTHER_CA_FILE=$tls/other-ca.pem
CLIENT_CERTIFICATE_FILE=$tls/client.crt
CLIENT_KEY_FILE=$tls/client.key
EOF
}


# The broker's JVM: about 512 MB of heap is plenty for a single-node test broker.
# KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS mean what they mean to Kafka's own scripts
# (kafka-run-class.sh); scripts/test.sh sets lean ones for its many short-lived brokers.
broker_java() {
  local heap perf
  read -ra heap <<<"${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
  read -ra perf <<<"${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20}"
  BROKER_JAVA=(java "${heap[@]}" "${perf[@]}" -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$(cat "$CLASSPATH_FILE")")
}

start() {
  parse_dir_opts "$@"
  if pid="$(running_pid)"; then
    log "already running (pid $pid) in $DIR"
    cat "$DIR/bootstrap"
    return 0
  fi
  fetch
  if [[ ! -f "$DIR/server.properties" ]]; then
    write_config
  elif [[ -n "$PORT" ]] && ! grep -q "PLAINTEXT://$HOST:$PORT," "$DIR/server.properties"; then
    die "$DIR was set up for another port ($(cat "$DIR/bootstrap")); use a new --dir"
  fi
  local address
  address="$(cat "$DIR/bootstrap")"
  broker_java
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    log "formatting storage in $DIR/data"
    # A cluster's nodes share the id their cluster directory gave them.
    local cluster_id
    if [[ -f "$DIR/cluster-id" ]]; then
      cluster_id="$(cat "$DIR/cluster-id")"
    else
      cluster_id="$(new_cluster_id)"
    fi
    # With --secure, the SCRAM user is created with the storage (KRaft has no ZooKeeper to add
    # it to later, and the broker must know it before the first client connects).
    local scram=()
    if [[ -f "$DIR/tls/password" ]]; then
      local password
      password="$(cat "$DIR/tls/password")"
      scram=(--add-scram "SCRAM-SHA-256=[name=pipeline,password=$password]"
        --add-scram "SCRAM-SHA-512=[name=pipeline,password=$password]")
    fi
    "${BROKER_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties" \
      "${scram[@]}" >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; die "storage format failed"; }
  fi
  log "starting Apache Kafka $KAFKA_VERSION on $address (logs: $DIR/broker.log)"
  # setsid: the broker must not receive the terminal's Ctrl-C meant for a foreground command.
  setsid "${BROKER_JAVA[@]}" kafka.Kafka "$DIR/server.properties" \
    >"$DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$DIR/pid"
  # A cluster's first start launches every node before waiting: none starts without a quorum.
  [[ -n "${NO_WAIT:-}" ]] && return 0
  wait_started
  cat "$DIR/bootstrap"
}

# 22 characters of URL-safe base64, as Kafka's cluster ids are; like Kafka's own
# Uuid.randomUuid(), never one that starts with "-", which the storage tool's argument parser
# reads as an option (about one random id in 64 did, and failed the start).
new_cluster_id() {
  python3 -c '
import base64, uuid
while True:
    i = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    if not i.startswith("-"):
        print(i)
        break
'
}

# Waits until the broker in $DIR answers and says it started.
wait_started() {
  local host port
  host="$(cut -d: -f1 <"$DIR/bootstrap")"
  port="$(cut -d: -f2 <"$DIR/bootstrap")"
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$port" "$host" && grep -q "Kafka Server started" "$DIR/broker.log" 2>/dev/null; do
    if ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
      tail -20 "$DIR/stdout.log" "$DIR/broker.log" >&2 2>/dev/null || true
      die "the broker exited during start-up"
    fi
    if ((SECONDS > deadline)); then
      stop_dir
      die "the broker did not answer within ${START_TIMEOUT}s"
    fi
    sleep 0.3
  done
  log "broker up (pid $(cat "$DIR/pid"))"
}

stop_dir() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$DIR/pid"
    return 0
  fi
  log "stopping broker pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/pid"; return 0; }
    sleep 0.2
  done
  log "broker did not stop within 30s, killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/pid"
}

stop() {
  parse_dir_opts "$@"
  stop_dir
}

status() {
  parse_dir_opts "$@"
  if pid="$(running_pid)"; then
    echo "$(cat "$DIR/bootstrap") (pid $pid)"
  else
    echo "not running ($DIR)"
    return 1
  fi
}

bootstrap() {
  parse_dir_opts "$@"
  if [[ -f "$DIR/nodes" ]]; then
    cat "$DIR/bootstrap"   # a cluster: its nodes' list, whichever are up
    return 0
  fi
  running_pid >/dev/null || die "no broker running in $DIR; start one with: scripts/kafka.sh start"
  cat "$DIR/bootstrap"
}

# ---- A cluster: D/node-1 ... D/node-N, each a broker directory as above (so `start`, `stop` and
# the tools work on one node too), D/bootstrap listing them all.

cluster_opts() {
  NODES=3
  local args=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --nodes) NODES="$2"; shift 2 ;;
      *) args+=("$1"); shift ;;
    esac
  done
  parse_dir_opts "${args[@]}"
  CLUSTER="$DIR"
}

write_node_config() {
  local i="$1" port="$2" controller="$3" voters="$4" nodes="$5"
  local node="$CLUSTER/node-$i" min_isr=$((nodes > 1 ? nodes - 1 : 1))
  mkdir -p "$node"
  {
    server_properties "$i" "$port" "$controller" "$voters" "$node/data" "$nodes" "$min_isr"
    cat <<EOF
default.replication.factor=$nodes
min.insync.replicas=$min_isr
auto.create.topics.enable=false
unclean.leader.election.enable=false
EOF
  } >"$node/server.properties"
  (DIR="$node"; write_log_config)
  echo "127.0.0.1:$port" >"$node/bootstrap"
  cp "$CLUSTER/cluster-id" "$node/cluster-id"
}

cluster_start() {
  cluster_opts "$@"
  fetch
  if [[ ! -f "$CLUSTER/nodes" ]]; then
    local ports=() controllers=() voters="" i
    for ((i = 1; i <= NODES; i++)); do
      ports+=("$(free_port)")
      controllers+=("$(free_port)")
      voters+="${voters:+,}$i@127.0.0.1:${controllers[i - 1]}"
    done
    new_cluster_id >"$CLUSTER/cluster-id"
    for ((i = 1; i <= NODES; i++)); do
      write_node_config "$i" "${ports[i - 1]}" "${controllers[i - 1]}" "$voters" "$NODES"
    done
    local list=""
    for ((i = 1; i <= NODES; i++)); do list+="${list:+,}127.0.0.1:${ports[i - 1]}"; done
    echo "$list" >"$CLUSTER/bootstrap"
    echo "$NODES" >"$CLUSTER/nodes"
  fi
  NODES="$(cat "$CLUSTER/nodes")"
  local i
  for ((i = 1; i <= NODES; i++)); do
    (NO_WAIT=1 start --dir "$CLUSTER/node-$i")
  done
  for ((i = 1; i <= NODES; i++)); do
    (DIR="$CLUSTER/node-$i"; wait_started)
  done
  log "cluster up: $NODES nodes"
  cat "$CLUSTER/bootstrap"
}

cluster_stop() {
  cluster_opts "$@"
  local i nodes
  nodes="$(cat "$CLUSTER/nodes" 2>/dev/null || echo 0)"
  # Side by side: the last nodes' controlled shutdowns wait on each other otherwise.
  for ((i = 1; i <= nodes; i++)); do
    (DIR="$CLUSTER/node-$i"; stop_dir) &
  done
  wait
}

node_cmd() {
  local action="${1:-}" i="${2:-}"
  [[ -n "$action" && -n "$i" ]] || die "usage: node stop|kill|start I [--dir D]"
  shift 2
  cluster_opts "$@"
  local node="$CLUSTER/node-$i"
  [[ -f "$node/server.properties" ]] || die "no node $i in $CLUSTER"
  case "$action" in
    stop) DIR="$node" stop_dir ;;
    kill)
      local pid
      if pid="$(DIR="$node" running_pid)"; then
        log "killing node $i (pid $pid)"
        kill -KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      fi
      rm -f "$node/pid"
      ;;
    start) start --dir "$node" >/dev/null ;;
    *) die "node: unknown action $action (stop, kill or start)" ;;
  esac
}

# The bootstrap list of a cluster, or a single broker's address.
any_bootstrap() {
  parse_dir_opts "$@"
  [[ -f "$DIR/bootstrap" ]] || die "no broker or cluster in $DIR"
  cat "$DIR/bootstrap"
}

leader() {
  local topic="${1:-}" partition="${2:-}"
  [[ -n "$topic" && -n "$partition" ]] || die "usage: leader TOPIC PARTITION [--dir D]"
  shift 2
  local servers
  servers="$(any_bootstrap "$@")"
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$servers" --describe --topic "$topic" \
    | awk -v p="$partition" '{
        for (i = 1; i < NF; i++) {
          if ($i == "Partition:") part = $(i + 1)
          if ($i == "Leader:" && part == p) { print $(i + 1); exit }
        }
      }'
}

group_coordinator() {
  local group="${1:-}"
  [[ -n "$group" ]] || die "usage: group-coordinator GROUP [--dir D]"
  shift
  local servers
  servers="$(any_bootstrap "$@")"
  tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$servers" \
    --describe --group "$group" --state | grep -o '([0-9]*)' | head -1 | tr -d '()'
}

txn_coordinator() {
  local id="${1:-}"
  [[ -n "$id" ]] || die "usage: txn-coordinator TRANSACTIONAL_ID [--dir D]"
  shift
  local servers
  servers="$(any_bootstrap "$@")"
  tool org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$servers" \
    describe --transactional-id "$id" | awk 'NR == 2 { print $1 }'
}

# Console tools start a fresh JVM each time: the client flags keep that start short.
tool() {
  local class="$1"
  shift
  fetch
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.level=WARN -cp "$(cat "$CLASSPATH_FILE")" "$class" "$@"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status "$@" ;;
  bootstrap) bootstrap "$@" ;;
  topics) tool org.apache.kafka.tools.TopicCommand "$@" ;;
  console-consumer) tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
  console-producer) tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
  consumer-groups) tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  configs) tool kafka.admin.ConfigCommand "$@" ;;
  cluster)
    sub="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$sub" in
      start) cluster_start "$@" ;;
      stop) cluster_stop "$@" ;;
      *) die "cluster: start or stop" ;;
    esac
    ;;
  node) node_cmd "$@" ;;
  leader) leader "$@" ;;
  group-coordinator) group_coordinator "$@" ;;
  txn-coordinator) txn_coordinator "$@" ;;
  *)
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [[ -z "$cmd" || "$cmd" == help || "$cmd" == --help ]] || exit 2
    ;;
esac
