/**
 * The classic peer: an OpenSSH remote forward (`ssh -R`) on loopback, everything (keys, config,
 * pid file) in a temporary directory that is removed at the end. Debian's openssh, default
 * ciphers, no changes to the system's ssh configuration.
 *
 *   client → 127.0.0.1:<fwd> (sshd) ⇒ SSH channel ⇒ ssh client → 127.0.0.1:<emulator>
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { spawnChild, stopChild, type Child } from './children.js';
import { freePort, waitForPort } from './net-util.js';

export const SSHD = '/usr/sbin/sshd';

export interface SshForward {
  /** Base URL of the forwarded port: what the client talks to. */
  url: string;
  /** e.g. "OpenSSH_9.2p1 Debian-2+deb12u10, cipher chacha20-poly1305@openssh.com". */
  description: string;
  sshd: Child;
  ssh: Child;
  close(): Promise<void>;
}

export type SshForwardResult = { ok: true; forward: SshForward } | { ok: false; reason: string };

export async function startSshForward(targetPort: number): Promise<SshForwardResult> {
  if (!existsSync(SSHD)) return { ok: false, reason: 'sshd not installed (apt-get install openssh-server)' };
  for (const tool of ['/usr/bin/ssh', '/usr/bin/ssh-keygen']) {
    if (!existsSync(tool)) return { ok: false, reason: `${tool} not installed (apt-get install openssh-client)` };
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-ssh-'));
  let sshd: Child | undefined;
  let ssh: Child | undefined;
  const cleanup = async (): Promise<void> => {
    if (ssh) await stopChild(ssh);
    if (sshd) await stopChild(sshd);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const hostKey = join(dir, 'host_ed25519');
    const clientKey = join(dir, 'client_ed25519');
    for (const key of [hostKey, clientKey]) {
      execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key], { stdio: 'ignore' });
    }
    const authorizedKeys = join(dir, 'authorized_keys');
    writeFileSync(authorizedKeys, readFileSync(clientKey + '.pub'));
    chmodSync(authorizedKeys, 0o600);
    // Privilege separation needs its empty directory; Debian creates it only when the service starts.
    try {
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    } catch {
      /* not root: sshd will say so itself */
    }
    const sshdPort = await freePort();
    const fwdPort = await freePort();
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'AllowTcpForwarding yes',
        'GatewayPorts no',
        'PrintMotd no',
        'LogLevel INFO',
        '',
      ].join('\n'),
    );
    sshd = spawnChild('sshd', SSHD, ['-D', '-e', '-f', config, '-p', String(sshdPort)]);
    await sshd.waitFor((line) => (line.includes('Server listening on') ? true : undefined), 10_000, 'sshd to listen');

    const user = userInfo().username;
    ssh = spawnChild('ssh', '/usr/bin/ssh', [
      '-F', '/dev/null',
      '-N',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ExitOnForwardFailure=yes',
      '-o', 'LogLevel=ERROR',
      '-i', clientKey,
      '-p', String(sshdPort),
      '-R', `127.0.0.1:${fwdPort}:127.0.0.1:${targetPort}`,
      `${user}@127.0.0.1`,
    ]);
    await Promise.race([
      waitForPort(fwdPort, 15_000),
      ssh.exited.then((code) => {
        throw new Error(`ssh exited (code ${code}) before the forward was up:\n  ${ssh?.tail.join('\n  ')}\n  sshd: ${sshd?.tail.slice(-10).join('\n  ')}`);
      }),
    ]);
    const version = spawnSync('/usr/bin/ssh', ['-V'], { encoding: 'utf8' }).stderr.trim() || 'OpenSSH';
    // Both ends use their defaults, so the client's first cipher preference is what is negotiated.
    const cipher = /^ciphers (\S+)/m
      .exec(spawnSync('/usr/bin/ssh', ['-F', '/dev/null', '-G', '127.0.0.1'], { encoding: 'utf8' }).stdout)?.[1]
      ?.split(',')[0] ?? 'default';
    const forward: SshForward = {
      url: `http://127.0.0.1:${fwdPort}`,
      description: `${version.split(',')[0]}, cipher ${cipher}`,
      sshd,
      ssh,
      close: cleanup,
    };
    return { ok: true, forward };
  } catch (e) {
    await cleanup();
    return { ok: false, reason: `could not set up the forward: ${(e as Error).message}` };
  }
}
