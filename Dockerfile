# syntax=docker/dockerfile:1
# One image for every bmfleet entry point: `bmfleet operator`, `bmfleet worker ...`.
# Build: docker build -t ghcr.io/bmfleet/bmfleet:0.1.0 .
# (No container engine runs on the project's own machines; `hadolint` checks this file in tests/unit.)
#
# Both stages install through hack/install-runtime.sh, the step tests/unit/test_dockerfile.py runs for real:
# the build stage turns the project and its pinned dependencies (hack/runtime-requirements.txt) into wheels,
# the final stage installs them with no index, so the image holds exactly the pinned set.
# The base is pinned to a patch release; pin its digest too (python:3.11.14-slim-bookworm@sha256:...) where
# the build can reach the registry to read it.

FROM python:3.11.14-slim-bookworm AS base
LABEL org.opencontainers.image.title="bmfleet" \
      org.opencontainers.image.description="Compile, gate and roll out SOPHGO bmodels to BM1684 edge fleets" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp

FROM base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY hack/install-runtime.sh hack/runtime-requirements.txt ./hack/
RUN sh hack/install-runtime.sh wheels /src /wheels

FROM base
# Bind-mounted from the build stage, so no wheel ends up in a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/src/hack,target=/hack \
    sh /hack/install-runtime.sh install /wheels \
 && bmfleet --version
# Numeric non-root user, so the kubelet can verify runAsNonRoot (Pod Security "restricted").
USER 65532:65532
ENTRYPOINT ["bmfleet"]
CMD ["operator"]
