/** Where the api-backend answers what (docs/cloud-server.md, API). */

/** GET: the public sign-in settings (ClientConfig). */
export const CONFIG_PATH = '/api/config';
/** POST: starts the caller's streaming proxy (201 when started, 200 when it ran). */
export const PROXY_START_PATH = '/api/proxy/start';
/** POST: stops it (ProxyStatus plus `stopped`). */
export const PROXY_STOP_PATH = '/api/proxy/stop';
/** GET: ProxyStatus. */
export const PROXY_STATUS_PATH = '/api/proxy/status';
/** The Ollama API of the caller's own computer: /ollama/api/chat, /ollama/v1/models, ... */
export const OLLAMA_PREFIX = '/ollama';
/** GET, HEAD: is the api-backend up (no authentication). */
export const HEALTH_PATH = '/health';
