# syntax=docker/dockerfile:1
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/alertbot
# Pinned, hashed runtime dependencies and build tools first (a layer that changes only with the lock),
# then alertbot itself built by the locked setuptools, pulling nothing else.
COPY requirements.lock /src/
RUN /opt/alertbot/bin/pip install --require-hashes -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY alertbot /src/alertbot
RUN /opt/alertbot/bin/pip install --no-deps --no-build-isolation /src && /opt/alertbot/bin/pip check

FROM ${BASE}
RUN useradd --system --uid 10001 --home-dir /var/lib/alertbot --create-home alertbot
COPY --from=build /opt/alertbot /opt/alertbot
COPY config/alertbot.example.yaml /etc/alertbot/alertbot.example.yaml
# runbooks.dir defaults to "runbooks", relative to the working directory below.
COPY runbooks /var/lib/alertbot/runbooks
# MPLCONFIGDIR: matplotlib (incident graphs) keeps its font cache in the writable /tmp, not $HOME.
ENV PATH=/opt/alertbot/bin:$PATH PYTHONUNBUFFERED=1 MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /var/lib/alertbot
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["alertbot"]
# On 0.0.0.0 alertbot refuses to start without both bearer tokens: pass ALERTBOT_WEBHOOK_TOKEN and
# ALERTBOT_API_TOKEN (or mount files named by webhook.token_file / api.token_file in a config), or set
# security.allow_unauthenticated: true in the config to accept anyone who reaches the port
# (docs/operations.md, Security).
CMD ["serve", "--host", "0.0.0.0"]
