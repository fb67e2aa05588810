/**
 * The Ollama emulator in a process of its own, so the benchmark's client load does not share
 * its event loop. Prints one JSON line, {"event":"listening","url":"http://127.0.0.1:PORT",
 * "control":"http://127.0.0.1:PORT2"}, on stdout once it is ready, and stops on SIGTERM/SIGINT.
 *
 * The control address takes `PUT /behaviour` with a JSON patch of the emulator's behaviour (for
 * example {"tokenIntervalMs":33.3} for a paced workload): the paths the benchmark built all lead
 * to this one emulator, so its pace is changed in place, never by a second emulator. It listens
 * on loopback only and answers 400 with the reason to a patch the emulator refuses.
 * `withoutModels` / `withModels` change its model list (a computer that lacks the benchmark's model).
 *
 *   node --import tsx bench/emulator-process.ts '{"tokenIntervalMs":0}'
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';

const { withoutModels = [], withModels = [], ...options } = JSON.parse(process.argv[2] ?? '{}') as {
  tokenIntervalMs?: number;
  firstByteDelayMs?: number;
  defaultTokens?: number;
  withoutModels?: string[];
  withModels?: string[];
};
const emulator = new OllamaEmulator({ tokenIntervalMs: 0, firstByteDelayMs: 0, defaultTokens: 8, ...options });
for (const name of withoutModels) if (!emulator.models.delete(name)) throw new Error(`the emulator has no model ${name} to leave out`);
for (const name of withModels) emulator.models.add(name);
const url = await emulator.start();

const MAX_PATCH_BYTES = 4096;
const control = http.createServer((req, res) => {
  const answer = (status: number, message?: string): void => void (message ? res.writeHead(status, { 'content-type': 'text/plain' }).end(message + '\n') : res.writeHead(status).end());
  if (req.method !== 'PUT' || req.url !== '/behaviour') return answer(404, 'only PUT /behaviour');
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => {
    body += c;
    if (body.length > MAX_PATCH_BYTES) req.destroy();
  });
  req.on('end', () => {
    try {
      emulator.set(JSON.parse(body) as Parameters<OllamaEmulator['set']>[0]);
      answer(204);
    } catch (e) {
      answer(400, `behaviour patch refused: ${(e as Error).message}`);
    }
  });
});
await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
process.stdout.write(JSON.stringify({ event: 'listening', url, control: controlUrl }) + '\n');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 1_000);
    force.unref();
    control.close();
    void Promise.resolve(emulator.close()).finally(() => process.exit(0));
  });
}
