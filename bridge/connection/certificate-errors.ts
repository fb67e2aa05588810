/**
 * Why a wss:// or https:// endpoint's certificate did not verify, in words a person can act on.
 * Node reports OpenSSL's verification result as an error code; Node's own messages for them
 * ("self-signed certificate", "unable to verify the first certificate") do not say what to do,
 * and a wrong name or an expired certificate can also mean someone is in the middle.
 */

export type CertificateProblem = 'wrong-name' | 'expired' | 'not-yet-valid' | 'self-signed' | 'unknown-ca' | 'invalid';

const TRUST_HINT = 'give the bridge that certificate (bridge CLI: --ca-file FILE; any Node program: NODE_EXTRA_CA_CERTS=FILE)';

const PROBLEMS: Record<string, CertificateProblem> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'wrong-name',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not-yet-valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown-ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown-ca',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown-ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown-ca',
  CERT_UNTRUSTED: 'unknown-ca',
  CERT_SIGNATURE_FAILURE: 'invalid',
  CERT_REVOKED: 'invalid',
  CERT_REJECTED: 'invalid',
  INVALID_CA: 'invalid',
  INVALID_PURPOSE: 'invalid',
  CERT_CHAIN_TOO_LONG: 'invalid',
  PATH_LENGTH_EXCEEDED: 'invalid',
};

function sentence(problem: CertificateProblem, error: { reason?: unknown; message: string }): string {
  switch (problem) {
    case 'wrong-name':
      // Node's `reason` names the host and the names the certificate holds.
      return `its certificate is for another name (${typeof error.reason === 'string' ? error.reason : error.message}): check the URL; if it is right, someone may be intercepting the connection`;
    case 'expired':
      return "its certificate has expired: the server's operator must renew it (or this computer's clock is wrong)";
    case 'not-yet-valid':
      return "its certificate is not valid yet: check this computer's clock";
    case 'self-signed':
      return `its certificate is self-signed and this computer does not trust it: if you run this cloud with a self-signed certificate, ${TRUST_HINT}`;
    case 'unknown-ca':
      return `its certificate was issued by a certificate authority this computer does not trust: if you run this cloud with a private CA, ${TRUST_HINT.replace('that certificate', "the CA's certificate")}`;
    case 'invalid':
      return `its certificate did not verify (${error.message})`;
  }
}

/**
 * For an error of a TLS connection whose peer certificate did not verify: which problem, and a
 * sentence that names it and what to do ("its certificate has expired: ... (CERT_HAS_EXPIRED)").
 * Undefined for every other error.
 */
export function certificateProblem(error: unknown): { problem: CertificateProblem; message: string } | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === undefined || !Object.hasOwn(PROBLEMS, code)) return undefined;
  const problem = PROBLEMS[code]!;
  return { problem, message: `${sentence(problem, error as Error & { reason?: unknown })} (${code})` };
}
