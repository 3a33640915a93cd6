#!/usr/bin/env bash
# Start/stop a throwaway single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) on loopback, from Apache Kafka's jars on Maven Central.
#
#   scripts/kafka-broker.sh jars             # resolve and cache the jars only
#   scripts/kafka-broker.sh start DIR        # prints "BOOTSTRAP=127.0.0.1:PORT PID=N"
#   scripts/kafka-broker.sh stop DIR         # stops the broker started in DIR (by PID)
#   (it also listens with TLS + SASL/SCRAM: DIR/secure_bootstrap, DIR/tls/ca.pem, DIR/tls/scram)
#
# Jars are cached under $BESPOKE_CACHE (default .cache/) so later runs start in seconds.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"
SLF4J_VERSION="${SLF4J_VERSION:-1.7.36}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${BESPOKE_CACHE:-$ROOT/.cache}"
LIB="$CACHE/kafka-$KAFKA_VERSION/lib"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx512m}"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

fetch_jars() {
  [ -f "$LIB/.done" ] && return 0
  command -v mvn >/dev/null || { echo "kafka-broker: mvn not found (needs Java 17+ and Maven)" >&2; exit 2; }
  local pomdir="$CACHE/kafka-$KAFKA_VERSION"
  mkdir -p "$LIB"
  cat > "$pomdir/pom.xml" <<POM
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>bespoke.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>${SLF4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>${LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
POM
  mvn -q -B -f "$pomdir/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DoutputDirectory="$LIB" -DincludeScope=runtime
  touch "$LIB/.done"
}

make_certs() {  # $1 = dir: a throwaway CA and a server certificate for 127.0.0.1/localhost
  local d="$1"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bespoke-test-ca" \
      -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$d/server.key.pem" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
  # Kafka's PEM keystore: the PKCS#8 key and the certificate chain in one file
  openssl pkcs8 -topk8 -nocrypt -in "$d/server.key.pem" -out "$d/server.p8" 2>/dev/null
  cat "$d/server.p8" "$d/server.pem" "$d/ca.pem" > "$d/keystore.pem"
}

write_configs() {  # $1 = work dir
  local dir="$1"
  PORT="$(free_port)"; CPORT="$(free_port)"; SPORT="$(free_port)"
  while [ "$CPORT" = "$PORT" ]; do CPORT="$(free_port)"; done
  while [ "$SPORT" = "$PORT" ] || [ "$SPORT" = "$CPORT" ]; do SPORT="$(free_port)"; done
  mkdir -p "$dir/data" "$dir/logs" "$dir/tls"
  make_certs "$dir/tls"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${CPORT}
listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CPORT},SECURE://127.0.0.1:${SPORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORT},SECURE://127.0.0.1:${SPORT}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.secure.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.ssl.keystore.type=PEM
listener.name.secure.ssl.keystore.location=${dir}/tls/keystore.pem
inter.broker.listener.name=PLAINTEXT
log.dir=${dir}/data
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
PROPS
  cat > "$dir/log4j2.properties" <<'L4J'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
L4J
}

start() {
  local dir="${1:?usage: start DIR}"
  command -v java >/dev/null || { echo "kafka-broker: java not found" >&2; exit 2; }
  fetch_jars
  rm -rf "$dir"; mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  write_configs "$dir"
  local jopts=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$dir/log4j2.properties")
  local cid
  cid="$(java -cp "$LIB/*" "${jopts[@]}" kafka.tools.StorageTool random-uuid)"
  # the SASL/SCRAM user of the SECURE listener (TLS + SCRAM-SHA-256), for the suite's
  # secure-transport tests; its password is a throwaway made here
  local scram_pw; scram_pw="$(openssl rand -hex 16)"
  java -cp "$LIB/*" "${jopts[@]}" kafka.tools.StorageTool format --standalone -t "$cid" \
       -c "$dir/server.properties" \
       --add-scram "SCRAM-SHA-256=[name=bespoke,password=$scram_pw]" >"$dir/logs/format.log" 2>&1
  printf 'bespoke\n%s\n' "$scram_pw" > "$dir/tls/scram"
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -cp "$LIB/*" "${jopts[@]}" \
        kafka.Kafka "$dir/server.properties" >"$dir/logs/kafka.log" 2>&1 &
  local kpid=$!
  echo "$kpid" > "$dir/kafka.pid"; echo "127.0.0.1:$PORT" > "$dir/bootstrap"
  echo "127.0.0.1:$SPORT" > "$dir/secure_bootstrap"
  for _ in $(seq 1 1200); do
    kill -0 "$kpid" 2>/dev/null || { echo "kafka-broker: died; log follows" >&2; tail -40 "$dir/logs/kafka.log" >&2; exit 1; }
    (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "BOOTSTRAP=127.0.0.1:$PORT PID=$kpid"
}

stop() {
  local dir="${1:?usage: stop DIR}"
  [ -f "$dir/kafka.pid" ] || { echo "kafka-broker: not running in $dir"; return 0; }
  local kpid; kpid="$(cat "$dir/kafka.pid")"
  kill "$kpid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$kpid" 2>/dev/null && kill -9 "$kpid" || true
  rm -f "$dir/kafka.pid"
}

case "${1:-}" in
  jars) fetch_jars; ls "$LIB" | wc -l ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 jars|start DIR|stop DIR" >&2; exit 2 ;;
esac
