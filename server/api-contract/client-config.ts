/** What GET /api/config answers: where a client signs in, and for which API. */
export interface ClientConfig {
  /** The OpenID provider (Auth0 tenant, or the embedded issuer). */
  issuer: string;
  /** The API identifier access tokens must be issued for (`aud`). */
  audience: string;
  /** The desktop app's public client (PKCE, loopback redirect). */
  desktopClientId: string;
  /** The web client's public client, where the server serves the web client. */
  webClientId?: string;
}
