# Kafka for tests and local runs: a real single-node KRaft broker started by
# scripts/kafka.sh from jars resolved off Maven Central (cached under
# $(LLMPULSE_CACHE_DIR), default ~/.cache/llmpulse). Included by the main Makefile.
KAFKA_SH ?= scripts/kafka.sh

# Do not become the default goal when included before the main Makefile's first target.
_KAFKA_MK_PREV_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: kafka-cache kafka-tls-deps kafka-start kafka-stop kafka-status kafka-start-sasl-ssl

## Resolve the Kafka jars into the cache (no-op when cached); lets `make test` pre-fetch.
kafka-cache: kafka-tls-deps
	bash $(KAFKA_SH) fetch

## openssl makes the throwaway CA of `kafka.sh start --security sasl_ssl` (the SASL_SSL tests); apt-get if missing.
kafka-tls-deps:
	@command -v openssl >/dev/null || { \
	  echo "installing openssl (for scripts/kafka.sh start --security sasl_ssl)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openssl; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq openssl; fi; }

## Start a local broker on 127.0.0.1:$${KAFKA_PORT:-9092} (prints KAFKA_BOOTSTRAP=...).
kafka-start:
	bash $(KAFKA_SH) start

## Same, plus a SASL_SSL (SCRAM-SHA-512) listener with a throwaway CA (prints KAFKA_BOOTSTRAP_SASL_SSL=... etc.).
kafka-start-sasl-ssl: kafka-tls-deps
	bash $(KAFKA_SH) start --security sasl_ssl

kafka-stop:
	bash $(KAFKA_SH) stop

kafka-status:
	bash $(KAFKA_SH) status

.DEFAULT_GOAL := $(_KAFKA_MK_PREV_DEFAULT_GOAL)
