/**
 * The Ollama emulator in a process of its own, so the benchmark's client load does not share
 * its event loop. Prints one JSON line, {"event":"listening","url":"http://127.0.0.1:PORT"}, on
 * stdout once it is ready, and stops on SIGTERM/SIGINT. `withoutModels` / `withModels` change
 * its model list (a computer that lacks the benchmark's model).
 *
 *   node --import tsx bench/emulator-process.ts '{"tokenIntervalMs":0}'
 */
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
process.stdout.write(JSON.stringify({ event: 'listening', url }) + '\n');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 1_000);
    force.unref();
    void Promise.resolve(emulator.close()).finally(() => process.exit(0));
  });
}
