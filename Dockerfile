# Image similarity search: nginx on $PORT buffering whole requests for gunicorn (the Flask
# app) behind it, the model in ONNX Runtime.
#
# The models are exported to ONNX at build time (stage `export`, with the CPU-only torch), so
# the served image needs no torch: the default, last stage leaves it out (about 0.9 GB smaller).
# It bakes MODEL (the one served) and efficientnet_lite0 (the default model, whose weights
# install with the requirements), so either serves without torch.
#   docker build -t similarity-search .                              # efficientnet_lite0 served
#   docker build --build-arg MODEL=resnet18 -t search .              # another baked model
#   docker build --target with-torch -t search-torch .               # keeps torch: any MODEL
#       at run time (exported at start-up) and `flask finetune` work
ARG MODEL=efficientnet_lite0

FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    CACHE_DIR=/var/data/cache \
    INDEX_PATH=/var/data/index.csv \
    MODEL_DIR=/app/models \
    FRONT=nginx

# nginx reads each whole request before a gunicorn thread sees it, so slow clients cannot hold
# the threads; gunicorn.conf.py starts it (backend/serving/front.py renders its configuration).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Serving needs neither torch nor
# onnx (they export the model), so they are left out here.
COPY requirements.txt ./
RUN grep -vE '^(torch|torchvision|onnx)==' requirements.txt > requirements-serve.txt \
 && pip install -r requirements-serve.txt \
 && rm requirements-serve.txt

# torch and torchvision of the pinned versions from the CPU-only index (the default one would
# bring the CUDA build, gigabytes larger), and onnx, which writes the exported file.
FROM base AS torch
ENV TORCH_HOME=/opt/torch
RUN grep -E '^(torch|torchvision)==' requirements.txt > requirements-torch.txt \
 && grep -E '^onnx==' requirements.txt > requirements-export.txt \
 && pip install --index-url https://download.pytorch.org/whl/cpu -r requirements-torch.txt \
 && pip install -r requirements-export.txt \
 && rm requirements-torch.txt requirements-export.txt \
 && python -c "import torch; assert torch.version.cuda is None, torch.__version__"

# The models' weights (torchvision's downloaded into TORCH_HOME, Lite0's from its package),
# exported and checked against torch into MODEL_DIR: the exact step
# `python -m backend.serving.export_models`, as a developer runs it.
FROM torch AS export
ARG MODEL
COPY backend ./backend
RUN python -m backend.serving.export_models "$MODEL" efficientnet_lite0 \
 && rm -f "$MODEL_DIR"/*.optimized-*.onnx \
 && mkdir -p "$TORCH_HOME" \
 && chmod -R a+rX "$TORCH_HOME" "$MODEL_DIR"

FROM base AS app
ARG MODEL
ENV MODEL=$MODEL

RUN useradd --create-home --uid 10001 app \
 && mkdir -p /var/data \
 && chown app:app /var/data

COPY gunicorn.conf.py ./
COPY docker-entrypoint.sh /usr/local/bin/
COPY backend ./backend
COPY --from=export /app/models /app/models
# Admin edits rewrite the bundled catalog (products.csv, uploads/) in place; the code stays root's.
# The first start saves the model's graph optimised for the CPU it runs on into /app/models.
RUN chown -R app:app backend/data /app/models

# The container starts as root only for the entrypoint: it gives the data disk (which Render
# mounts root-owned) to `app`, then runs the server as `app`.
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 8000

# slim has no curl; the standard library can ask /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py"]

# The server with torch and the baked ImageNet weights kept.
FROM app AS with-torch
COPY --from=torch /usr/local/lib/python3.11/site-packages /usr/local/lib/python3.11/site-packages
COPY --from=export /opt/torch /opt/torch
ENV TORCH_HOME=/opt/torch

# The default image: the server without torch.
FROM app AS serve
