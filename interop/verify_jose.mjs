#!/usr/bin/env node
// Checks a tollgate access token with Node's `jose`, an independent JOSE implementation.
//
//   node interop/verify_jose.mjs --jwks-url URL --token JWT --issuer ISS --audience AUD --alg EdDSA
//
// Fetches the JWKS over HTTP, picks the key named by the token's kid, verifies the signature,
// the RFC 9068 header typ "at+jwt", iss, aud and the presence of the registered claims. Prints
// the payload as JSON on stdout and exits 0; any refusal goes to stderr with exit status 1.

import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify } from 'jose';

// RFC 9068 §2.2 (plus nbf, which tollgate always sets).
const REQUIRED_CLAIMS = ['exp', 'iat', 'nbf', 'iss', 'aud', 'sub', 'jti', 'client_id'];

async function main() {
  const { values: args } = parseArgs({
    options: {
      'jwks-url': { type: 'string' },
      token: { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      alg: { type: 'string' },
    },
    strict: true,
  });
  for (const name of ['jwks-url', 'token', 'issuer', 'audience', 'alg']) {
    if (!args[name]) throw new Error(`--${name} is required`);
  }
  const jwks = createRemoteJWKSet(new URL(args['jwks-url']));
  const { payload } = await jwtVerify(args.token, jwks, {
    issuer: args.issuer,
    audience: args.audience,
    algorithms: [args.alg],
    typ: 'at+jwt',
    requiredClaims: REQUIRED_CLAIMS,
  });
  process.stdout.write(`${JSON.stringify(payload)}\n`);
}

main().catch((err) => {
  process.stderr.write(`jose: ${err.code ?? err.name}: ${err.message}\n`);
  process.exitCode = 1;
});
