# Bespoke application image (for users with Docker; see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e . 
COPY flows flows
COPY operators operators
COPY connectors connectors
COPY features features
COPY policies policies
COPY schemas schemas
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1
ENTRYPOINT ["python", "-m", "flows"]
CMD ["--help"]
