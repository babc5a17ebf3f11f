import { PlatformError } from './errors.js';

/** Where Lambda ARNs say a function lives: `arn:aws:lambda:{region}:{accountId}:function:{name}[:qualifier]`. */
export interface LambdaArnScope {
  region: string;
  accountId: string;
}

/** The region and account id ARNs name unless `savassan start --region/--account-id` says otherwise. */
export const defaultLambdaArnScope: LambdaArnScope = { region: 'us-east-1', accountId: '000000000000' };

const regionPattern = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const accountPattern = /^\d{12}$/;

/** Checks a region and account id once, at the edge (INVALID_CONFIG naming the bad one). */
export function compileLambdaArnScope(input: Partial<LambdaArnScope> = {}): LambdaArnScope {
  const region = input.region ?? defaultLambdaArnScope.region;
  const accountId = input.accountId ?? defaultLambdaArnScope.accountId;
  if (!regionPattern.test(region))
    throw new PlatformError('INVALID_CONFIG', `region must look like us-east-1, got ${JSON.stringify(region)}`);
  if (!accountPattern.test(accountId))
    throw new PlatformError('INVALID_CONFIG', `account id must be 12 digits, got ${JSON.stringify(accountId)}`);
  return { region, accountId };
}

/**
 * A function's ARN, with a qualifier (a version number, `$LATEST` or an alias) when given.
 *
 * @example
 * functionArn('shop', 2) // 'arn:aws:lambda:us-east-1:000000000000:function:shop:2'
 */
export function functionArn(
  functionName: string,
  qualifier?: number | string,
  scope: LambdaArnScope = defaultLambdaArnScope,
): string {
  const base = `arn:aws:lambda:${scope.region}:${scope.accountId}:function:${functionName}`;
  return qualifier === undefined ? base : `${base}:${qualifier}`;
}

/** A function named by name, partial ARN or full ARN, with the qualifier its `:suffix` names, if any. */
export interface FunctionReference {
  name: string;
  qualifier: string | undefined;
}

const namePart = '[a-zA-Z0-9_-]{1,140}';
const qualifierPart = '(\\$LATEST|[a-zA-Z0-9_-]{1,128})';
// name[:qualifier] | account:function:name[:qualifier] | arn:partition:lambda:region:account:function:name[:qualifier]
const referencePattern = new RegExp(
  `^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\\d{12}:function:|\\d{12}:function:)?(${namePart})(?::${qualifierPart})?$`,
);

/**
 * Reads Lambda's `FunctionName` (a name, `123456789012:function:name` or a full ARN, each with an optional
 * `:qualifier`); BAD_REQUEST for anything else. The region and account of an ARN are not checked: one server is one
 * account.
 *
 * @example
 * parseFunctionReference('arn:aws:lambda:us-east-1:000000000000:function:shop:beta') // { name: 'shop', qualifier: 'beta' }
 */
export function parseFunctionReference(text: string): FunctionReference {
  const match = referencePattern.exec(text);
  if (match === null) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${JSON.stringify(text.slice(0, 200))} is not a function name, partial ARN or ARN`,
    );
  }
  return { name: match[1] as string, qualifier: match[2] };
}
