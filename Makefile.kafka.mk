# Kafka for tests and local runs: a real single-node KRaft broker started by
# scripts/kafka.sh from jars resolved off Maven Central (cached under
# $(LLMPULSE_CACHE_DIR), default ~/.cache/llmpulse). Included by the main Makefile.
KAFKA_SH ?= scripts/kafka.sh

# Do not become the default goal when included before the main Makefile's first target.
_KAFKA_MK_PREV_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: kafka-cache kafka-start kafka-stop kafka-status

## Resolve the Kafka jars into the cache (no-op when cached); lets `make test` pre-fetch.
kafka-cache:
	bash $(KAFKA_SH) fetch

## Start a local broker on 127.0.0.1:$${KAFKA_PORT:-9092} (prints KAFKA_BOOTSTRAP=...).
kafka-start:
	bash $(KAFKA_SH) start

kafka-stop:
	bash $(KAFKA_SH) stop

kafka-status:
	bash $(KAFKA_SH) status

.DEFAULT_GOAL := $(_KAFKA_MK_PREV_DEFAULT_GOAL)
