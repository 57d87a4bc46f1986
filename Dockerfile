# syntax=docker/dockerfile:1
# Autopilot's image for Kubernetes (deploy/helm/values.yaml, docs/SCALING.md): the code location's gRPC
# server (the Helm chart's user-code deployment), and the same image for the run and step pods that
# K8sRunLauncher and k8s_job_executor start, and for `autopilot worker` if Celery is used instead.
#
#   docker build -t autopilot:0.1.0 .
#
# Two stages: the build stage installs the pinned dependencies (requirements.lock) and then the package,
# without its dependencies, into a virtualenv; the runtime stage copies only that virtualenv and the
# project files, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/autopilot
# The lock file alone first, so a code change does not reinstall every dependency.
COPY requirements.lock ./
RUN pip install --require-virtualenv -r requirements.lock
COPY pyproject.toml README.md dagster.yaml workspace.yaml ./
COPY sql ./sql
COPY grafana ./grafana
COPY prometheus ./prometheus
COPY autopilot_pipeline ./autopilot_pipeline
# The package in place (its SQL migrations, dagster.yaml and dashboards are read beside it), no new deps.
RUN pip install --require-virtualenv --no-deps -e . \
    && python -m compileall -q autopilot_pipeline

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    AUTOPILOT_STATE_DIR=/var/lib/autopilot
RUN groupadd --system --gid 10001 autopilot \
    && useradd --system --uid 10001 --gid autopilot --home-dir /home/autopilot --create-home autopilot \
    && mkdir -p /var/lib/autopilot \
    && chown autopilot:autopilot /var/lib/autopilot
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/autopilot /opt/autopilot
WORKDIR /opt/autopilot
USER 10001:10001
EXPOSE 3030
# The Helm chart passes its own arguments (dagsterApiGrpcArgs); this default serves the code location.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "autopilot_pipeline.definitions", "-a", "defs"]
