# mirror: a private Terraform module registry. Everything it keeps (database, blobs, spool, event
# log, analysis cache) derives from [server] data_dir, the volume below.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mirror ./mirror
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN groupadd --system mirror && useradd --system --gid mirror --home-dir /var/lib/mirror --create-home mirror
COPY --from=build /install /usr/local
WORKDIR /var/lib/mirror
USER mirror
ENV MIRROR_SERVER_HOST=0.0.0.0 \
    MIRROR_SERVER_PORT=8080 \
    MIRROR_SERVER_DATA_DIR=/var/lib/mirror/data \
    MIRROR_LOGGING_FORMAT=json
VOLUME ["/var/lib/mirror/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MIRROR_SERVER_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["mirror"]
CMD ["serve"]
