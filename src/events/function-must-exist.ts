import { PlatformError } from '../core/errors.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';

/**
 * An `AsyncInvocationsOptions.check` that asks the metadata store only whether the function exists (NOT_FOUND when
 * not): for what submits events away from a gateway (the control plane's schedules). A version or alias is resolved
 * when the event runs.
 */
export function functionMustExist(
  metadata: Pick<MetadataStore, 'getFunction'>,
): (functionName: string, qualifier: string | undefined) => Promise<void> {
  return async (functionName) => {
    if ((await metadata.getFunction(functionName)) === null) {
      throw new PlatformError('NOT_FOUND', `function ${functionName} not found`);
    }
  };
}
