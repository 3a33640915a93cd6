# Bespoke application image (for users with Docker; see docker-compose.yml).

# The native kernels (native/, Rust + PyO3) as a CPython 3.11 wheel, built with the Rust
# toolchain of the official image on the same Debian release as the runtime below.
FROM rust:1-slim-bookworm AS native
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-dev python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY native /native
RUN python3 -m venv /build && /build/bin/pip wheel --no-cache-dir /native -w /wheels

FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e .
COPY --from=native /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl
COPY flows flows
COPY operators operators
COPY connectors connectors
COPY agent agent
COPY features features
COPY policies policies
COPY schemas schemas
# the reference enterprise service (python -m scripts.enterprise_service) and the tools
COPY scripts scripts
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "-m", "flows"]
CMD ["--help"]
