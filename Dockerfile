# Production image: slim Python, non-root, no compiler left behind.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# httpx2 (under the openai SDK) uses the OS trust store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 whatsbot

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=whatsbot:whatsbot . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && mkdir -p /app/media /app/metrics && chown whatsbot:whatsbot /app/media /app/metrics

USER whatsbot
EXPOSE 8000

# Liveness: the process answers /healthz/ (docker-compose.yml's web checks /readyz/, which also
# needs the database, the broker and a working Celery worker).
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz/', timeout=4)"

# Default: daphne serves HTTP and websockets. docker-compose.yml runs gunicorn for the HTTP
# side and daphne for websockets (see README "Production").
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "whatsbot_project.asgi:application"]
