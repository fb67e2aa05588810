import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { CliConfigError, readCliConfig } from './cli-config.js';
import { machineNameFromHost, machineNameProblem } from './connection/protocol.js';

const base = ['--proxy-url', 'ws://127.0.0.1:1/bridge'];
const env = { CLOUDTOLOCALLLM_TOKEN: 't', CTLL_CONFIG_DIR: '/tmp/ctll-cli-config-test' };

test('--name names the computer; without it, the host name', () => {
  const named = readCliConfig([...base, '--name', 'desk-2'], env);
  assert.ok(named !== 'help');
  assert.equal(named.name, 'desk-2');
  const unnamed = readCliConfig(base, env);
  assert.ok(unnamed !== 'help');
  assert.equal(unnamed.name, machineNameFromHost(hostname()));
  assert.equal(machineNameProblem(unnamed.name), undefined, 'the default is always a valid name');
});

test('a bad --name is refused at start, saying what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /^--name: the computer name is empty$/],
    ['x'.repeat(64), /^--name: the computer name is 64 characters long; at most 63 are allowed$/],
    ['my desk', /^--name: the computer name "my desk" may hold only letters, digits, "\.", "-" and "_", and must start with a letter or digit$/],
    ['-desk', /must start with a letter or digit/],
    ['desk\r\nx-evil: 1', /may hold only letters/],
  ];
  for (const [name, message] of cases) {
    assert.throws(() => readCliConfig([...base, `--name=${name}`], env), (e: unknown) => e instanceof CliConfigError && message.test(e.message), JSON.stringify(name));
  }
});

test('a default name is made valid from any host name', () => {
  assert.equal(machineNameFromHost('Desk.local'), 'Desk');
  assert.equal(machineNameFromHost('my box'), 'my-box');
  assert.equal(machineNameFromHost('--'), 'default');
  assert.equal(machineNameFromHost('x'.repeat(80)).length, 63);
  assert.equal(machineNameFromHost(''), 'default');
});
