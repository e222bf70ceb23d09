# Production image: `postback-monitor serve` as a non-root user.
# DATABASE_URL (and POSTBACK_MONITOR_ADMIN_TOKEN) come from the environment.
# Two listeners: capture on 8081 (publish it to the internet), management (web
# views, API, /metrics) on 8080 (publish it on loopback or a private network only).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POSTBACK_MONITOR_PORT=8080 \
    POSTBACK_MONITOR_CAPTURE_PORT=8081 \
    POSTBACK_MONITOR_DATA_DIR=/var/lib/postback-monitor

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY monitor ./monitor
COPY sql ./sql
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/postback-monitor --create-home postback
USER postback
WORKDIR /var/lib/postback-monitor

EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2)" || exit 1
CMD ["postback-monitor", "serve", "--host", "0.0.0.0", "--capture-host", "0.0.0.0"]
