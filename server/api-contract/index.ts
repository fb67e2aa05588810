/**
 * The cloud server's HTTP API as its clients see it: the api-backend answers with these shapes,
 * the web client (server/web) and the desktop app (main/) read them. Types and constants only,
 * no Node and no DOM, so each side imports it as it is and a renamed field fails the build.
 *
 * The bridge's own routes (/ws/bridge, /api/tunnel/renew) belong to the tunnel's wire contract
 * (@cloudtolocalllm/bridge/connection/protocol): the bridge is their client.
 */
export * from './routes.js';
export * from './client-config.js';
export * from './proxy-status.js';
export * from './errors.js';
