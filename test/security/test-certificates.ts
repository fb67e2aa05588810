/**
 * Certificates for TLS tests, made with the openssl command line: a private CA, and leaf
 * certificates it issues for any name and validity window (`openssl ca` is the one command of
 * OpenSSL 3.0 that can date a certificate in the past, for an expired one).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../deploy/deploy-harness.js';

export interface TestCa {
  dir: string;
  cert: string;
  key: string;
  pem: string;
}

export interface IssuedCertificate {
  cert: string;
  key: string;
  pem: string;
  keyPem: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function makeCa(dir: string, name = 'CloudToLocalLLM Test CA'): Promise<TestCa> {
  mkdirSync(join(dir, 'issued'), { recursive: true });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `database = ${join(dir, 'index.txt')}`,
      `new_certs_dir = ${join(dir, 'issued')}`,
      `serial = ${join(dir, 'serial')}`,
      'rand_serial = yes',
      'default_md = sha256',
      'policy = any',
      'copy_extensions = copy',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  const cert = join(dir, 'ca.pem');
  const key = join(dir, 'ca.key');
  await run('openssl', [
    'req', '-x509', ...EC_KEY, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', key, '-out', cert,
  ]);
  return { dir, cert, key, pem: readFileSync(cert, 'utf8') };
}

/** A leaf for `name` (its only subjectAltName), valid from `start` to `end` (default: now, for two days). */
export async function issue(ca: TestCa, file: string, name: string, validity: { start?: Date; end?: Date } = {}): Promise<IssuedCertificate> {
  const cert = join(ca.dir, `${file}.pem`);
  const key = join(ca.dir, `${file}.key`);
  const csr = join(ca.dir, `${file}.csr`);
  await run('openssl', ['req', '-new', ...EC_KEY, '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-keyout', key, '-out', csr]);
  const start = validity.start ?? new Date(Date.now() - 60_000);
  const end = validity.end ?? new Date(Date.now() + 2 * 86_400_000);
  await run('openssl', [
    'ca', '-batch', '-notext', '-config', join(ca.dir, 'ca.cnf'), '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert,
    '-startdate', asn1Time(start), '-enddate', asn1Time(end),
  ]);
  return { cert, key, pem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

/** YYYYMMDDHHMMSSZ, as `openssl ca -startdate/-enddate` wants it. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}/, '');
}
