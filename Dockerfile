# Image similarity search: nginx on $PORT buffering whole requests for gunicorn (the Flask
# app) behind it, CPU-only torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch \
    PORT=8000 \
    CACHE_DIR=/var/data/cache \
    INDEX_PATH=/var/data/index.csv \
    FRONT=nginx

# nginx reads each whole request before a gunicorn thread sees it, so slow clients cannot hold
# the threads; gunicorn.conf.py starts it (backend/web/front.py renders its configuration).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. torch and torchvision come from
# the CPU-only index (the default one would bring the CUDA build, gigabytes larger); the rest is
# installed without their lines, so pip has no reason to replace them.
COPY requirements.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
 && grep -vE '^(torch|torchvision)==' requirements.txt > requirements-rest.txt \
 && pip install -r requirements-rest.txt \
 && rm requirements-rest.txt \
 && python -c "import torch; assert torch.version.cuda is None, torch.__version__"

# The ImageNet weights, baked in so the container starts offline.
RUN python -c "import torchvision; torchvision.models.ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)" \
 && chmod -R a+rX "$TORCH_HOME"

RUN useradd --create-home --uid 10001 app \
 && mkdir -p /var/data \
 && chown app:app /var/data

COPY gunicorn.conf.py ./
COPY backend ./backend
# Admin edits rewrite the bundled catalog (products.csv, uploads/) in place; the code stays root's.
RUN chown -R app:app backend/data

USER app
EXPOSE 8000

# slim has no curl; the standard library can ask /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py"]
