import { test } from 'node:test';
import assert from 'node:assert/strict';
import { certificateProblem } from './certificate-errors.js';

const withCode = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });

test('certificate verification codes are named; other errors are not certificate problems', () => {
  assert.equal(certificateProblem(withCode('CERT_HAS_EXPIRED'))?.problem, 'expired');
  assert.equal(certificateProblem(withCode('DEPTH_ZERO_SELF_SIGNED_CERT'))?.problem, 'self-signed');
  assert.equal(certificateProblem(withCode('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'))?.problem, 'unknown-ca');
  assert.match(certificateProblem(withCode('CERT_REVOKED', 'certificate revoked'))!.message, /did not verify \(certificate revoked\) \(CERT_REVOKED\)$/);
  for (const other of [withCode('ECONNREFUSED'), withCode('__proto__'), withCode('toString'), new Error('no code'), 'not an error', undefined]) {
    assert.equal(certificateProblem(other), undefined, String(other));
  }
});
