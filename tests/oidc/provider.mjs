// A real OpenID provider (panva's oidc-provider) for the tests, on loopback.
//
// Started by tests/oidc/__init__.py; every option is a command-line flag:
//   --issuer http://127.0.0.1:PORT   the issuer; the server listens on its host and port
//   --jwks FILE                      JWKS with private keys; the first key signs
//   --resource URL                   the default resource indicator (the archive's URL)
//   --redirect-uri URL               redirect URI of the public client (repeatable)
//   --client-id ID --client-secret S the confidential client (client_credentials)
//   --public-client-id ID            the public client (authorization code + PKCE S256)
//   --account ID                     account logged in when the request has no login_hint
//   --groups a,b                     the `groups` claim when a request names none
//
// Access tokens for a resource indicator are JWTs (RFC 9068) with aud = the resource and the
// scopes read write delete admin. Test conveniences, on loopback only:
//   - the token request may carry `groups` (comma-separated; empty = none) and `expires_in`
//     (seconds), read by extraTokenClaims and ttl below;
//   - the authorization request's login_hint names the account; login and consent are granted
//     without a form (GET /interaction/:uid), so plain HTTP clients and browsers complete it;
//   - POST /_test/rotate makes a new signing key the active one (the old one stays published),
//     POST /_test/drop-old unpublishes all but the active one; both answer the JWKS's kids.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    jwks: { type: 'string' },
    resource: { type: 'string', default: '' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'client-id': { type: 'string', default: 'archive-tests' },
    'client-secret': { type: 'string', default: 'archive-tests-secret' },
    'public-client-id': { type: 'string', default: 'viewer' },
    account: { type: 'string', default: 'alice' },
    groups: { type: 'string', default: '' },
  },
});
if (!args.issuer || !args.jwks) {
  console.error('usage: provider.mjs --issuer URL --jwks FILE [options]');
  process.exit(2);
}

const SCOPES = 'read write delete admin';
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];
const splitGroups = (value) => value.split(',').map((g) => g.trim()).filter(Boolean);

let keys = JSON.parse(fs.readFileSync(args.jwks, 'utf8')).keys;

function configuration() {
  return {
    clients: [
      {
        client_id: args['client-id'],
        client_secret: args['client-secret'],
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: args['public-client-id'],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: args['redirect-uri'],
      },
    ],
    jwks: { keys },
    cookies: { keys: COOKIE_KEYS },
    scopes: ['openid'],
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? (args.resource || undefined),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          scope: SCOPES,
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const requested = ctx?.oidc?.body?.groups;
      if (typeof requested === 'string') return { groups: splitGroups(requested) };
      return { groups: splitGroups(args.groups) };
    },
    ttl: {
      AccessToken: (ctx) => Number(ctx?.oidc?.body?.expires_in) || 300,
      ClientCredentials: (ctx) => Number(ctx?.oidc?.body?.expires_in) || 300,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // The tests run on one machine: no clock skew to allow for.
    clockTolerance: 0,
  };
}

// A new key set needs a new Provider; the memory adapter's storage is shared by all of them in
// this process, so grants, sessions and codes survive the swap.
let provider;
let callback;
function build() {
  provider = new Provider(args.issuer, configuration());
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  callback = provider.callback();
}
build();

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const kids = () => ({ kids: keys.map((k) => k.kid) });

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const accountId = params.login_hint || args.account;
    await provider.interactionFinished(req, res, { login: { accountId } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  answer(res, 400, { error: `unexpected prompt ${prompt.name}` });
}

const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, args.issuer).pathname;
    if (req.method === 'POST' && path === '/_test/rotate') {
      keys = [newKey(), ...keys];
      build();
      answer(res, 200, kids());
    } else if (req.method === 'POST' && path === '/_test/drop-old') {
      keys = keys.slice(0, 1);
      build();
      answer(res, 200, kids());
    } else if (path.startsWith('/interaction/')) {
      await interaction(req, res);
    } else {
      callback(req, res);
    }
  } catch (error) {
    console.error(error);
    if (!res.headersSent) answer(res, 500, { error: String(error) });
  }
});

const issuer = new URL(args.issuer);
server.listen(Number(issuer.port), issuer.hostname, () => {
  console.log(`oidc-provider listening on ${args.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
