"""What the Python scripts here share; the standard library only, as each of them runs in
its own virtual environment (requirements.txt, paykit-requirements.txt)."""

import base64
import json
import os
import sys


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"missing env {name}")
    return value


def b64json(value):
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)).decode("utf-8"))


def run_buyer(main):
    """Runs a buyer script's `main`: the JSON it returns on one line of standard output, or
    the traceback on standard error and exit status 1."""
    try:
        out = main()
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"{os.path.basename(sys.argv[0])}: {e}\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(out) + "\n")
