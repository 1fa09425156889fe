# press-digest: one image for the bot and its workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 press
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY alembic ./alembic
RUN pip install . && mkdir -p /app/data && chown press:press /app/data

USER press
VOLUME ["/app/data"]
# migrations run at start; SIGTERM stops it cleanly
STOPSIGNAL SIGTERM
CMD ["press-digest", "run"]
