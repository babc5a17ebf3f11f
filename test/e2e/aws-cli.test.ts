// `aws lambda invoke` against the gateway: the AWS CLI (Debian's `awscli`, or one on the PATH) unchanged but for
// `--endpoint-url`. Skipped, saying so, where no AWS CLI is installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { strToU8, zipSync } from 'fflate';
import { startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);

/** The AWS CLI: Debian's where installed, else the first `aws` on the PATH; null when there is none. */
async function awsCli(): Promise<{ path: string; version: string } | null> {
  const candidates = ['/usr/bin/aws', 'aws'];
  for (const path of candidates) {
    if (path.startsWith('/') && !existsSync(path)) continue;
    try {
      const { stdout, stderr } = await run(path, ['--version']);
      return { path, version: `${stdout}${stderr}`.trim() };
    } catch {
      // not this one
    }
  }
  return null;
}

const cli = await awsCli();

describe(
  'the AWS CLI against the Lambda API',
  { skip: cli === null ? 'no AWS CLI installed (apt-get install awscli)' : false },
  () => {
    let server: ServerProcess;
    let dir: string;

    before(async () => {
      server = await startServer(['--no-examples']);
      await server.client.deploy(
        'greet',
        zipSync({ 'index.js': strToU8('exports.handler = async (e) => ({ hi: e.name });') }),
      );
      dir = await mkdtemp(join(tmpdir(), 'sv-aws-'));
    });
    after(async () => {
      await server?.cleanup();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('invokes a function with `aws lambda invoke --endpoint-url`', async () => {
      const out = join(dir, 'out.json');
      // Version 2 reads --payload as base64 unless told otherwise; version 1 takes it as it is.
      const payloadFormat = cli!.version.startsWith('aws-cli/2') ? ['--cli-binary-format', 'raw-in-base64-out'] : [];
      const { stdout } = await run(
        cli!.path,
        [
          'lambda',
          'invoke',
          '--endpoint-url',
          server.url,
          '--function-name',
          'greet',
          ...payloadFormat,
          '--payload',
          '{"name":"Ada"}',
          out,
        ],
        {
          env: {
            ...process.env,
            AWS_ACCESS_KEY_ID: 'AKIDTEST',
            AWS_SECRET_ACCESS_KEY: 'secret',
            AWS_DEFAULT_REGION: 'us-east-1',
            AWS_CONFIG_FILE: join(dir, 'none'),
            AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
            AWS_PAGER: '',
          },
        },
      );
      const answer = JSON.parse(stdout) as { StatusCode: number; ExecutedVersion: string };
      assert.equal(answer.StatusCode, 200);
      assert.equal(answer.ExecutedVersion, '$LATEST', 'an unqualified invoke runs $LATEST, as Lambda says');
      assert.deepEqual(JSON.parse(await readFile(out, 'utf8')), { hi: 'Ada' });
    });
  },
);
