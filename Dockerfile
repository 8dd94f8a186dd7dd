# syntax=docker/dockerfile:1
# One image for every bmfleet entry point: `bmfleet operator`, `bmfleet worker ...`.
# Build: docker build -t ghcr.io/bmfleet/bmfleet:0.1.0 .
# (No container engine runs on the project's own machines; see README "Container image".)

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="bmfleet" \
      org.opencontainers.image.description="Compile, gate and roll out SOPHGO bmodels to BM1684 edge fleets" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Numeric non-root user, so the kubelet can verify runAsNonRoot (Pod Security "restricted").
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
ENTRYPOINT ["bmfleet"]
CMD ["operator"]
