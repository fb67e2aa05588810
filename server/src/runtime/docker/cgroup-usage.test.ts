import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupReader, statField } from './cgroup-usage.js';

const ID = 'a'.repeat(64);

function tree(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'ctll-cgroup-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe('a container\'s cgroup use', () => {
  test('v1 with the cgroupfs driver: usage minus total_inactive_file, cpuacct.usage in ns', async (t) => {
    const root = tree(t, {
      [`memory/docker/${ID}/memory.usage_in_bytes`]: '10485760\n',
      [`memory/docker/${ID}/memory.stat`]: 'cache 4096\ninactive_file 1\ntotal_inactive_file 2097152\n',
      [`cpuacct/docker/${ID}/cpuacct.usage`]: '1500000000\n',
    });
    assert.deepEqual(await new CgroupReader(root).read(ID), { memoryBytes: 8388608, cpuSeconds: 1.5 });
  });

  test('v1 with the systemd driver', async (t) => {
    const root = tree(t, {
      [`memory/system.slice/docker-${ID}.scope/memory.usage_in_bytes`]: '1000',
      [`memory/system.slice/docker-${ID}.scope/memory.stat`]: 'total_inactive_file 100',
      [`cpuacct/system.slice/docker-${ID}.scope/cpuacct.usage`]: '2000000000',
    });
    assert.deepEqual(await new CgroupReader(root).read(ID), { memoryBytes: 900, cpuSeconds: 2 });
  });

  test('v2 with the cgroupfs and the systemd driver: memory.current minus inactive_file, usage_usec', async (t) => {
    for (const dir of [`docker/${ID}`, `system.slice/docker-${ID}.scope`]) {
      const root = tree(t, {
        [`${dir}/memory.current`]: '5000\n',
        [`${dir}/memory.stat`]: 'anon 3000\nfile 2000\ninactive_file 1200\n',
        [`${dir}/cpu.stat`]: 'usage_usec 250000\nuser_usec 200000\nsystem_usec 50000\n',
      });
      assert.deepEqual(await new CgroupReader(root).read(ID), { memoryBytes: 3800, cpuSeconds: 0.25 }, dir);
    }
  });

  test('a container without a cgroup, or an id that is not one, reads as undefined', async (t) => {
    const root = tree(t, { 'memory/docker/.keep': '' });
    assert.equal(await new CgroupReader(root).read(ID), undefined);
    assert.equal(await new CgroupReader(root).read('../../etc'), undefined);
  });

  test('statField reads one key, not a key it is the prefix of', () => {
    assert.equal(statField('total_inactive_file 7\ninactive_file 3\n', 'inactive_file'), 3);
    assert.equal(statField('usage_usec x\n', 'usage_usec'), undefined);
  });
});
