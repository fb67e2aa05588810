/**
 * The proxy image's name and the user networks' subnet range have one home, the proxy spec
 * (@cloudtolocalllm/proxy-spec/container-spec). Shell scripts and the compose file cannot
 * import it, so they repeat it as `${VAR:-default}`; this test holds every such repetition to the
 * spec, so changing the default in one place and not the others fails here, naming the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_PROXY_IMAGE, DEFAULT_SUBNET_RANGE } from '@cloudtolocalllm/proxy-spec/container-spec';
import { ROOT } from './deploy-harness.js';

/** Where the defaults are repeated, and under which variable names each file spells them. */
const FILES = [
  'server/deploy/docker-compose.multi.yml',
  'server/deploy/.env.example',
  'scripts/deploy/build-images.sh',
  'scripts/deploy/deploy-multi-container.sh',
  'scripts/build-proxy-image.sh',
] as const;
const SPEC: Record<string, string> = {
  CTLL_PROXY_IMAGE: DEFAULT_PROXY_IMAGE,
  // scripts/build-proxy-image.sh takes the tag as IMAGE.
  IMAGE: DEFAULT_PROXY_IMAGE,
  CTLL_SUBNET_RANGE: DEFAULT_SUBNET_RANGE,
};

/** Every `${NAME:-value}`, and in an env file every `NAME=value` line, for the names above. */
export function repeatedDefaults(text: string, envFile = false): Array<{ name: string; value: string }> {
  const found: Array<{ name: string; value: string }> = [];
  for (const m of text.matchAll(/\$\{([A-Z_]+):-([^}]*)\}/g)) if (m[1]! in SPEC) found.push({ name: m[1]!, value: m[2]! });
  if (envFile) for (const m of text.matchAll(/^([A-Z_]+)=(.+)$/gm)) if (m[1]! in SPEC) found.push({ name: m[1]!, value: m[2]!.trim() });
  return found;
}

test('the scan finds both spellings, and only for the spec\'s names', () => {
  assert.deepEqual(repeatedDefaults('A=${CTLL_PROXY_IMAGE:-x:1}\nCTLL_SUBNET_RANGE=10.0.0.0/8\nOTHER=${PORT:-80}\n', true), [
    { name: 'CTLL_PROXY_IMAGE', value: 'x:1' },
    { name: 'CTLL_SUBNET_RANGE', value: '10.0.0.0/8' },
  ]);
});

test('every default the deployment files repeat is the proxy spec\'s', () => {
  const wrong: string[] = [];
  const seen = new Set<string>();
  for (const file of FILES) {
    for (const { name, value } of repeatedDefaults(readFileSync(join(ROOT, file), 'utf8'), file.endsWith('.env.example'))) {
      seen.add(name === 'IMAGE' ? 'CTLL_PROXY_IMAGE' : name);
      if (value !== SPEC[name]) wrong.push(`${file}: ${name} defaults to "${value}", the proxy spec says "${SPEC[name]}"`);
    }
  }
  assert.deepEqual(wrong, []);
  // The scan must have found the repetitions it exists for (a renamed variable would hide them).
  assert.deepEqual([...seen].sort(), ['CTLL_PROXY_IMAGE', 'CTLL_SUBNET_RANGE']);
});
