// Test kit: a throwaway CA with a server certificate (for 127.0.0.1) and a client certificate, made by the system's
// openssl into a directory of the test's, for servers the tests start with TLS.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const opensslBinary = '/usr/bin/openssl';

export function opensslAvailable(): boolean {
  return existsSync(opensslBinary);
}

/** PEM files in `dir`. */
export interface TestCertificates {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Makes a CA, a server certificate for `ip` and a client certificate, all EC P-256, valid for a day. */
export async function makeTestCertificates(dir: string, ip = '127.0.0.1'): Promise<TestCertificates> {
  const file = (name: string): string => join(dir, name);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(
    opensslBinary,
    ['req', '-x509', ...key, '-keyout', file('ca.key'), '-out', file('ca.crt')].concat([
      '-subj',
      '/CN=savassan-test-ca',
      '-days',
      '1',
    ]),
  );
  for (const [name, extensions] of [
    ['server', `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth,clientAuth\n`],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    await writeFile(file(`${name}.ext`), extensions);
    await run(
      opensslBinary,
      ['req', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`)].concat([
        '-subj',
        `/CN=savassan-test-${name}`,
      ]),
    );
    await run(opensslBinary, [
      ...['x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.crt'), '-CAkey', file('ca.key')],
      ...['-CAcreateserial', '-out', file(`${name}.crt`), '-days', '1', '-extfile', file(`${name}.ext`)],
    ]);
  }
  return {
    ca: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
  };
}
