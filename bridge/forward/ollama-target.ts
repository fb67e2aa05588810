/** The local Ollama the bridge talks to, parsed and checked once at start. */
export interface OllamaTarget {
  url: URL;
  /** host[:port] as it must appear in the Host header Ollama checks. */
  host: string;
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
}

export const DEFAULT_OLLAMA_URL = 'http://127.0.0.1:11434';

export function parseOllamaUrl(raw: string): OllamaTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`Ollama URL "${raw}" is not a URL; expected something like ${DEFAULT_OLLAMA_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`Ollama URL "${raw}" must start with http:// or https://`);
  }
  if (url.username || url.password) throw new Error(`Ollama URL "${raw}" must not contain a user name or password`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new Error(`Ollama URL "${raw}" must be just scheme, host and port (no path, query or fragment)`);
  }
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { url, host: url.host, protocol: url.protocol, hostname, port };
}
