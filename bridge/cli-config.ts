/**
 * The bridge CLI's configuration, read once at start: its flags, and the environment variables
 * it knows (CLOUDTOLOCALLLM_TOKEN; CTLL_CONFIG_DIR through keys/config-dir.ts). The only place in bridge/ that reads process.env
 * (through the `env` its caller passes) or the command line.
 *
 * The token comes from the environment or a file, never from the command line (other users of
 * the machine can read every process's arguments), and is read again before every connection
 * attempt: a token file rewritten by another program is picked up on the next reconnect.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { machineNameFromHost, machineNameProblem } from './connection/protocol.js';
import { DEFAULT_OLLAMA_URL } from './forward/ollama-target.js';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from './ingress/ollama-routes.js';
import { parseManagementList } from './ingress/policy.js';
import { configDir, CONFIG_DIR_VARIABLE } from './keys/config-dir.js';

export const TOKEN_VARIABLE = 'CLOUDTOLOCALLLM_TOKEN';

export const USAGE = `usage: cloudtolocalllm-bridge --proxy-url URL [options]

  --proxy-url URL     the proxy's bridge endpoint (ws://, wss://, http:// or https://)
  --ollama-url URL    your Ollama (default ${DEFAULT_OLLAMA_URL})
  --allow LIST        model management the cloud may use: ${MANAGEMENT_ENDPOINTS.join(',')} or all (default none)
  --token-file FILE   read the bearer token from FILE (else ${TOKEN_VARIABLE})
  --ca-file FILE      also trust the CA certificate(s) in FILE (PEM) for wss:// (self-signed cloud)
  --name NAME         this computer's name on your endpoint (default: the host name); each
                      computer needs its own, the same name again replaces the older one
  --transport T       h2 or websocket: only this tunnel transport (default: h2, falling back
                      to websocket where the cloud or a proxy on the way takes nothing else)
  --json              status events as JSON lines on stdout

Client keys (npm run keys) are read from ${CONFIG_DIR_VARIABLE}, else the desktop app's data directory.
`;

/** A flag or the environment is wrong: the message says which and how. */
export class CliConfigError extends Error {
  override name = 'CliConfigError';
}

export interface BridgeCliConfig {
  proxyUrl: string;
  ollamaUrl: string;
  allowManagement: ReadonlySet<ManagementEndpoint>;
  /** The --ca-file's PEM text. */
  ca?: string;
  json: boolean;
  /** This computer's name on the endpoint (--name, else from the host name). */
  name: string;
  /** --transport: only this tunnel transport; none lets the bridge choose (h2, else websocket). */
  transport?: 'h2' | 'websocket';
  /** Where the client keys are (CTLL_CONFIG_DIR, else the desktop's user data directory). */
  configDir: string;
  /** The bearer token now (throws CliConfigError when there is none or its file is unreadable). */
  readToken: () => string;
}

/** `help` when --help was asked; else the configuration, or a CliConfigError. */
export function readCliConfig(args: readonly string[], env: NodeJS.ProcessEnv): BridgeCliConfig | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        'proxy-url': { type: 'string' },
        'ollama-url': { type: 'string', default: DEFAULT_OLLAMA_URL },
        allow: { type: 'string', default: '' },
        'token-file': { type: 'string' },
        'ca-file': { type: 'string' },
        json: { type: 'boolean', default: false },
        name: { type: 'string' },
        transport: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    throw new CliConfigError((e as Error).message);
  }
  if (values.help) return 'help';
  const proxyUrl = values['proxy-url'];
  if (!proxyUrl) throw new CliConfigError('--proxy-url is required');

  const tokenFile = values['token-file'];
  const envToken = env['CLOUDTOLOCALLLM_TOKEN'];
  const readToken = (): string => {
    if (tokenFile) {
      try {
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own --token-file argument
        return readFileSync(tokenFile, 'utf8').trim();
      } catch (e) {
        throw new CliConfigError(`cannot read --token-file ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    if (!envToken) throw new CliConfigError(`no token: set ${TOKEN_VARIABLE} or pass --token-file`);
    return envToken.trim();
  };

  let ca: string | undefined;
  const caFile = values['ca-file'];
  if (caFile) {
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own --ca-file argument
      ca = readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new CliConfigError(`cannot read --ca-file ${caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  const name = values.name ?? machineNameFromHost(hostname());
  const nameProblem = machineNameProblem(name);
  if (nameProblem) throw new CliConfigError(`--name: ${nameProblem}`);

  const transport = values.transport;
  if (transport !== undefined && transport !== 'h2' && transport !== 'websocket') {
    throw new CliConfigError(`--transport must be h2 or websocket, not "${transport.slice(0, 40)}"`);
  }

  let allowManagement;
  try {
    allowManagement = parseManagementList(values.allow);
  } catch (e) {
    throw new CliConfigError((e as Error).message);
  }
  return {
    proxyUrl,
    ollamaUrl: values['ollama-url'],
    allowManagement,
    ...(ca !== undefined ? { ca } : {}),
    ...(transport !== undefined ? { transport } : {}),
    json: values.json,
    name,
    configDir: configDir(env),
    readToken,
  };
}
