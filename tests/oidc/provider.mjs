// A real OpenID Provider for the tests: the npm package oidc-provider (pinned in scripts/test.sh,
// installed in .oidc/), listening on 127.0.0.1 over plain HTTP. Needs node 20.18 or newer.
//
//   node tests/oidc/provider.mjs CONFIG.json [--port N] [--issuer URL]
//
// CONFIG.json:
//   {"port": 0, "hostname": "127.0.0.1",   (optional; port 0 picks a free port, and the issuer is
//                                           then http://HOSTNAME:PORT; it always listens on 127.0.0.1)
//    "issuer": "http://...",               (optional, instead of that)
//    "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//                 "token_endpoint_auth_method": "client_secret_basic"}],   (the default)
//    "accounts": {"alice": {"email": "...", "name": "...", "groups": ["..."], ...}}}
//
// An account's claims are its entry plus "sub" (the login, unless the entry names one) and
// "email_verified" (true, unless the entry says otherwise); the scopes openid, profile, email and
// groups release them in the ID token itself as well as at userinfo. PKCE (S256) is required of
// every client. Sign-in and consent are oidc-provider's own development screens: any password is
// accepted, the login is the account's key, and an unknown login shows the sign-in form again with
// an alert.
//
// Prints "READY <issuer>" on stdout once listening; errors go to stderr; SIGTERM and SIGINT stop it.
// Signing keys and cookie keys are generated at every start: nothing secret is kept on disk.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, resolve } from 'node:path';
import { parse as parseForm } from 'node:querystring';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULE = resolve(ROOT, '.oidc', 'node_modules', 'oidc-provider', 'lib', 'index.js');

function fail(message) {
  process.stderr.write(`oidc provider: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { overrides: {} };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--port' || arg === '--issuer') {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      args.overrides[arg.slice(2)] = arg === '--port' ? Number(argv[i + 1]) : argv[i + 1];
      i += 1;
    } else if (!args.config) {
      args.config = arg;
    } else {
      fail(`unexpected argument ${arg}`);
    }
  }
  if (!args.config) fail('usage: node provider.mjs CONFIG.json [--port N] [--issuer URL]');
  return args;
}

function loadConfig(path, overrides) {
  let config;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    fail(`cannot read the config ${path}: ${error.message}`);
  }
  config = { port: 0, clients: [], accounts: {}, ...config, ...overrides };
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) {
    fail(`port must be an integer from 0 to 65535, not ${JSON.stringify(config.port)}`);
  }
  return config;
}

function clientMetadata(client) {
  if (!client.client_id) fail('every client needs a client_id');
  return {
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...client,
  };
}

function accountFinder(accounts) {
  return async function findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    const entry = accounts[id];
    const claims = { sub: id, ...entry };
    if (entry.email !== undefined && entry.email_verified === undefined) claims.email_verified = true;
    return { accountId: id, claims: async () => claims };
  };
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' }] };
}

const INTERACTION = /^\/interaction\/[^/]+$/;
const UNKNOWN = '<p role="alert" style="color: #b00020">Unknown login: no such account.</p>';

// The development screens, made hermetic and accessible: no web font fetched from the internet,
// their two inputs named "Login" and "Password" (they only have placeholders), and an alert on
// the sign-in form shown again after an unknown login.
async function tidyScreens(ctx, next) {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    let body = ctx.body
      .replace(/@import url\([^)]*\);/g, '')
      .replace('name="login"', 'name="login" aria-label="Login"')
      .replace('name="password"', 'name="password" aria-label="Password"');
    if (ctx.query.unknown_login !== undefined) body = body.replace('<form ', `${UNKNOWN}<form `);
    ctx.body = body;
  }
}

// The development sign-in takes any login; an unknown one is sent back to the form instead of
// ending the authorization in a server error.
function refuseUnknownLogins(accounts) {
  return async function refuseUnknownLogin(ctx, next) {
    if (ctx.method === 'POST' && INTERACTION.test(ctx.path) && ctx.is('application/x-www-form-urlencoded')) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const form = parseForm(Buffer.concat(chunks).toString());
      if (form.prompt === 'login' && !Object.hasOwn(accounts, form.login)) {
        ctx.redirect(`${ctx.path}?unknown_login`);
        ctx.status = 303;
        return;
      }
      ctx.request.body = form; // read here, so oidc-provider takes it from here
    }
    await next();
  };
}

async function main() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 18)) {
    fail(`node ${process.versions.node} is too old for oidc-provider, which needs 20.18 or newer: `
      + 'run scripts/test.sh, which installs one in .oidc/bin/node');
  }
  const args = parseArgs(process.argv.slice(2));
  const config = loadConfig(args.config, args.overrides);
  if (!existsSync(MODULE)) {
    fail(`oidc-provider is not installed in ${resolve(ROOT, '.oidc')}: run scripts/test.sh, which installs it`);
  }
  const { default: Provider } = await import(pathToFileURL(MODULE).href);

  const server = createServer();
  await new Promise((done, reject) => {
    server.once('error', reject);
    server.listen(config.port, '127.0.0.1', done);
  });
  const issuer = config.issuer || `http://${config.hostname || '127.0.0.1'}:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: config.clients.map(clientMetadata),
    findAccount: accountFinder(config.accounts),
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
    },
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
  });
  provider.use(tidyScreens);
  provider.use(refuseUnknownLogins(config.accounts));
  provider.on('server_error', (_ctx, error) => process.stderr.write(`server_error: ${error.stack}\n`));
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'introspection.error']) {
    provider.on(event, (_ctx, error) => {
      process.stderr.write(`${event}: ${error.message} ${error.error_description || ''}\n`);
    });
  }

  server.on('request', provider.callback());
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((error) => fail(error.stack || String(error)));
