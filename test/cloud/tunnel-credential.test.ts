/**
 * A tunnel lives only while its credential does (issue 13, finding 3: a bridge connected with a
 * token valid for 5 s still served the user's requests 45 s later). The embedded issuer hands out
 * tokens valid for a few seconds; a bridge that renews keeps its tunnel, one that cannot is cut
 * at the deadline with a reason it shows, and renewals are verified like every token.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair, SignJWT } from 'jose';
import type { BridgeStatus } from '@cloudtolocalllm/bridge/supervisor/status';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';

/** Long enough for a sign-in and a connection on a loaded machine, short enough for a test. */
const TOKEN_TTL_SEC = 4;

describe('the tunnel and its credential', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  before(async () => {
    emulator = new OllamaEmulator();
    await emulator.start();
    cloud = await startCloud({ accessTokenTtlSec: TOKEN_TTL_SEC });
  });
  after(async () => {
    await cloud.close();
    await emulator.close();
  });

  test('without renewal the proxy ends the tunnel at the deadline, and the bridge says why', async () => {
    const token = await cloud.signIn('expiring');
    const bridge = cloud.bridge(token, emulator.url);
    const statuses: BridgeStatus[] = [];
    bridge.on('status', (s) => statuses.push(s));
    bridge.start();
    const connected = await waitForState(bridge, 'connected');
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    // The same (expiring) token is all getToken has: renewals cannot extend anything.
    await waitUntil(() => statuses.some((s) => s.code === 'credential-expired'), 'the tunnel ended for its credential', (TOKEN_TTL_SEC + 10) * 1000);
    assert.equal(connected.credentialExpiresAt, exp, "the bridge knew its deadline: the token's exp");
    const ended = statuses.find((s) => s.code === 'credential-expired')!;
    assert.equal(ended.state, 'disconnected');
    assert.match(ended.reason ?? '', /credential expired without renewal/);
    assert.ok(ended.retryInMs !== undefined, 'it reconnects (with a fresh token, where it has one)');
    assert.ok(Date.now() >= exp, 'not before the deadline');
    // Reconnecting with the expired token is refused: the stolen-token takeover ends here.
    await waitUntil(() => statuses.some((s) => s.code === 'unauthorized'), 'the expired token is refused');
    const res = await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(await cloud.signIn('expiring')) });
    assert.equal(res.status, 503, 'no tunnel serves the user any more');
    await bridge.stop();
  });

  test('with fresh tokens the bridge renews before expiry and the tunnel lives on', async () => {
    const bridge = cloud.bridge('', emulator.url, { getToken: () => cloud.signIn('renewing') });
    const statuses: BridgeStatus[] = [];
    bridge.on('status', (s) => statuses.push(s));
    bridge.start();
    const first = await waitForState(bridge, 'connected');
    // Three renewals: the tunnel outlives three token lifetimes.
    await waitUntil(
      () => new Set(statuses.map((s) => s.credentialExpiresAt)).size >= 4,
      'three renewals extended the deadline',
      (TOKEN_TTL_SEC * 4 + 10) * 1000,
    );
    assert.ok(Date.now() > first.credentialExpiresAt!, 'past the first token\'s expiry');
    assert.deepEqual(statuses.filter((s) => s.state !== 'connected' && s.state !== 'connecting'), [], 'never disconnected');
    assert.equal(bridge.status.connectedSince, first.connectedSince, 'the same tunnel');
    const res = await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(await cloud.signIn('renewing')) });
    assert.equal(res.status, 200, 'it still serves');
    assert.ok(cloud.audit.entries.some((e) => e.action === 'bridge.renew' && e.result === 'ok'));
    await bridge.stop();
  });

  test('a renewal is verified: forged tokens, other users and other tunnels extend nothing', async () => {
    const token = await cloud.signIn('victim');
    const bridge = cloud.bridge(token, emulator.url);
    bridge.start();
    const connected = await waitForState(bridge, 'connected');
    const deadline = connected.credentialExpiresAt!;
    const renew = (t: string, tunnel: string) =>
      fetch(`${cloud.url}/api/tunnel/renew`, { method: 'POST', headers: { ...bearer(t), 'content-type': 'application/json' }, body: JSON.stringify({ tunnel }) });
    // A token signed with a key the issuer does not publish, claiming to be the victim.
    const foreign = await generateKeyPair('RS256');
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ sub: 'victim' }).setProtectedHeader({ alg: 'RS256', kid: 'attacker' }).setIssuer(cloud.server.issuer).setAudience(cloud.server.audience).setIssuedAt(now).setExpirationTime(now + 3600).sign(foreign.privateKey);
    const tunnelId = 'guessing-does-not-work';
    assert.equal((await renew(forged, tunnelId)).status, 401, 'a forged token is refused');
    assert.equal((await renew(await cloud.signIn('mallory'), tunnelId)).status, 409, "another user's token reaches only their own (absent) tunnel");
    const wrongTunnel = await renew(await cloud.signIn('victim'), tunnelId);
    assert.equal(wrongTunnel.status, 409, 'the right user, but not the tunnel that is open');
    assert.match(((await wrongTunnel.json()) as { error: string }).error, /not open/);
    assert.equal(cloud.server.manager.record(userHash('victim'))?.state, 'running');
    await waitUntil(() => bridge.status.code === 'credential-expired' || bridge.status.state !== 'connected', 'the victim\'s tunnel still ends at its deadline', (TOKEN_TTL_SEC + 10) * 1000);
    assert.ok(Date.now() >= deadline);
    await bridge.stop();
  });

  test('a replaced bridge says by whom; the audit log records address and client of each connection', async () => {
    const getToken = () => cloud.signIn('twice');
    const first = cloud.bridge('', emulator.url, { getToken });
    first.start();
    await waitForState(first, 'connected');
    const second = cloud.bridge('', emulator.url, { getToken });
    second.start();
    await waitForState(second, 'connected');
    const replaced = await waitForState(first, 'disconnected');
    assert.equal(replaced.code, 'replaced');
    assert.equal(replaced.replacedBy?.address, '127.0.0.1');
    assert.ok(Math.abs((replaced.replacedBy?.at ?? 0) - Date.now()) < 60_000, 'with the time');
    assert.match(replaced.reason ?? '', /connected from 127\.0\.0\.1 at \d{4}-\d\d-\d\dT/);
    const connects = cloud.audit.entries.filter((e) => e.action === 'bridge.connect' && e.userHash === userHash('twice'));
    assert.equal(connects.length, 2);
    for (const c of connects) {
      assert.equal(c.address, '127.0.0.1');
      assert.match(c.client ?? '', /^CloudToLocalLLM-bridge\/\d+\.\d+\.\d+ \(tunnel v\d+\)$/);
    }
    await second.stop();
    await first.stop();
  });
});
