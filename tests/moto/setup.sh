#!/usr/bin/env bash
# Build the Python venv that runs moto for stslib's tests.
#
#   bash tests/moto/setup.sh
#
# Creates $STSLIB_MOTO_VENV (default: tests/moto/.venv) with the pins in
# tests/moto/requirements.txt, constrained by tests/moto/constraints.txt.
# Uses $STSLIB_MOTO_BASE_PYTHON (default: python3, needs 3.9+ with the venv
# module; on Debian: apt-get install python3-venv) and pip's usual settings.
# Idempotent: if the venv already holds the pinned versions it only prints
# where things are. The last line printed is the venv's python, which the
# Rust tests read from $STSLIB_MOTO_PYTHON.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${STSLIB_MOTO_VENV:-$here/.venv}"
base_python="${STSLIB_MOTO_BASE_PYTHON:-python3}"
requirements="$here/requirements.txt"
constraints="$here/constraints.txt"
stamp="$venv/.stslib-moto-stamp"

die() { echo "setup.sh: $*" >&2; exit 1; }

# True if the venv's installed versions equal every name==version pin.
pins_satisfied() {
    "$venv/bin/python" - "$requirements" <<'EOF'
import re, sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line)
    if not m:
        sys.exit(f"unpinned requirement: {line}")
    try:
        if version(m.group(1)) != m.group(3):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

report() {
    echo "moto venv:   $venv"
    echo "moto_server: $venv/bin/moto_server"
    echo "versions:    $("$venv/bin/python" -c 'from importlib.metadata import version as v; print("moto", v("moto"), "boto3", v("boto3"), "botocore", v("botocore"))')"
    echo "$venv/bin/python"
}

command -v "$base_python" >/dev/null 2>&1 || die "$base_python not found (set STSLIB_MOTO_BASE_PYTHON)"
"$base_python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "$base_python is $("$base_python" -V 2>&1); moto 5.2.5 needs Python 3.9+"
python_id="$("$base_python" -c 'import sys; print(sys.version.split()[0])')"
want="$(cat "$requirements" "$constraints" | sha256sum | cut -d' ' -f1) python-$python_id"

if [[ -x "$venv/bin/moto_server" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && pins_satisfied; then
    report
    exit 0
fi

"$base_python" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$base_python has no venv/ensurepip module (Debian: apt-get install python3-venv)"

if [[ -e "$venv" ]]; then
    # Only ever replace something that is a venv: never rm a stray directory.
    [[ -f "$venv/pyvenv.cfg" ]] || die "$venv exists and is not a venv; remove it or set STSLIB_MOTO_VENV"
    echo "setup.sh: rebuilding $venv (pins or Python changed)"
    rm -rf -- "$venv"
fi

echo "setup.sh: creating $venv with $base_python ($python_id)"
"$base_python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --no-input --disable-pip-version-check --progress-bar off -q)
if ! "${pip[@]}" -r "$requirements" -c "$constraints"; then
    echo "setup.sh: WARNING: constraints.txt cannot be met on Python $python_id;" \
         "installing requirements.txt pins alone (other packages unpinned)" >&2
    "${pip[@]}" -r "$requirements"
fi
pins_satisfied || die "pip did not install the pinned versions from $requirements"
[[ -x "$venv/bin/moto_server" ]] || die "moto_server missing from $venv/bin"
echo "$want" > "$stamp"
report
