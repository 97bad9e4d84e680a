# Alertmanager for tests and local runs: Debian's prometheus-alertmanager (+ amtool), installed by
# scripts/alertmanager.sh. Included by the main Makefile.
ALERTMANAGER_SH ?= scripts/alertmanager.sh

# Do not become the default goal when included before the main Makefile's first target.
_ALERTMANAGER_MK_PREV_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: alertmanager-deps alertmanager-check alertmanager-start alertmanager-stop

## Install Alertmanager and amtool when missing (apt-get); fails clearly when it cannot.
alertmanager-deps:
	bash $(ALERTMANAGER_SH) ensure

## amtool check-config on the shipped alerts/alertmanager.yml.
alertmanager-check: alertmanager-deps
	bash $(ALERTMANAGER_SH) check

## Run one on 127.0.0.1:$${ALERTMANAGER_PORT:-9093} with the shipped config (prints ALERTMANAGER_URL=...).
alertmanager-start: alertmanager-deps
	bash $(ALERTMANAGER_SH) start

alertmanager-stop:
	bash $(ALERTMANAGER_SH) stop

.DEFAULT_GOAL := $(_ALERTMANAGER_MK_PREV_DEFAULT_GOAL)
