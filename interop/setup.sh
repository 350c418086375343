#!/usr/bin/env bash
# Installs the third-party JOSE libraries the interop tests verify tollgate's tokens with:
# PyJWT (Python) and jose (Node), and the OpenID Connect provider the federation interop tests
# take tokens from: oidc-provider (Node). Idempotent; run from anywhere: `bash interop/setup.sh`.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$dir/requirements.txt"

if [[ -f "$dir/package-lock.json" ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
else
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
fi

python3 -c 'import jwt; print("interop: PyJWT", jwt.__version__)'
schemathesis --version
node -p "'interop: jose ' + require(process.argv[1]).version" "$dir/node_modules/jose/package.json"
node -p "'interop: oidc-provider ' + require(process.argv[1]).version" "$dir/node_modules/oidc-provider/package.json"
