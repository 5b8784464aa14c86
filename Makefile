# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   set everything up, then run the spoken demo conversation
#   make test   set everything up, then run the test suite
# Every step is idempotent: stamps record what is done.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libportaudio2 espeak-ng sox pulseaudio pulseaudio-utils \
	libasound2-plugins mosquitto mosquitto-clients openssl chromium ffmpeg
# llama.cpp compiled natively crashes (SIGSEGV in the AMX kernels) on CPUs that
# report AMX inside VMs that do not support it; build for AVX2 instead. On a
# CUDA machine: make LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" ...
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

# The exact, tested set of Python packages, with hashes (see "Dependencies" in
# the README): requirements.lock for the project and its tests,
# requirements-build.lock for pip and the tools that build from source.
LOCKS := requirements.lock requirements-build.lock
PIP_INSTALL := $(PY) -m pip install -q --require-hashes --no-build-isolation

.PHONY: demo test test-fast setup system-deps models clean lock

demo: setup
	$(VENV)/bin/voiceagent demo

test: setup ha-venv ha2025-venv satellite-venv wyoming-peers-venv
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

# Build tools first, from their own lock, so that nothing is resolved or
# fetched unpinned while building (hence --no-build-isolation). llama-cpp-python
# compiles from source (~4 minutes on 2 cores); pip caches the built wheel, so a
# later venv installs it in seconds.
$(VENV)/.installed: pyproject.toml $(LOCKS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements-build.lock
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP_INSTALL) -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

models: $(VENV)/.installed
	$(VENV)/bin/voiceagent models pull

clean:
	rm -rf $(VENV) demo-conversation.wav

# Refresh the locks from pyproject.toml and the .in files with uv (pinned, in
# its own venv so it is not part of the tested set). Pins are kept where they
# still fit; UPGRADE=1 takes the newest of everything, UPGRADE=name (or
# "a b") the newest of those packages only. Then run make test and commit.
UV_VERSION := 0.13.9
TOOLS_VENV := .venv-tools
UV := $(TOOLS_VENV)/bin/uv
UV_COMPILE = $(UV) pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock" \
	$(if $(filter 1,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

lock:
	test -x $(UV) || { $(PYTHON) -m venv $(TOOLS_VENV) && $(TOOLS_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(UV_COMPILE) pyproject.toml --extra test -o requirements.lock
	$(UV_COMPILE) requirements-build.in -o requirements-build.lock
	$(UV_COMPILE) requirements-pipecat.in -o requirements-pipecat.lock
	$(UV_COMPILE) requirements-satellite.in -c requirements-build.lock -o requirements-satellite.lock
	$(UV_COMPILE) requirements-wyoming-asr.in -c requirements-build.lock -o requirements-wyoming-asr.lock
	$(UV_COMPILE) requirements-wyoming-tts.in -c requirements-build.lock -o requirements-wyoming-tts.lock
	rm -rf $(HA_WHEEL_DIR) && $(TOOLS_VENV)/bin/pip download -q --no-deps -d $(HA_WHEEL_DIR) \
		homeassistant==$(HA_VERSION)
	$(TOOLS_VENV)/bin/python -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("homeassistant/package_constraints.txt"))' \
		$(HA_WHEEL_DIR)/homeassistant-$(HA_VERSION)-py3-none-any.whl > $(HA_CONSTRAINTS)
	$(UV_COMPILE) requirements-ha.in -c $(HA_CONSTRAINTS) -c requirements-build.lock -o requirements-ha.lock
	rm -rf $(HA2025_WHEEL_DIR) && $(TOOLS_VENV)/bin/pip download -q --no-deps \
		--python-version 3.13 --only-binary=:all: -d $(HA2025_WHEEL_DIR) homeassistant==$(HA2025_VERSION)
	$(TOOLS_VENV)/bin/python -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("homeassistant/package_constraints.txt"))' \
		$(HA2025_WHEEL_DIR)/homeassistant-$(HA2025_VERSION)-py3-none-any.whl > $(HA2025_CONSTRAINTS)
	$(UV_COMPILE_313) requirements-ha2025-build.in -c requirements-build.lock -o requirements-ha2025-build.lock
	$(UV_COMPILE_313) requirements-ha2025.in -c $(HA2025_CONSTRAINTS) -c requirements-build.lock \
		-o requirements-ha2025.lock

# A separate venv for the `voiceagent bench --peer pipecat` comparison, so that
# pipecat's dependency pins cannot break the project venv. It holds pipecat with
# its faster-whisper, Silero and piper services and llama-cpp-python's
# OpenAI-compatible server (built with the same LLAMA_CMAKE_ARGS, so pip reuses
# the cached wheel of the project venv when the version matches), pinned in
# requirements-pipecat.lock (the version of pipecat is in requirements-pipecat.in).
PIPECAT_VENV := .venv-pipecat

.PHONY: pipecat-venv
pipecat-venv: $(PIPECAT_VENV)/.installed

