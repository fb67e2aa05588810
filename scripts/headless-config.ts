/**
 * The configuration of `npm run start:headless`, read once at start: its flags, and the
 * environment the cloud server reads (without AUTH0_*: the local stack always uses the embedded
 * issuer, whatever the shell has). The only place of the headless stack that reads process.env.
 */
import { configDir } from '@cloudtolocalllm/bridge/keys/config-dir';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { machineNameFromHost, machineNameProblem } from '@cloudtolocalllm/bridge/connection/protocol';
import { DEFAULT_OLLAMA_URL } from '@cloudtolocalllm/bridge/forward/ollama-target';
import type { ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import { parseManagementList } from '@cloudtolocalllm/bridge/ingress/policy';
import { loadConfig, singleUserEnv, type ServerConfig } from '@cloudtolocalllm/server/config';

export interface HeadlessConfig {
  server: ServerConfig;
  ollamaUrl: string;
  allowManagement: Set<ManagementEndpoint>;
  /** Signed in as this user of the embedded issuer. */
  user: string;
  /** One JSON line on stdout instead of the human text. */
  json: boolean;
  /** This computer's name on the endpoint (--name, else from the host name). */
  name: string;
  /** Where the client keys are (CTLL_CONFIG_DIR, else the desktop's user data directory). */
  configDir: string;
}

/** Throws an Error whose message says what is wrong (a flag, or every bad server setting by name). */
export function readHeadlessConfig(args: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): HeadlessConfig {
  const { values } = parseArgs({
    args: [...args],
    options: {
      port: { type: 'string', default: '0' },
      runtime: { type: 'string', default: 'auto' },
      'ollama-url': { type: 'string', default: DEFAULT_OLLAMA_URL },
      allow: { type: 'string', default: '' },
      user: { type: 'string', default: 'local-user' },
      json: { type: 'boolean', default: false },
      name: { type: 'string' },
    },
    strict: true,
  });
  const name = values.name ?? machineNameFromHost(hostname());
  const nameProblem = machineNameProblem(name);
  if (nameProblem) throw new Error(`--name: ${nameProblem}`);
  return {
    // A ConfigError names every bad setting.
    server: loadConfig(singleUserEnv(env), ['--port', values.port, '--host', '127.0.0.1', '--runtime', values.runtime]),
    ollamaUrl: values['ollama-url'],
    allowManagement: parseManagementList(values.allow),
    user: values.user,
    json: values.json,
    name,
    configDir: configDir(env),
  };
}
