# One image for every voicebus service; the command picks the service:
#   python -m services.executor | services.ingress | services.metrics | services.sandbox
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HTTP_HOST=0.0.0.0 \
    INGRESS_SPOOL_DIR=/var/lib/voicebus/spool

WORKDIR /app

# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN pip install . \
 && groupadd --system --gid 10001 voicebus \
 && useradd --system --uid 10001 --gid voicebus --no-create-home --shell /usr/sbin/nologin voicebus \
 && mkdir -p /var/lib/voicebus/spool \
 && chown -R voicebus:voicebus /var/lib/voicebus

USER voicebus:voicebus

# executor 9101, ingress 8080, metrics 9100, sandbox 8090
EXPOSE 8080 8090 9100 9101

# Every service stops cleanly (exit 0) on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.executor"]
