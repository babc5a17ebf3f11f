import type { FunctionConfig } from '../../src/core/function-config.js';
import type { NewVersion } from '../../src/core/ports/metadata-store.js';

/** A function's settings as a store keeps them (compiled), with `overrides`. */
export function functionConfig(overrides: Partial<FunctionConfig> = {}): FunctionConfig {
  return {
    handler: 'index.handler',
    runtime: 'nodejs20',
    env: { MODE: 'test' },
    timeoutSeconds: 30,
    memoryMB: 256,
    maxInstances: 10,
    minInstances: 0,
    idleSeconds: 300,
    network: false,
    allowNet: [],
    secrets: {},
    retries: 2,
    maxEventAgeSeconds: 21600,
    retryDelaySeconds: 60,
    asyncConcurrency: 10,
    onSuccess: null,
    onFailure: null,
    ...overrides,
  };
}

/** A version of `functionName` to deploy, its code hash made from `contentHash`, with `overrides`. */
export function newVersion(functionName: string, contentHash: string, overrides: Partial<NewVersion> = {}): NewVersion {
  return {
    functionName,
    codeSha256: `${contentHash}-code`.padEnd(64, '0'),
    codeSizeBytes: 1234,
    contentHash,
    config: functionConfig(),
    ...overrides,
  };
}
