# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   set everything up, then run the spoken demo conversation
#   make test   set everything up, then run the test suite
# Every step is idempotent: stamps record what is done.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libportaudio2 espeak-ng sox pulseaudio pulseaudio-utils \
	libasound2-plugins mosquitto mosquitto-clients openssl
# llama.cpp compiled natively crashes (SIGSEGV in the AMX kernels) on CPUs that
# report AMX inside VMs that do not support it; build for AVX2 instead. On a
# CUDA machine: make LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" ...
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

.PHONY: demo test test-fast setup system-deps models clean

demo: setup
	$(VENV)/bin/voiceagent demo

test: setup
	$(PY) -m pytest -q -rs

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not realmodel and not device"

setup: system-deps $(VENV)/.installed models

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -e ".[test]"
	touch $@

models: $(VENV)/.installed
	$(VENV)/bin/voiceagent models pull

clean:
	rm -rf $(VENV) demo-conversation.wav

# A separate venv for the `voiceagent bench --peer pipecat` comparison, so that
# pipecat's dependency pins cannot break the project venv. It holds pipecat with
# its faster-whisper, Silero and piper services and llama-cpp-python's
# OpenAI-compatible server (built with the same LLAMA_CMAKE_ARGS, so pip reuses
# the cached wheel of the project venv when the version matches).
PIPECAT_VENV := .venv-pipecat
PIPECAT_VERSION ?= 1.14.0

.PHONY: pipecat-venv
pipecat-venv: $(PIPECAT_VENV)/.installed

$(PIPECAT_VENV)/.installed:
	test -x $(PIPECAT_VENV)/bin/python || $(PYTHON) -m venv $(PIPECAT_VENV)
	$(PIPECAT_VENV)/bin/python -m pip install -q --upgrade pip wheel
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIPECAT_VENV)/bin/python -m pip install -q \
		"pipecat-ai[whisper,silero,piper,openai]==$(PIPECAT_VERSION)" \
		"llama-cpp-python[server]>=0.3.8"
	touch $@
