/**
 * The oidc-provider configuration of the embedded issuer: two public clients (PKCE required, S256
 * only), JWT access tokens for one API (RFC 8707 resource indicators, RFC 9068 token format),
 * rotated refresh tokens, revocation (RFC 7009). Everything lives in memory.
 */
import { generateKeyPair as generateKeyPairCallback, randomBytes, type JsonWebKey } from 'node:crypto';
import { promisify } from 'node:util';
import type { ClientMetadata, Configuration, JWK, KoaContextWithOIDC, ResourceServer } from 'oidc-provider';
import { errors } from 'oidc-provider';

import { memoryAdapterFactory } from './memory-store.js';
import { renderLogoutPage, renderMessagePage } from './login-page.js';

const generateKeyPair = promisify(generateKeyPairCallback);

export const DESKTOP_CLIENT_ID = 'cloudtolocalllm-desktop';
export const WEB_CLIENT_ID = 'cloudtolocalllm-web';

/**
 * Registered without a port: for a native client and an http loopback address oidc-provider
 * compares redirect URIs with the port removed, so any port the desktop app listens on matches
 * (RFC 8252 §7.3).
 */
export const DESKTOP_LOOPBACK_REDIRECT_URI = 'http://127.0.0.1/callback';

/** OpenID scopes the issuer knows; the API itself defines no scopes. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile'] as const;

export interface ProviderSettings {
  audience: string;
  accessTokenTtlSec: number;
  refreshTokenTtlSec: number;
  webRedirectUris: readonly string[];
  webOrigins: readonly string[];
  /** Content-Security-Policy for the HTML pages oidc-provider renders itself. */
  htmlPolicy: string;
}

/** A fresh RSA 2048 signing key, kept in memory only: tokens die with the process. */
export async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('rsa', { modulusLength: 2048 });
  const jwk: JsonWebKey = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('base64url'), alg: 'RS256', use: 'sig' } as JWK;
}

function clients(settings: ProviderSettings): ClientMetadata[] {
  const desktop: ClientMetadata = {
    client_id: DESKTOP_CLIENT_ID,
    client_name: 'CloudToLocalLLM desktop app',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: [DESKTOP_LOOPBACK_REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
  if (settings.webRedirectUris.length === 0) return [desktop];
  // oidc-provider refuses a code-flow client without redirect URIs, so the web client exists only
  // when it has somewhere to return to.
  const web: ClientMetadata = {
    client_id: WEB_CLIENT_ID,
    client_name: 'CloudToLocalLLM',
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    redirect_uris: [...settings.webRedirectUris],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
  return [desktop, web];
}

function resourceServer(settings: ProviderSettings): ResourceServer {
  return {
    scope: '',
    audience: settings.audience,
    accessTokenTTL: settings.accessTokenTtlSec,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

export function providerConfiguration(settings: ProviderSettings, signingKey: JWK): Configuration {
  const cookieKeys = [randomBytes(32).toString('base64url')];
  const webOrigins = new Set(settings.webOrigins);

  return {
    // In memory, one store per provider (memory-store.ts says why not oidc-provider's own).
    adapter: memoryAdapterFactory(),
    jwks: { keys: [signingKey] },
    clients: clients(settings),
    clientDefaults: { id_token_signed_response_alg: 'RS256', token_endpoint_auth_method: 'none' },
    scopes: [...OIDC_SCOPES],
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    responseTypes: ['code'],
    clientAuthMethods: ['none'],
    pkce: { methods: ['S256'], required: () => true },

    // The person is whoever typed the user name: no account store, the name is the subject.
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, name: sub, preferred_username: sub }),
    }),

    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.type = 'html';
          ctx.body = renderLogoutPage(form, ctx.host);
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.type = 'html';
          ctx.body = renderMessagePage('Signed out', 'You are signed out. You can close this window.');
        },
      },
      resourceIndicators: {
        enabled: true,
        // Clients that do not send `resource` (or send Auth0's `audience` instead) still get an
        // access token for the API rather than an opaque one for the userinfo endpoint.
        defaultResource: (_ctx, _client, oneOf) => {
          if (oneOf === undefined || oneOf.includes(settings.audience)) return settings.audience;
          return oneOf;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          if (resourceIndicator !== settings.audience) {
            throw new errors.InvalidTarget(`unknown resource indicator; this issuer only serves ${settings.audience}`);
          }
          return resourceServer(settings);
        },
      },
    },

    // Refresh tokens for every client allowed the grant, without demanding offline_access with
    // prompt=consent (OIDC Core §11), so a plain sign-in yields one.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Tokens outlive the issuer's browser session; they end by expiry, rotation or revocation.
    expiresWithSession: () => false,
    // Every use of a refresh token consumes it and issues a new one; presenting a consumed token
    // again revokes the whole grant (RFC 9700 §4.14.2).
    rotateRefreshToken: true,

    ttl: {
      AccessToken: settings.accessTokenTtlSec,
      AuthorizationCode: 60,
      IdToken: settings.accessTokenTtlSec,
      Interaction: 10 * 60,
      Session: settings.refreshTokenTtlSec,
      Grant: settings.refreshTokenTtlSec,
      RefreshToken: (ctx: KoaContextWithOIDC, token, client) => {
        const rotated = ctx?.oidc?.entities.RotatedRefreshToken;
        // A browser client's refresh token cannot be bound to a key, so rotation must not extend
        // its life beyond the first token's (what oidc-provider does by default).
        if (rotated && client.applicationType === 'web' && !token.isSenderConstrained()) {
          return rotated.remainingTTL;
        }
        return settings.refreshTokenTtlSec;
      },
    },

    cookies: {
      keys: cookieKeys,
      // Lax, not None: a SameSite=None cookie must be Secure, and this issuer speaks plain http on
      // the loopback interface. Every cookie is only needed on same-site navigations.
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },

    clientBasedCORS: (_ctx, origin, client) => client.clientId === WEB_CLIENT_ID && webOrigins.has(origin),

    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.set('Content-Security-Policy', settings.htmlPolicy);
      const details: Record<string, string> = {};
      for (const [key, value] of Object.entries(out)) {
        if (typeof value === 'string') details[key] = value;
      }
      ctx.body = renderMessagePage('Sign-in error', 'The sign-in request was refused.', details);
    },
  };
}
