/**
 * An embedded OpenID provider for when no Auth0 domain is configured (local use, tests).
 *
 * A real authorization server built on oidc-provider, not a stub: authorization code flow with
 * PKCE (S256) required, a native desktop client with a loopback redirect on any port (RFC 8252),
 * RS256 JWT access tokens for the API (RFC 8707 / RFC 9068), rotated refresh tokens and
 * revocation (RFC 7009). Its sign-in page asks for a user name and no password, so it must only
 * listen where the people who can reach it are trusted (by default 127.0.0.1). Signing key,
 * cookie keys, sessions and tokens are generated at start and kept in memory only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

import { silentLogger, type Logger } from '../log.js';
import { handleInteraction, INTERACTION_PATH, type InteractionContext } from './interactions.js';
import { contentSecurityPolicy, renderMessagePage } from './login-page.js';
import {
  DESKTOP_CLIENT_ID,
  generateSigningKey,
  providerConfiguration,
  WEB_CLIENT_ID,
} from './provider-configuration.js';

export { DESKTOP_CLIENT_ID, DESKTOP_LOOPBACK_REDIRECT_URI, WEB_CLIENT_ID } from './provider-configuration.js';
export { checkUserName, USER_NAME_PATTERN } from './login-page.js';

export interface EmbeddedIssuerOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** API identifier (an absolute URI); access tokens for it are RS256 JWTs (RFC 8707). */
  audience: string;
  /** Default 600. */
  accessTokenTtlSec?: number;
  /** Default 14 days. */
  refreshTokenTtlSec?: number;
  /** Redirect URIs of the browser web client (public SPA client 'cloudtolocalllm-web'). Default []. */
  webRedirectUris?: string[];
  /** CORS origins allowed for the web client's token endpoint calls. Default []. */
  webOrigins?: string[];
  /** Where internal provider errors are reported. Default: dropped. */
  logger?: Logger;
}

export interface EmbeddedIssuer {
  /** e.g. http://127.0.0.1:PORT */
  issuer: string;
  jwksUri: string;
  audience: string;
  desktopClientId: 'cloudtolocalllm-desktop';
  webClientId: 'cloudtolocalllm-web';
  close(): Promise<void>;
}

const DEFAULT_ACCESS_TOKEN_TTL_SEC = 600;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
const DEFAULT_REFRESH_TOKEN_TTL_SEC = 14 * 24 * 60 * 60;

function checkOptions(options: EmbeddedIssuerOptions): void {
  try {
    new URL(options.audience);
  } catch {
    throw new TypeError(`audience must be an absolute URI (RFC 8707 resource indicator), got ${JSON.stringify(options.audience)}`);
  }
  for (const [name, value] of [
    ['accessTokenTtlSec', options.accessTokenTtlSec],
    ['refreshTokenTtlSec', options.refreshTokenTtlSec],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
      throw new RangeError(`${name} must be a positive whole number of seconds, got ${value}`);
    }
  }
  for (const uri of options.webRedirectUris ?? []) new URL(uri);
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function startEmbeddedIssuer(options: EmbeddedIssuerOptions): Promise<EmbeddedIssuer> {
  checkOptions(options);
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger ?? silentLogger;
  if (!LOOPBACK_HOSTS.has(host)) {
    logger.warn('embedded issuer listens beyond this machine: anyone who reaches it can sign in under any user name', { host });
  }
  const webRedirectUris = options.webRedirectUris ?? [];
  // Where the web client returns to; the login page adds the exact origin of each request's
  // redirect URI (the desktop app's loopback port) itself.
  const formTargets = [...new Set(webRedirectUris.map((uri) => new URL(uri).origin))];
  const htmlPolicy = contentSecurityPolicy(formTargets);

  // The issuer URL carries the port, so the port must be known before the provider exists.
  let dispatch: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => dispatch(req, res));
  const address = await listen(server, options.port ?? 0, host);
  const issuer = `http://${urlHost(host)}:${address.port}`;

  try {
    const signingKey = await generateSigningKey();
    const provider = new Provider(
      issuer,
      providerConfiguration(
        {
          audience: options.audience,
          accessTokenTtlSec: options.accessTokenTtlSec ?? DEFAULT_ACCESS_TOKEN_TTL_SEC,
          refreshTokenTtlSec: options.refreshTokenTtlSec ?? DEFAULT_REFRESH_TOKEN_TTL_SEC,
          webRedirectUris,
          webOrigins: options.webOrigins ?? [],
          htmlPolicy,
        },
        signingKey,
      ),
    );
    // Requests come straight from the browser or app: never trust X-Forwarded-* headers.
    provider.proxy = false;
    provider.use(async (ctx, next) => {
      // Set before the route runs so oidc-provider's form_post page can add its script hash.
      ctx.set('Content-Security-Policy', htmlPolicy);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      await next();
    });
    provider.on('server_error', (_ctx: unknown, err: Error) => {
      logger.error('embedded issuer internal error', { err: err.message });
    });

    const interactionContext: InteractionContext = { provider, audience: options.audience, formTargets };
    const providerHandler = provider.callback();
    dispatch = (req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const match = INTERACTION_PATH.exec(path);
      if (!match) {
        providerHandler(req, res);
        return;
      }
      handleInteraction(interactionContext, req, res, match[1] ?? '', match[2] ? 'login' : 'show').catch((err: unknown) => {
        logger.error('embedded issuer interaction failed', { err: err instanceof Error ? err.message : String(err) });
        if (res.headersSent) {
          res.destroy();
          return;
        }
        res.statusCode = 500;
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('Content-Security-Policy', htmlPolicy);
        res.end(renderMessagePage('Sign-in error', 'The issuer failed to handle this step. Start the sign-in again.'));
      });
    };
  } catch (err) {
    server.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    audience: options.audience,
    desktopClientId: DESKTOP_CLIENT_ID,
    webClientId: WEB_CLIENT_ID,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Browsers and fetch keep connections alive; do not wait for them to time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
