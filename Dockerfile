FROM python:3.11-slim

LABEL org.opencontainers.image.title="inference-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Together AI and Baseten"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter

WORKDIR /
USER 10001
EXPOSE 10230
ENTRYPOINT ["inference-exporter"]
CMD ["--config.file=/etc/inference-exporter/config.yaml"]
