# Headless Chromium for the report screenshot test: Debian's chromium, installed by scripts/chromium.sh when
# missing. Included by the main Makefile (`make test` depends on chromium-deps).
CHROMIUM_SH ?= scripts/chromium.sh

# Do not become the default goal when included before the main Makefile's first target.
_CHROMIUM_MK_PREV_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: chromium-deps

## Install chromium with apt-get when it is missing; fails clearly when it cannot.
chromium-deps:
	bash $(CHROMIUM_SH) ensure

.DEFAULT_GOAL := $(_CHROMIUM_MK_PREV_DEFAULT_GOAL)
