# hgen-ray: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR := data/fashion-mnist
DATA_STAMP := $(DATA_DIR)/train-images-idx3-ubyte.gz
SYSTEM_DATA := /usr/share/datasets/fashion-mnist
DEMO_OUT ?= runs/quickstart-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install data browser demo test bench clean

install: $(STAMP)

# Reinstall only when pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

data: $(DATA_STAMP)

# The Debian package dataset-fashion-mnist ships the four idx files. Use the
# system copy when present; otherwise unpack the .deb without root.
$(DATA_STAMP):
	mkdir -p $(DATA_DIR)
	if [ -f $(SYSTEM_DATA)/train-images-idx3-ubyte.gz ]; then \
	  cp $(SYSTEM_DATA)/*.gz $(DATA_DIR)/; \
	else \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq; fi; \
	  tmp=$$(mktemp -d) && chmod 755 $$tmp && (cd $$tmp && apt-get download dataset-fashion-mnist) && \
	  dpkg-deb -x $$tmp/dataset-fashion-mnist_*.deb $$tmp/root && \
	  cp $$tmp/root$(SYSTEM_DATA)/*.gz $(DATA_DIR)/ && rm -rf $$tmp; \
	fi

# The people page's test drives Debian's Chromium through its ChromeDriver (never a downloaded browser).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "make test: the browser test needs Debian's chromium and chromium-driver; run: sudo apt-get install chromium chromium-driver" >&2; exit 2; fi; \
	fi

demo: install data
	$(BIN)/hgen-ray search --config configs/quickstart.yaml --out $(DEMO_OUT)

test: install data browser
	$(BIN)/python -m pytest tests

bench: install data
	$(BIN)/python benchmarks/evaluate.py

clean:
	@if [ -s .cache/hgen-cluster/pgids ]; then \
	  echo "make clean: a local cluster recorded in .cache/hgen-cluster/pgids may be running; stop it first: clusters/local/stop.sh" >&2; \
	  exit 2; \
	fi
	rm -rf runs .cache .pytest_cache
