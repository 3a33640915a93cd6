#!/usr/bin/env bash
# Installs what the test suite needs to start real servers on loopback:
# redis-server, Java 17+ with Maven, Apache Kafka's jars (cached under .cache/), promtool,
# and Chromium (headless, renders the drift dashboard in its test).
# Skips Redis when REDIS_URL is set and Kafka when KAFKA_BOOTSTRAP_SERVERS is set.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "install-server-deps: please install: $*" >&2
    return 1
  fi
}

if [ "${1:-}" = cargo ]; then  # the native extension's toolchain (make venv asks)
  echo "installing cargo (Debian package)"
  apt_install cargo
  exit
fi

if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package)"
  apt_install redis-server
fi

# openssl makes the suite's TLS certificates (Kafka's SASL_SSL listener, Redis over TLS)
if ! command -v openssl >/dev/null; then
  echo "installing openssl (Debian package)"
  apt_install openssl
fi

# promtool and prometheus check the shipped alert rules and dashboard queries (deploy/)
if ! command -v promtool >/dev/null; then
  echo "installing prometheus (Debian package: promtool)"
  apt_install prometheus || true
fi

# headless Chromium renders the drift dashboard and takes its screenshot (tests/flows)
if ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian package)"
  apt_install chromium || true
fi

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    echo "installing Java 17 and Maven (Debian packages)"
    apt_install openjdk-17-jre-headless maven
  fi
  scripts/kafka-broker.sh jars >/dev/null
fi
echo "server dependencies ready"
