# llmpulse: the collector (`llmpulse collect`), the HTTP API (`llmpulse serve`) and the analyzer scheduler, from
# one image. docker-compose.yml runs each as its own service; the command picks the role.
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY llmpulse ./llmpulse
COPY collector ./collector
COPY analyzers ./analyzers
COPY alerts ./alerts
COPY dashboards ./dashboards
RUN python -m venv /opt/llmpulse \
    && /opt/llmpulse/bin/pip install --upgrade pip \
    && /opt/llmpulse/bin/pip install .

FROM python:3.11-slim-bookworm

ENV PATH=/opt/llmpulse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LLMPULSE_HTTP_HOST=0.0.0.0
COPY --from=build /opt/llmpulse /opt/llmpulse
RUN useradd --system --uid 10001 --home-dir /var/lib/llmpulse --create-home llmpulse
USER llmpulse
WORKDIR /var/lib/llmpulse
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)" || exit 1
ENTRYPOINT ["llmpulse"]
CMD ["serve"]
