# hgen-ray on the official Ray image, with the same Ray and Python as pyproject.toml
# (tests/test_packaging.py checks that they agree).
#   docker build -t hgen-ray:0.1.0 .
#   docker run --rm hgen-ray:0.1.0 search --config configs/quickstart.yaml --out /tmp/q1
FROM rayproject/ray:2.60.0-py311

# The dataset comes from its Debian/Ubuntu package, as on the dev machines.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /home/ray/hgen-ray
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users hgen_ray ./hgen_ray
COPY --chown=ray:users configs ./configs
RUN pip install --no-cache-dir ".[cluster]"

ENV HGEN_DATA=/usr/share/datasets/fashion-mnist \
    RAY_AUTH_MODE=token
ENTRYPOINT ["hgen-ray"]
CMD ["--help"]
