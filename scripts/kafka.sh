#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1
# for tests and local runs, without Docker and without a Kafka distribution tarball:
# the broker jars and their runtime dependencies are resolved from Maven Central with
# `mvn` into a cache and started with plain `java`.
#
# Usage: scripts/kafka.sh fetch|start [--security sasl_ssl]|stop|status|env
#   fetch   resolve the jars into the cache (no-op when already cached)
#   start   fetch, format storage once, start the broker in the background, wait until it
#           answers a metadata request, print KAFKA_BOOTSTRAP=127.0.0.1:<port>
#           --security sasl_ssl (or KAFKA_SECURITY=sasl_ssl): also listen with SASL_SSL (SCRAM-SHA-512)
#           on KAFKA_SASL_SSL_PORT, with a throwaway CA + broker certificate (PEM) and one SCRAM user
#           whose random password is kept in the data dir (all generated once per data dir); prints
#           KAFKA_BOOTSTRAP_SASL_SSL=, KAFKA_CA_FILE=, KAFKA_SASL_MECHANISM=, KAFKA_SASL_USERNAME=,
#           KAFKA_SASL_PASSWORD= lines as well. The PLAINTEXT listener stays (inter-broker, tooling).
#   stop    SIGTERM, wait (bounded), then SIGKILL
#   status  exit 0 when the broker of KAFKA_DATA_DIR is running, 1 otherwise
#   env     print the effective settings as KEY=value lines (eval-able)
#
# Environment:
#   LLMPULSE_CACHE_DIR      cache root (default ~/.cache/llmpulse)
#   KAFKA_PORT              PLAINTEXT listener port (default 9092)
#   KAFKA_CONTROLLER_PORT   CONTROLLER listener port (default 9093)
#   KAFKA_SASL_SSL_PORT     SASL_SSL listener port with --security sasl_ssl (default 9094)
#   KAFKA_SECURITY          "sasl_ssl" is the same as --security sasl_ssl (default: plaintext only)
#   KAFKA_DATA_DIR          data dir: config, pid, logs, log.dirs (default $LLMPULSE_CACHE_DIR/kafka-data)
#   KAFKA_HEAP              JVM heap flags (default "-Xmx512m -Xms256m")
#   KAFKA_START_TIMEOUT     seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT      seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_WATCH_PID         optional: stop the broker when this process exits (used by tests)
#   JAVA                    java binary (default: java on PATH, or $JAVA_HOME/bin/java)
#   MVN                     mvn binary (default: mvn on PATH)
set -euo pipefail

KAFKA_VERSION="4.3.1"
SCALA_BINARY_VERSION="2.13"
# kafka-server pulls in log4j-core at this version; Kafka's own distribution adds the
# slf4j-1.7 -> log4j2 binding (log4j-slf4j-impl), which no Maven artifact depends on.
LOG4J_VERSION="2.25.4"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

CACHE_DIR="${LLMPULSE_CACHE_DIR:-$HOME/.cache/llmpulse}"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_MARKER="$KAFKA_HOME/.resolved"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$CACHE_DIR/kafka-data}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-9094}"
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
KAFKA_SASL_MECHANISM="SCRAM-SHA-512"
KAFKA_SASL_USERNAME="llmpulse"
KAFKA_SASL_PASSWORD=""

PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
CONSOLE_LOG="$KAFKA_DATA_DIR/kafka.out"   # JVM stdout/stderr
SERVER_LOG="$KAFKA_DATA_DIR/server.log"   # log4j output (WARN and above)
SERVER_PROPS="$KAFKA_DATA_DIR/server.properties"
LOG4J_CONF="$KAFKA_DATA_DIR/log4j2.properties"
LOG_DIRS="$KAFKA_DATA_DIR/kraft-logs"
TLS_DIR="$KAFKA_DATA_DIR/tls"
CA_FILE="$TLS_DIR/ca.pem"
BROKER_PEM="$TLS_DIR/broker.pem"          # PKCS#8 key + certificate chain (ssl.keystore.type=PEM)
SASL_PASSWORD_FILE="$KAFKA_DATA_DIR/sasl.password"
SCRAM_MARKER="$KAFKA_DATA_DIR/.scram-user"

