/**
 * What a process runs: its package version, its build id and the control protocol it speaks. Every manager, gateway
 * and agent announces it in its etcd entry; the control plane refuses a process whose protocol differs from the
 * leader's, and `savassan upgrade` refuses a target build that speaks another protocol.
 */
export interface BuildInfo {
  /** The package version, `0.1.0`. */
  version: string;
  /** The build id: the `build-id` file of the installation, `dev` without one. */
  build: string;
  /** The control protocol version (`controlProtocolVersion` of the build). */
  protocol: number;
}

/**
 * The control protocol this code speaks: the leader's gRPC service (`proto/savassan/leader/v1`), the JSON of the
 * replicated state (snapshots and changes), and the etcd keys of the control plane. Raised on any change that an
 * older build cannot read: processes of different protocols are never mixed in one cluster.
 */
export const controlProtocolVersion = 1;

/** The longest version or build id, in characters. */
const maxBuildTextChars = 100;
const buildTextPattern = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

/** `0.1.0 (build B, control protocol 1)`. */
export function describeBuild(build: BuildInfo): string {
  return `${build.version} (build ${build.build}, control protocol ${build.protocol})`;
}

/** Whether two builds can work in one cluster: they speak the same control protocol. */
export function compatibleBuilds(a: BuildInfo, b: BuildInfo): boolean {
  return a.protocol === b.protocol;
}

/** Whether two builds are the same build (version and id). */
export function sameBuild(a: BuildInfo, b: BuildInfo): boolean {
  return a.version === b.version && a.build === b.build && a.protocol === b.protocol;
}

/** A version or build id as a build may carry it: 1 to 100 characters of letters, digits and `._+-`. */
export function isBuildText(value: unknown): value is string {
  return typeof value === 'string' && value.length <= maxBuildTextChars && buildTextPattern.test(value);
}

/** The BuildInfo an (untrusted) etcd entry or peer claims, or undefined when it is not well formed. */
export function buildInfoClaim(claimed: unknown): BuildInfo | undefined {
  if (typeof claimed !== 'object' || claimed === null) return undefined;
  const { version, build, protocol } = claimed as Record<string, unknown>;
  if (!isBuildText(version) || !isBuildText(build)) return undefined;
  if (typeof protocol !== 'number' || !Number.isInteger(protocol) || protocol < 1 || protocol > 1_000_000) {
    return undefined;
  }
  return { version, build, protocol };
}
