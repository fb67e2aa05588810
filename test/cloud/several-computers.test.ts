/**
 * Several computers through the real api-backend (issue 10): its bridge route joins computers of
 * different names to the user's one proxy up to CTLL_MAX_BRIDGES, lets a computer come back under
 * its own name while full, refuses one more name with a message that says so, passes the pin
 * header on, and /api/proxy/status lists the computers. Its slots all come back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyStatus } from '@cloudtolocalllm/api-contract';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';

describe('several computers behind the api-backend', () => {
  let cloud: Cloud;
  const emulators: OllamaEmulator[] = [];
  let token: string;

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const e = new OllamaEmulator({ tokenIntervalMs: 1 });
      await e.start();
      emulators.push(e);
    }
    emulators[1]!.models.add('mistral:7b');
    emulators[1]!.models.delete('llama3.2:latest');
    cloud = await startCloud({ env: { CTLL_MAX_BRIDGES: '2' } });
    token = await cloud.signIn('many-user');
  });
  after(async () => {
    await cloud.close();
    await Promise.all(emulators.map((e) => e.close()));
  });

  const status = async (): Promise<ProxyStatus> => (await (await fetch(`${cloud.url}/api/proxy/status`, { headers: bearer(token) })).json()) as ProxyStatus;

  test('two names join; status lists both; the pin passes through; a third name is refused; the same name replaces; every slot comes back', async () => {
    const desk = cloud.bridge(token, emulators[0]!.url, { name: 'desk' });
    const lap = cloud.bridge(token, emulators[1]!.url, { name: 'lap' });
    desk.start();
    await waitForState(desk, 'connected');
    lap.start();
    await waitForState(lap, 'connected');
    await waitUntil(async () => (await status()).computers.length === 2 && (await status()).computers.every((c) => c.models.length > 0), 'both computers listed with their models');
    const listed = (await status()).computers;
    assert.deepEqual(listed.map((c) => c.name), ['desk', 'lap']);
    assert.ok(listed.find((c) => c.name === 'lap')!.models.includes('mistral:7b'));
    assert.ok(listed.every((c) => c.address === '127.0.0.1' && c.inFlight === 0 && c.connectedSince !== null));

    // The pin header reaches the proxy through the gateway.
    const pinned = (await (await fetch(`${cloud.url}/ollama/api/tags`, { headers: { ...bearer(token), 'X-CloudToLocalLLM-Machine': 'lap' } })).json()) as { models: Array<{ name: string }> };
    assert.ok(pinned.models.some((m) => m.name === 'mistral:7b') && !pinned.models.some((m) => m.name === 'llama3.2:latest'));
    const union = (await (await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(token) })).json()) as { models: Array<{ name: string }> };
    assert.ok(union.models.some((m) => m.name === 'mistral:7b') && union.models.some((m) => m.name === 'llama3.2:latest'));

    // A third name over CTLL_MAX_BRIDGES=2: refused, saying why.
    const third = cloud.bridge(token, emulators[0]!.url, { name: 'tower' });
    third.start();
    const refused = await waitForState(third, 'error');
    assert.match(refused.reason ?? '', /too many (bridge connections|computers)/);
    assert.match(refused.reason ?? '', /limit 2/);
    await third.stop();

    // The same name while full: it replaces its older link instead of being refused.
    const desk2 = cloud.bridge(token, emulators[0]!.url, { name: 'desk' });
    desk2.start();
    await waitForState(desk2, 'connected');
    const old = await waitForState(desk, 'disconnected');
    assert.equal(old.code, 'replaced');
    await waitUntil(async () => (await status()).computers.map((c) => c.name).join() === 'desk,lap', 'still desk and lap');

    await Promise.all([desk.stop(), desk2.stop(), lap.stop()]);
    const { limits } = cloud.server.api;
    await waitUntil(() => limits.inUse('bridge') === 0, `the bridge slots are back (${limits.inUse('bridge')})`);
    await waitUntil(async () => (await status()).computers.length === 0, 'no computer listed');
  });
});
