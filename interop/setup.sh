#!/usr/bin/env bash
# Installs the third-party JOSE libraries the interop tests verify tollgate's tokens with:
# PyJWT (Python) and jose (Node), and the OpenID Connect provider the federation interop tests
# take tokens from: oidc-provider (Node); for the registry token tests a real CNCF
# distribution registry (Debian `docker-registry`) and the `skopeo` client (apt, no Docker
# daemon); and for the browser tests of tollgate's pages Debian's `chromium` with
# `chromium-driver` (WebDriver). Idempotent; run from anywhere: `bash interop/setup.sh`.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$dir/requirements.txt"

if [[ -f "$dir/package-lock.json" ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
else
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
fi

# Registry tests run their own `docker-registry serve` on a free loopback port. The package's
# postinst starts its own service on :5000 where the init system lets it; nothing uses that
# one, so it is stopped and disabled right after the install.
if [[ ! -x /usr/bin/docker-registry ]] || ! command -v skopeo >/dev/null \
    || [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo -E)
    apt_install() { "${sudo[@]}" apt-get install -y -q --no-install-recommends docker-registry skopeo chromium chromium-driver; }
    apt_install || { "${sudo[@]}" apt-get update -q && apt_install; }
    if [[ -d /run/systemd/system ]]; then
        "${sudo[@]}" systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/docker-registry ]]; then
        "${sudo[@]}" /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
        "${sudo[@]}" update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
fi

python3 -c 'import jwt; print("interop: PyJWT", jwt.__version__)'
schemathesis --version
node -p "'interop: jose ' + require(process.argv[1]).version" "$dir/node_modules/jose/package.json"
node -p "'interop: oidc-provider ' + require(process.argv[1]).version" "$dir/node_modules/oidc-provider/package.json"
/usr/bin/docker-registry --version | sed 's/^/interop: /'
skopeo --version | sed 's/^/interop: /'
/usr/bin/chromium --version | sed 's/^/interop: /'
/usr/bin/chromedriver --version | sed 's/^/interop: /'