die() { echo "kafka.sh: error: $*" >&2; exit 1; }
info() { echo "kafka.sh: $*" >&2; }

# Marker content: everything that decides what is in libs/. A change re-resolves.
marker_content() {
  printf 'kafka_%s:%s log4j:%s plugin:%s\n' "$SCALA_BINARY_VERSION" "$KAFKA_VERSION" "$LOG4J_VERSION" "$DEPENDENCY_PLUGIN"
}

find_java() {
  local java="${JAVA:-}"
  if [[ -z "$java" ]]; then
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
      java="$JAVA_HOME/bin/java"
    else
      java="$(command -v java || true)"
    fi
  fi
  [[ -n "$java" && -x "$java" ]] || die "java 17+ not found (install a JDK/JRE 17+, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA/JAVA_HOME)"
  local spec major
  spec="$({ "$java" -XshowSettings:properties -version 2>&1 || true; } | sed -n 's/^ *java\.specification\.version = //p' | head -n1)"
  major="${spec%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] || die "java 17+ not found: could not determine the version of $java"
  (( major >= 17 )) || die "java 17+ not found: $java is Java $spec (Kafka $KAFKA_VERSION needs 17+)"
  JAVA_BIN="$java"
}

find_python() {
  local cand
  for cand in "${LLMPULSE_PYTHON:-}" "$REPO_ROOT/.venv/bin/python" "$(command -v python3 || true)"; do
    if [[ -n "$cand" && -x "$cand" ]]; then PYTHON_BIN="$cand"; return 0; fi
  done
  die "python3 not found (needed for the readiness check and cluster id)"
}

cmd_fetch() {
  if [[ -f "$KAFKA_MARKER" && "$(cat "$KAFKA_MARKER")" == "$(marker_content)" ]] \
     && compgen -G "$KAFKA_LIBS/kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION}.jar" >/dev/null; then
    return 0
  fi
  mkdir -p "$KAFKA_HOME"
  # Serialise concurrent fetches (e.g. two test sessions starting at once).
  exec 8>"$KAFKA_HOME/.fetch.lock"
  flock -w 900 8 || die "timed out waiting for another 'kafka.sh fetch' (lock $KAFKA_HOME/.fetch.lock)"
  if [[ -f "$KAFKA_MARKER" && "$(cat "$KAFKA_MARKER")" == "$(marker_content)" ]]; then
    exec 8>&-
    return 0
  fi
  local mvn="${MVN:-$(command -v mvn || true)}"
  [[ -n "$mvn" && -x "$mvn" ]] || die "mvn not found (install Maven 3.6+, e.g. 'apt-get install maven', or set MVN)"
  find_java
  local work
  work="$(mktemp -d "$KAFKA_HOME/.resolve.XXXXXX")"
  cat >"$work/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>llmpulse.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_BINARY_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
  info "resolving org.apache.kafka:kafka_${SCALA_BINARY_VERSION}:${KAFKA_VERSION} and its runtime dependencies with mvn (first run only) ..."
  if ! "$mvn" -B -q -Dstyle.color=never -f "$work/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
         -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
    tail -n 40 "$work/mvn.log" >&2 || true
    die "mvn failed to resolve org.apache.kafka:kafka_${SCALA_BINARY_VERSION}:${KAFKA_VERSION} (full log: $work/mvn.log)"
  fi
  [[ -f "$work/libs/kafka_${SCALA_BINARY_VERSION}-${KAFKA_VERSION}.jar" ]] \
    || die "mvn failed to resolve org.apache.kafka:kafka_${SCALA_BINARY_VERSION}:${KAFKA_VERSION}: jar missing from $work/libs"
  rm -rf "$KAFKA_LIBS"
  mv "$work/libs" "$KAFKA_LIBS"
  rm -rf "$work"
  marker_content >"$KAFKA_MARKER"
  info "cached $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
  exec 8>&-
}

