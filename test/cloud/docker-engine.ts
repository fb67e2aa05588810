/**
 * The gate of the tests that need a Docker engine: without one they report skipped with the
 * reason, except in CI (CI=true), where a missing engine is a failure of its own, so a broken CI
 * machine cannot turn every Docker test into a silent skip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';

/** `false` when an engine answers; else the skip reason (and, in CI, a failing test is added). */
export async function dockerEngineSkip(): Promise<false | string> {
  const probe = await DockerRuntime.probe();
  if (probe.ok) return false;
  if (process.env['CI'] === 'true') test('a Docker engine is reachable (CI machines must have one)', () => assert.fail(probe.error));
  return `no Docker engine here (${probe.error}); CI=true makes this a failure`;
}
