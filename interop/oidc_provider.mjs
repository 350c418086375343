#!/usr/bin/env node
// A real, certified OpenID Connect provider (panva's `oidc-provider`) on loopback, as the
// upstream issuer for tollgate's federation interop tests (tests/it/interop_oidc.rs).
//
//   node interop/oidc_provider.mjs [--port PORT] [--exit-with-stdin]
//
// Listens on 127.0.0.1:PORT (0, the default, picks a free port) with the issuer
// `http://127.0.0.1:PORT`, serves discovery (/.well-known/openid-configuration) and JWKS
// (/jwks), and prints `READY <issuer>` on stdout once it accepts requests. Runs offline.
//
// One confidential client, CLIENT_ID / CLIENT_SECRET (client_secret_basic or _post), may use
// `client_credentials`. With a `resource` parameter naming one of RESOURCES it receives an
// RFC 9068 JWT access token (`typ: at+jwt`, `aud` = the resource, `sub` = `client_id` = the
// client id) signed with the algorithm that resource is configured for. The signing keys are
// generated at start, one RSA (RS256) and one P-256 (ES256), and both are in the JWKS.
//
// On stderr the provider warns that its state is in memory (as intended here) and, on Node 20,
// that it wants Node 22 LTS; everything used here works on Node >= 20.19.
//
// --exit-with-stdin: exit when stdin closes, so a test runner that dies without killing its
// children leaves no provider behind (the test pipes stdin and never writes to it).

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const CLIENT_ID = 'tollgate-interop';
const CLIENT_SECRET = 'interop-secret-not-for-production';

// Resource indicator (RFC 8707) → how its access tokens are signed and what they may carry.
const RESOURCES = {
  'https://api.example.com': { alg: 'RS256', scope: 'read write' },
  'https://api-es256.example.com': { alg: 'ES256', scope: 'read write' },
};

/** A private signing JWK with a kid and alg, generated now: nothing is read from disk. */
function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  const kid = `${alg.toLowerCase()}-${randomUUID()}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function configuration() {
  return {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'read write',
      },
    ],
    // RS256 first: the provider's default algorithm for everything it signs.
    jwks: {
      keys: [
        signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
        signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
      ],
    },
    scopes: ['openid', 'read', 'write'],
    features: {
      clientCredentials: { enabled: true },
      // Without resource indicators, client_credentials tokens are opaque: the JWT format
      // is chosen per resource server.
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo(_ctx, resource) {
          const rs = RESOURCES[resource];
          if (!rs) throw new Provider.errors.InvalidTarget(`unknown resource ${resource}`);
          return {
            scope: rs.scope,
            audience: resource,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: rs.alg } },
          };
        },
      },
      // The development login pages are of no use here and warn at start.
      devInteractions: { enabled: false },
    },
    // Cookie signing keys: unused by client_credentials, but their absence is warned about.
    cookies: { keys: [randomUUID()] },
  };
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
    strict: true,
  });
  // The issuer names the port, so the socket is bound before the provider exists.
  const server = createServer();
  const port = await listen(server, Number(args.port));
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider: ${err.stack}\n`));
  server.on('request', provider.callback());

  if (args['exit-with-stdin']) {
    process.stdin.on('close', () => process.exit(0));
    process.stdin.resume();
  }
  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  process.stderr.write(`oidc_provider: ${err.stack ?? err}\n`);
  process.exit(1);
});
