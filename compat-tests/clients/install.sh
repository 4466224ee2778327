#!/usr/bin/env bash
# Installs what compat-tests/clients/run.sh drives: rclone and restic from
# Debian (as root), and awscli, boto3, s3cmd and requests into the venv
# .venv-clients at the repository root. Idempotent: installs only what is
# missing, and reinstalls the venv's packages only when requirements.txt
# changed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${ARBOR_CLIENTS_VENV:-$ROOT/.venv-clients}
REQUIREMENTS=$ROOT/compat-tests/clients/requirements.txt

missing=()
for package in rclone restic python3-venv; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
stamp=$VENV/.requirements.sha256
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "installing $(grep -v '^#' "$REQUIREMENTS" | tr '\n' ' ')into $VENV"
    "$VENV/bin/pip" install -q -r "$REQUIREMENTS"
    echo "$want" >"$stamp"
fi
echo "clients: $(rclone version | head -n 1), $(restic version | cut -d' ' -f1-2)," \
    "$("$VENV/bin/aws" --version 2>&1), s3cmd $("$VENV/bin/s3cmd" --version | cut -d' ' -f3)"
