import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLiveness, isUnreachable, PeerLiveness, type Probe } from './peer-liveness.js';

const A = '10.0.0.2:8443';
const B = '10.0.0.3:8443';
const SELF = '10.0.0.1:8443';
const MEMBERS = [SELF, A, B];
const SETTINGS = { intervalMs: 1000, timeoutMs: 500, failures: 3 };

/** A probe whose answers the test sets per peer; counts the probes asked. */
function scripted(): { probe: Probe; answers: Map<string, boolean>; asked: string[] } {
  const answers = new Map<string, boolean>();
  const asked: string[] = [];
  return {
    answers,
    asked,
    probe: async (peer) => {
      asked.push(peer);
      return answers.get(peer) ?? true;
    },
  };
}

function liveness(probe: Probe): { l: PeerLiveness; changes: Array<string[]>; failures: string[] } {
  const l = new PeerLiveness(SETTINGS, probe);
  const changes: Array<string[]> = [];
  const failures: string[] = [];
  l.on('change', (down) => changes.push([...down].sort()));
  l.on('failure', (peer) => failures.push(peer));
  l.setPeers([A, B]);
  return { l, changes, failures };
}

describe('peer liveness: K probes missed in a row and a peer is down, one answer and it is back', () => {
  test('a peer is live until it fails; it is down at the K-th miss in a row, not before; one answer brings it back', async () => {
    const s = scripted();
    const { l, changes, failures } = liveness(s.probe);
    assert.deepEqual(l.live(MEMBERS), MEMBERS, 'every listed member counts as live before any probe');
    s.answers.set(B, false);
    await l.round();
    await l.round();
    assert.deepEqual(l.live(MEMBERS), MEMBERS, 'two misses of three: still live');
    assert.deepEqual(changes, []);
    await l.round();
    assert.deepEqual(l.live(MEMBERS), [SELF, A]);
    assert.deepEqual(changes, [[B]], 'one change, naming the peer down');
    await l.round();
    assert.equal(changes.length, 1, 'a peer already down is not reported again');
    assert.deepEqual(failures, [B, B, B, B], 'every miss is counted, and only the failing peer');
    s.answers.set(B, true);
    await l.round();
    assert.deepEqual(l.live(MEMBERS), MEMBERS);
    assert.deepEqual(changes, [[B], []]);
    assert.equal(s.asked.filter((p) => p === SELF).length, 0, 'this node never probes itself');
    l.close();
  });

  test('a flapping peer (every other probe missed) is never dropped: no change, so no user moves', async () => {
    const s = scripted();
    const { l, changes, failures } = liveness(s.probe);
    for (let i = 0; i < 20; i++) {
      s.answers.set(A, i % 2 === 0);
      s.answers.set(B, i % 3 !== 0);
      await l.round();
    }
    assert.deepEqual(changes, []);
    assert.deepEqual(l.live(MEMBERS), MEMBERS);
    assert.ok(failures.length >= 10, `the misses were counted: ${failures.length}`);
    l.close();
  });

  test('a hop that cannot connect counts as a miss; K of them in a row drop the peer, a probe answered between resets the count', async () => {
    const s = scripted();
    const { l, changes } = liveness(s.probe);
    l.unreachable(A);
    l.unreachable(A);
    await l.round();
    l.unreachable(A);
    l.unreachable(A);
    assert.deepEqual(changes, [], 'the answered probe between reset the count');
    l.unreachable(A);
    assert.deepEqual(changes, [[A]]);
    l.unreachable('10.0.0.9:8443');
    assert.equal(changes.length, 1, 'an address that is no peer changes nothing');
    l.close();
  });

  test('a probe that throws is a miss; one slower than the next round is not asked twice', async () => {
    let release: ((ok: boolean) => void) | undefined;
    let asked = 0;
    const probe: Probe = (peer) => {
      asked += 1;
      if (peer === B) throw new Error('socket gone');
      return new Promise((resolve) => (release = resolve));
    };
    const { l, failures } = liveness(probe);
    const first = l.round();
    void l.round();
    assert.equal(asked, 3, 'A is still being probed: the second round asks B only');
    release!(true);
    await first;
    assert.deepEqual(failures, [B, B]);
    l.close();
  });

  test('a peer no longer listed is forgotten; if it was down, that is a change', async () => {
    const s = scripted();
    const { l, changes } = liveness(s.probe);
    s.answers.set(B, false);
    for (let i = 0; i < 3; i++) await l.round();
    l.setPeers([A]);
    assert.deepEqual(changes, [[B], []]);
    assert.deepEqual(l.live([SELF, A]), [SELF, A]);
    l.close();
  });

  test('nonsense settings are refused, naming what is wrong', () => {
    assert.equal(checkLiveness(SETTINGS), undefined);
    assert.match(checkLiveness({ ...SETTINGS, intervalMs: 50 }) ?? '', /probe interval must be 100-60000 ms, got 50/);
    assert.match(checkLiveness({ ...SETTINGS, timeoutMs: 2000 }) ?? '', /probe timeout must be 50 ms up to the probe interval \(1000 ms/);
    assert.match(checkLiveness({ ...SETTINGS, failures: 0 }) ?? '', /failures before a member is down must be 1-100, got 0/);
    assert.match(checkLiveness({ ...SETTINGS, failures: 1.5 }) ?? '', /got 1.5/);
    assert.throws(() => new PeerLiveness({ ...SETTINGS, timeoutMs: 0 }, async () => true), RangeError);
  });

  test('what counts as a hop that never reached its peer', () => {
    for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ETIMEDOUT']) assert.ok(isUnreachable(code), code);
    for (const code of ['ECONNRESET', 'EPIPE', undefined]) assert.ok(!isUnreachable(code), String(code));
  });
});
