import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFunctionConfig, functionLimits } from './function-config.js';
import { inheritFunctionConfig, versionChanges } from './function-config-patch.js';

const current = compileFunctionConfig({
  handler: 'src/app.main',
  env: { API_URL: 'https://a', DEBUG: '1' },
  timeoutSeconds: 10,
  memoryMB: 512,
  network: true,
  allowNet: ['10.0.0.0/8'],
});

describe('inheritFunctionConfig', () => {
  it('keeps every setting a patch leaves out', () => {
    assert.deepEqual(compileFunctionConfig(inheritFunctionConfig(current, {})), current);
  });

  it('takes what the patch gives, env as a whole', () => {
    const next = compileFunctionConfig(inheritFunctionConfig(current, { timeoutSeconds: 20, env: { ONLY: 'x' } }));
    assert.deepEqual(next, { ...current, timeoutSeconds: 20, env: { ONLY: 'x' } });
  });

  it('restores the default of a field given as null', () => {
    const next = compileFunctionConfig(inheritFunctionConfig(current, { timeoutSeconds: null, env: null }));
    assert.equal(next.timeoutSeconds, functionLimits.timeoutSeconds.default);
    assert.deepEqual(next.env, {});
    assert.equal(next.memoryMB, 512);
  });

  it('drops the inherited allowNet when the network is turned off', () => {
    const next = compileFunctionConfig(inheritFunctionConfig(current, { network: false }));
    assert.equal(next.network, false);
    assert.deepEqual(next.allowNet, []);
  });

  it('gives a new function the defaults for what the patch leaves out', () => {
    assert.deepEqual(
      compileFunctionConfig(inheritFunctionConfig(null, { memoryMB: 128 })),
      compileFunctionConfig({ memoryMB: 128 }),
    );
  });
});

describe('versionChanges', () => {
  const version = (codeSha256: string, config = current) => ({ codeSha256, config });

  it('is empty when nothing differs', () => {
    assert.deepEqual(versionChanges(version('a'), version('a')), []);
  });

  it('names the code, values of plain fields, and only the keys of env', () => {
    const next = compileFunctionConfig({
      ...current,
      env: { API_URL: 'https://b', TOKEN: 's3cr3t' },
      timeoutSeconds: 30,
      network: false,
      allowNet: [],
    });
    const changes = versionChanges(version('a'), version('b', next));
    assert.deepEqual(changes, [
      { field: 'code', from: 'a', to: 'b' },
      { field: 'env', added: ['TOKEN'], removed: ['DEBUG'], changed: ['API_URL'] },
      { field: 'timeoutSeconds', from: 10, to: 30 },
      { field: 'network', from: true, to: false },
      { field: 'allowNet', from: ['10.0.0.0/8'], to: [] },
    ]);
    assert.doesNotMatch(JSON.stringify(changes), /s3cr3t|https/);
  });
});