$(PIPECAT_VENV)/.installed: requirements-pipecat.lock requirements-build.lock
	test -x $(PIPECAT_VENV)/bin/python || $(PYTHON) -m venv $(PIPECAT_VENV)
	$(PIPECAT_VENV)/bin/python -m pip install -q --require-hashes --no-build-isolation \
		-r requirements-build.lock
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIPECAT_VENV)/bin/python -m pip install -q \
		--require-hashes --no-build-isolation -r requirements-pipecat.lock
	touch $@

# A venv of its own for a foreign program the tests run (Home Assistant, the
# Wyoming satellite and servers): $(1) the venv, $(2) its hash-pinned lock, $(3) the
# Python to make it with, $(4) more build tools' locks. Build tools first, from their
# own lock (see $(VENV)).
define foreign_venv
$(1)/.installed: $(2) requirements-build.lock $(4)
	test -x $(1)/bin/python || $(3) -m venv $(1)
	echo '*' > $(1)/.gitignore
	$(1)/bin/python -m pip install -q --require-hashes --no-build-isolation -r requirements-build.lock \
		$(addprefix -r ,$(4))
	$(1)/bin/python -m pip install -q --require-hashes --no-build-isolation -r $(2)
	touch $$@
endef

# A separate venv with a real Home Assistant for the tests (tests/support/home_assistant.py
# starts it on loopback), so that its many exact pins cannot break the project
# venv. requirements-ha.lock is compiled from requirements-ha.in under the
# release's own homeassistant/package_constraints.txt (fetched by `make lock`
# from its wheel) and requirements-build.lock, so pip and setuptools agree with
# the build lock. The '*' .gitignore keeps git from seeing the venv.
HA_VENV := .venv-ha
HA_VERSION = $(shell sed -n 's/^homeassistant==\([^ ]*\).*/\1/p' requirements-ha.in)
HA_WHEEL_DIR := $(TOOLS_VENV)/ha-wheel
HA_CONSTRAINTS := $(TOOLS_VENV)/ha-package_constraints.txt

.PHONY: ha-venv
ha-venv: $(HA_VENV)/.installed

$(eval $(call foreign_venv,$(HA_VENV),requirements-ha.lock,$(PYTHON)))

# A second, newer Home Assistant for the tests (tests/test_wyoming_ha2025.py: its
# Assist conversation through our Wyoming `handle`), in its own venv on Python 3.13
# from pyenv: 2025.4.4 is the newest release that installs on 3.13.0 (2025.5+
# needs 3.13.2). PYTHON313=/path/to/python3.13 overrides the pyenv one. Two of its
# packages build from source with pybind11 (requirements-ha2025-build.in).
PYTHON313 ?= $(shell pyenv root 2>/dev/null)/versions/3.13.0/bin/python3
HA2025_VENV := .venv-ha2025
HA2025_VERSION = $(shell sed -n 's/^homeassistant==\([^ ]*\).*/\1/p' requirements-ha2025.in)
HA2025_WHEEL_DIR := $(TOOLS_VENV)/ha2025-wheel
HA2025_CONSTRAINTS := $(TOOLS_VENV)/ha2025-package_constraints.txt
UV_COMPILE_313 = $(subst --python-version 3.11,--python-version 3.13,$(UV_COMPILE))

.PHONY: ha2025-venv python313
ha2025-venv: python313 $(HA2025_VENV)/.installed

python313:
	@"$(PYTHON313)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || { \
		echo "ha2025-venv needs Python 3.13 (Home Assistant 2025.4.4), not found at '$(PYTHON313)':" >&2; \
		echo "  pyenv install 3.13.0, or make PYTHON313=/path/to/python3.13 ha2025-venv" >&2; exit 1; }

$(eval $(call foreign_venv,$(HA2025_VENV),requirements-ha2025.lock,"$(PYTHON313)",requirements-ha2025-build.lock))

# The reference Wyoming satellite (wyoming-satellite 1.0.0, the only PyPI release)
# for the tests, in its own venv: it pins wyoming 1.4.1. Pinned in
# requirements-satellite.lock (from requirements-satellite.in).
SATELLITE_VENV := .venv-satellite

.PHONY: satellite-venv
satellite-venv: $(SATELLITE_VENV)/.installed

$(eval $(call foreign_venv,$(SATELLITE_VENV),requirements-satellite.lock,$(PYTHON)))

# The reference Wyoming speech-to-text and text-to-speech servers
# (wyoming-faster-whisper 3.8.1, wyoming-piper 2.5.2) for the tests in which voiceagent
# uses them as its remote ASR and TTS stages (tests/support/wyoming_peers.py), each in a
# venv of its own, as they would be programs of their own on another machine. Pinned
# in requirements-wyoming-asr.lock / requirements-wyoming-tts.lock (from their .in files).
WYOMING_ASR_VENV := .venv-wyoming-asr
WYOMING_TTS_VENV := .venv-wyoming-tts

.PHONY: wyoming-peers-venv
wyoming-peers-venv: $(WYOMING_ASR_VENV)/.installed $(WYOMING_TTS_VENV)/.installed

$(eval $(call foreign_venv,$(WYOMING_ASR_VENV),requirements-wyoming-asr.lock,$(PYTHON)))
$(eval $(call foreign_venv,$(WYOMING_TTS_VENV),requirements-wyoming-tts.lock,$(PYTHON)))
