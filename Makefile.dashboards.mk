# Grafana dashboards as code: `make dashboards` regenerates dashboards/grafana/**.json from dashboards/catalog.py
# (grafana-foundation-sdk); tests/unit/test_dashboards.py fails when the committed JSON is stale.
_DASHBOARDS_MK_PREV_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: dashboards dashboards-check

dashboards: $(STAMP)
	$(PY) -m dashboards.generate

dashboards-check: $(STAMP)
	$(PY) -m dashboards.generate --check

.DEFAULT_GOAL := $(_DASHBOARDS_MK_PREV_DEFAULT_GOAL)
