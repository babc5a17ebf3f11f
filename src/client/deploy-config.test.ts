import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { PlatformError } from '../core/errors.js';
import { functionLimits } from '../core/function-config.js';
import { deployConfigFields, deployPatch, parseDeployConfig, readDeployConfig } from './deploy-config.js';
import type { DeployFlags } from './deploy-config.js';

const repoRoot = new URL('../../', import.meta.url).pathname;

const rejects = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof PlatformError && pattern.test(err.message));

describe('parseDeployConfig', () => {
  it('takes the deploy settings, null for a default, and ignores $schema', () => {
    const text = JSON.stringify({
      $schema: './schema.json',
      handler: 'src/app.main',
      env: { A: '1' },
      secrets: { TOKEN: 'api-token' },
      timeoutSeconds: 10,
      memoryMB: null,
      network: true,
      allowNet: ['10.0.0.0/8'],
    });
    assert.deepEqual(parseDeployConfig(text, 'savassan.json'), {
      handler: 'src/app.main',
      env: { A: '1' },
      secrets: { TOKEN: 'api-token' },
      timeoutSeconds: 10,
      memoryMB: null,
      network: true,
      allowNet: ['10.0.0.0/8'],
    });
  });

  it('names unknown fields, with the field meant where it can tell', () => {
    rejects(
      () => parseDeployConfig('{"timeout": 5, "colour": "red"}', 'fn/savassan.json'),
      /^\[INVALID_CONFIG\] fn\/savassan\.json: unknown fields "timeout", "colour" \(did you mean "timeoutSeconds" for "timeout"\?\); known fields: handler, runtime, env/,
    );
  });

  it('refuses values of the wrong type, and what is not a JSON object', () => {
    rejects(() => parseDeployConfig('{"memoryMB": "256"}', 'f.json'), /f\.json: memoryMB must be an integer or null/);
    rejects(() => parseDeployConfig('{"env": {"A": 1}}', 'f.json'), /env must be an object of string values/);
    rejects(() => parseDeployConfig('{"network": "yes"}', 'f.json'), /network must be true or false/);
    rejects(() => parseDeployConfig('[1]', 'f.json'), /f\.json must hold a JSON object/);
    rejects(() => parseDeployConfig('{', 'f.json'), /f\.json is not valid JSON/);
  });

  it('reads savassan.json from a directory, nothing from a directory without one', async () => {
    assert.deepEqual(await readDeployConfig(`${repoRoot}examples/echo`), {
      env: { GREETING: 'hi from savassan.json' },
      timeoutSeconds: 5,
      memoryMB: 128,
    });
    assert.equal(await readDeployConfig(`${repoRoot}examples/hello`), null);
    await assert.rejects(readDeployConfig(`${repoRoot}examples/hello`, `${repoRoot}none.json`), /cannot read/);
  });
});

describe('the JSON schema of savassan.json', () => {
  it('lists the fields the CLI reads, with the platform limits', async () => {
    const schema = JSON.parse(await readFile(`${repoRoot}schemas/savassan.schema.json`, 'utf8')) as {
      additionalProperties: boolean;
      properties: Record<string, { minimum?: number; maximum?: number }>;
    };
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(Object.keys(schema.properties).sort(), ['$schema', ...deployConfigFields].sort());
    for (const field of ['timeoutSeconds', 'memoryMB', 'maxInstances', 'minInstances', 'idleSeconds'] as const) {
      const { min, max } = functionLimits[field];
      assert.deepEqual([schema.properties[field]?.minimum, schema.properties[field]?.maximum], [min, max], field);
    }
  });
});

describe('deployPatch', () => {
  const flags = (partial: Partial<DeployFlags> = {}): DeployFlags => ({
    settings: {},
    setEnv: {},
    unsetEnv: [],
    setSecrets: {},
    ...partial,
  });
  const current = { OLD: '1', DEBUG: '1' };
  let reads = 0;
  const currentEnv = () => {
    reads++;
    return Promise.resolve({ env: { ...current }, secrets: { OLD_SECRET: 'old-secret' } });
  };

  it('sends nothing without a file or flags (the server keeps the current settings)', async () => {
    reads = 0;
    assert.deepEqual(await deployPatch(null, flags(), currentEnv), { patch: {}, notSet: [] });
    assert.equal(reads, 0);
  });

  it('lets flags win over the file, and keeps the file’s nulls', async () => {
    const { patch } = await deployPatch(
      { timeoutSeconds: 5, memoryMB: 128, idleSeconds: null, env: { A: 'file' } },
      flags({ settings: { timeoutSeconds: 9, handler: undefined } }),
      currentEnv,
    );
    assert.deepEqual(patch, { timeoutSeconds: 9, memoryMB: 128, idleSeconds: null, env: { A: 'file' } });
  });

  it('adds --env to and removes --unset-env from the current environment', async () => {
    reads = 0;
    const { patch, notSet } = await deployPatch(
      null,
      flags({ setEnv: { NEW: 'x', OLD: '2' }, unsetEnv: ['DEBUG', 'NEVER'] }),
      currentEnv,
    );
    assert.deepEqual(patch, { env: { OLD: '2', NEW: 'x' } });
    assert.deepEqual(notSet, ['NEVER']);
    assert.equal(reads, 1);
  });

  it('starts from the file’s env instead of the current one when the file has one', async () => {
    reads = 0;
    const { patch } = await deployPatch(
      { env: { FILE: 'f', DEBUG: '1' } },
      flags({ setEnv: { FLAG: 'x' }, unsetEnv: ['DEBUG'] }),
      currentEnv,
    );
    assert.deepEqual(patch, { env: { FILE: 'f', FLAG: 'x' } });
    assert.equal(reads, 0);
  });

  it('adds --secret to the current secrets, and takes the variable out of the environment', async () => {
    const { patch } = await deployPatch(null, flags({ setSecrets: { DEBUG: 'debug-secret' } }), currentEnv);
    assert.deepEqual(patch, {
      env: { OLD: '1' },
      secrets: { OLD_SECRET: 'old-secret', DEBUG: 'debug-secret' },
    });
  });

  it('refuses a variable both set and unset', async () => {
    await assert.rejects(
      deployPatch(null, flags({ setEnv: { A: '1' }, unsetEnv: ['A'] }), currentEnv),
      /A is both set \(--env, --secret\) and unset/,
    );
  });
});
