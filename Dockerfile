# press-digest: one image for the bot and its workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 press
WORKDIR /app

# only what the package needs (see .dockerignore): no .env, no .venv, no data/
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . && rm -rf build *.egg-info && mkdir -p /app/data && chown press:press /app/data

USER press
VOLUME ["/app/data"]
EXPOSE 8080
# GET /healthz answers 200 while the process runs and its database answers, 503 otherwise
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"
# migrations run at start; SIGTERM stops it cleanly
STOPSIGNAL SIGTERM
CMD ["press-digest", "run"]