# pid of the running broker for KAFKA_DATA_DIR, or nothing. Checks the command line so a
# recycled pid is never mistaken for the broker.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SERVER_PROPS" || return 1
  echo "$pid"
}

sasl_ssl_enabled() { [[ "$KAFKA_SECURITY" == "sasl_ssl" ]]; }

# A throwaway CA and a broker certificate for 127.0.0.1/localhost, made once per data dir.
ensure_tls_material() {
  [[ -s "$CA_FILE" && -s "$BROKER_PEM" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (needed for --security sasl_ssl: apt-get install openssl)"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  local work="$TLS_DIR/.work"
  rm -rf "$work"; mkdir -p "$work"
  if ! {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=llmpulse test CA" \
      -keyout "$work/ca.key" -out "$work/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$work/broker.key" -out "$work/broker.csr" &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$work/ext.cnf" &&
    openssl x509 -req -in "$work/broker.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$work/ext.cnf" -out "$work/broker.crt" &&
    openssl pkcs8 -topk8 -nocrypt -in "$work/broker.key" -out "$work/broker.pk8"
  } >"$work/openssl.log" 2>&1; then
    cat "$work/openssl.log" >&2
    die "generating the test CA and broker certificate with openssl failed (see above)"
  fi
  (umask 077; cat "$work/broker.pk8" "$work/broker.crt" "$work/ca.pem" >"$BROKER_PEM")
  mv "$work/ca.pem" "$CA_FILE"
  rm -rf "$work"
}

ensure_sasl_password() {
  if [[ ! -s "$SASL_PASSWORD_FILE" ]]; then
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$SASL_PASSWORD_FILE")
  fi
  KAFKA_SASL_PASSWORD="$(cat "$SASL_PASSWORD_FILE")"
}

write_config() {
  mkdir -p "$KAFKA_DATA_DIR" "$LOG_DIRS"
  local listeners="PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}"
  local advertised="PLAINTEXT://127.0.0.1:${KAFKA_PORT}"
  local protocol_map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if sasl_ssl_enabled; then
    listeners="$listeners,SASL_SSL://127.0.0.1:${KAFKA_SASL_SSL_PORT}"
    advertised="$advertised,SASL_SSL://127.0.0.1:${KAFKA_SASL_SSL_PORT}"
    protocol_map="$protocol_map,SASL_SSL:SASL_SSL"
  fi
  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka.sh - edits are overwritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=${listeners}
advertised.listeners=${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=${protocol_map}
log.dirs=${LOG_DIRS}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# ~8 MiB messages must fit (tests send a 5 MiB message); 10 MiB leaves room for batch overhead.
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if sasl_ssl_enabled; then
    cat >>"$SERVER_PROPS" <<EOF
# SASL_SSL listener: TLS with the data dir's throwaway CA, SCRAM-SHA-512 users from the cluster metadata.
sasl.enabled.mechanisms=${KAFKA_SASL_MECHANISM}
listener.name.sasl_ssl.sasl.enabled.mechanisms=${KAFKA_SASL_MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=${BROKER_PEM}
listener.name.sasl_ssl.ssl.client.auth=none
EOF
  fi
  cat >"$LOG4J_CONF" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${SERVER_LOG}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
EOF
}

new_cluster_id() {
  # Same format as kafka.tools.StorageTool random-uuid (base64url, no padding, never
  # starting with '-'), without paying for a JVM start.
  "$PYTHON_BIN" - <<'EOF'
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
EOF
}

format_storage() {
  if [[ -f "$LOG_DIRS/meta.properties" ]]; then
    if sasl_ssl_enabled && [[ ! -f "$SCRAM_MARKER" ]]; then
      die "the data dir $KAFKA_DATA_DIR was formatted without the SCRAM user; use a fresh KAFKA_DATA_DIR for --security sasl_ssl"
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(new_cluster_id)"
  # SCRAM credentials live in the cluster metadata: created at format time, they exist before the
  # first client connects (the password is hex, so it needs no quoting in this syntax).
  local scram=()
  if sasl_ssl_enabled; then
    scram=(--add-scram "${KAFKA_SASL_MECHANISM}=[name=${KAFKA_SASL_USERNAME},password=${KAFKA_SASL_PASSWORD}]")
  fi
  if ! "$JAVA_BIN" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$KAFKA_LIBS/*" \
       kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$SERVER_PROPS" ${scram[@]+"${scram[@]}"} \
       >"$KAFKA_DATA_DIR/format.log" 2>&1; then
    cat "$KAFKA_DATA_DIR/format.log" >&2
    die "formatting the storage in $LOG_DIRS failed (see above)"
  fi
  if sasl_ssl_enabled; then
    echo "$KAFKA_SASL_USERNAME" >"$SCRAM_MARKER"
  fi
}

print_endpoints() {
  echo "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"
  if sasl_ssl_enabled; then
    echo "KAFKA_BOOTSTRAP_SASL_SSL=127.0.0.1:$KAFKA_SASL_SSL_PORT"
    echo "KAFKA_CA_FILE=$CA_FILE"
    echo "KAFKA_SASL_MECHANISM=$KAFKA_SASL_MECHANISM"
    echo "KAFKA_SASL_USERNAME=$KAFKA_SASL_USERNAME"
    echo "KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD"
  fi
}

# Exit 0 when something listens on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A real readiness check: send a Metadata request (v4) and require that the broker lists
# itself (KRaft only lists registered, unfenced brokers) and knows an active controller.
metadata_ready() {
  "$PYTHON_BIN" - "$KAFKA_PORT" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        client_id = b"llmpulse-kafka-sh"
        # RequestHeader v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
        # MetadataRequest v4: topics=null (-1), allow_auto_topic_creation=false
        body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
        s.sendall(struct.pack(">i", len(body)) + body)
        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf
        (size,) = struct.unpack(">i", read(4))
        data = read(size)
    off = 4  # correlation id
    off += 4  # throttle_time_ms
    (n_brokers,) = struct.unpack_from(">i", data, off); off += 4
    found = False
    for _ in range(n_brokers):
        (node_id,) = struct.unpack_from(">i", data, off); off += 4
        (hlen,) = struct.unpack_from(">h", data, off); off += 2 + hlen
        off += 4  # port
        (rlen,) = struct.unpack_from(">h", data, off); off += 2 + max(rlen, 0)
        found = found or node_id == 1
    (clen,) = struct.unpack_from(">h", data, off); off += 2 + max(clen, 0)
    (controller_id,) = struct.unpack_from(">i", data, off)
    sys.exit(0 if found and controller_id >= 0 else 1)
except Exception:
    sys.exit(1)
EOF
}

start_watchdog() {
  local watch="$1" java_pid="$2"
  [[ "$watch" =~ ^[0-9]+$ ]] || die "KAFKA_WATCH_PID must be a pid, got '$watch'"
  # Detached loop: when the watched process goes away, stop the broker (the normal
  # shutdown path), e.g. when a test session is killed before it could run its teardown.
  setsid nohup env KAFKA_WATCH_PID= KAFKA_DATA_DIR="$KAFKA_DATA_DIR" bash -c '
    watch="$1"; jpid="$2"; self="$3"; shift 3
    while kill -0 "$watch" 2>/dev/null && kill -0 "$jpid" 2>/dev/null; do sleep 1; done
    if kill -0 "$jpid" 2>/dev/null; then "$self" stop >/dev/null 2>&1 || true; fi
  ' kafka-watchdog "$watch" "$java_pid" "$SCRIPT_DIR/kafka.sh" </dev/null >/dev/null 2>&1 &
}

cmd_start() {
  while (( $# )); do
    case "$1" in
      --security) [[ $# -ge 2 ]] || die "--security needs a value (sasl_ssl)"; KAFKA_SECURITY="$2"; shift 2 ;;
      --security=*) KAFKA_SECURITY="${1#--security=}"; shift ;;
      *) die "unknown option for start: $1 (usage: start [--security sasl_ssl])" ;;
    esac
  done
  KAFKA_SECURITY="${KAFKA_SECURITY,,}"
  case "$KAFKA_SECURITY" in
    plaintext|sasl_ssl) ;;
    *) die "unsupported --security '$KAFKA_SECURITY' (supported: sasl_ssl; default plaintext)" ;;
  esac
  local pid
  if sasl_ssl_enabled; then
    mkdir -p "$KAFKA_DATA_DIR"
    ensure_sasl_password
  fi
  if pid="$(broker_pid)"; then
    if sasl_ssl_enabled && ! grep -q '^listener.name.sasl_ssl' "$SERVER_PROPS" 2>/dev/null; then
      die "the broker of $KAFKA_DATA_DIR is running without the SASL_SSL listener; stop it first"
    fi
    info "already running (pid $pid, data dir $KAFKA_DATA_DIR)"
    print_endpoints
    return 0
  fi
  find_java
  find_python
  cmd_fetch
  local ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
  if sasl_ssl_enabled; then
    ensure_tls_material
    ports+=("$KAFKA_SASL_SSL_PORT")
  fi
  local p
  for p in "${ports[@]}"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_SASL_SSL_PORT)"
    fi
  done
  write_config
  format_storage
  rm -f "$PID_FILE"
  : >"$CONSOLE_LOG"
  # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM flags
  setsid nohup "$JAVA_BIN" $KAFKA_HEAP \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -Dkafka.logs.dir="$KAFKA_DATA_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$SERVER_PROPS" \
    </dev/null >>"$CONSOLE_LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  if [[ -n "${KAFKA_WATCH_PID:-}" ]]; then
    start_watchdog "$KAFKA_WATCH_PID" "$pid"
  fi

  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      {
        echo "--- $CONSOLE_LOG (tail) ---"; tail -n 30 "$CONSOLE_LOG" 2>/dev/null || true
        echo "--- $SERVER_LOG (tail) ---"; tail -n 30 "$SERVER_LOG" 2>/dev/null || true
      } >&2
      die "the broker exited during startup (see the logs above)"
    fi
    if port_open "$KAFKA_PORT" && metadata_ready && { ! sasl_ssl_enabled || port_open "$KAFKA_SASL_SSL_PORT"; }; then
      break
    fi
    if (( SECONDS >= deadline )); then
      {
        echo "--- $CONSOLE_LOG (tail) ---"; tail -n 30 "$CONSOLE_LOG" 2>/dev/null || true
        echo "--- $SERVER_LOG (tail) ---"; tail -n 30 "$SERVER_LOG" 2>/dev/null || true
      } >&2
      KAFKA_STOP_TIMEOUT=10 cmd_stop >/dev/null 2>&1 || true
      die "the broker did not become ready on $KAFKA_BOOTSTRAP within ${KAFKA_START_TIMEOUT}s (logs above)"
    fi
    sleep 0.3
  done
  info "broker $KAFKA_VERSION ready (pid $pid, data dir $KAFKA_DATA_DIR)"
  print_endpoints
}

cmd_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    info "not running (data dir $KAFKA_DATA_DIR)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      info "broker (pid $pid) did not exit within ${KAFKA_STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local i
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  info "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    echo "running (pid $pid) KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP data dir $KAFKA_DATA_DIR"
    return 0
  fi
  echo "not running (data dir $KAFKA_DATA_DIR)"
  return 1
}

cmd_env() {
  local var
  for var in KAFKA_VERSION KAFKA_BOOTSTRAP KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SASL_SSL_PORT KAFKA_DATA_DIR KAFKA_HOME KAFKA_LIBS KAFKA_HEAP; do
    printf '%s=%q\n' "$var" "${!var}"
  done
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 fetch|start [--security sasl_ssl]|stop|status|env" >&2; exit 2 ;;
esac
