import type { BuildInfo } from '../build-info.js';

/** A build that can be started: what it is and where it is installed. */
export interface InstalledBuild extends BuildInfo {
  /**
   * Where the build lives for the adapter: the installation directory (`<dir>/bin/savassan.js`) for the local
   * process supervisor, the container image for Kubernetes.
   */
  location: string;
}

/** A manager or gateway of the cluster, as the upgrade sees it. */
export interface ControlProcess {
  id: string;
  role: 'manager' | 'gateway';
  build: BuildInfo;
  /**
   * The arguments it was started with after the role (`--etcd …`, `--port 8080`), as it announced them; secrets are
   * never arguments (they come from the environment or files).
   */
  args: string[];
}

/** What to start: one more process of `role` like `like`, running `build`. */
export interface LaunchSpec {
  role: 'manager' | 'gateway';
  /** Its id (managers: `--id`; gateways are named by the adapter's process). */
  id: string;
  build: InstalledBuild;
  /** The process it replaces: its arguments are reused, with the id and data directory of the new one. */
  like: ControlProcess;
}

/** A process the infrastructure started. */
export interface LaunchedProcess {
  id: string;
  /** Where its output goes, for the operator (a log file, a pod name). */
  where: string;
}

/**
 * Where the platform's own processes run, for `savassan upgrade`: the leader asks it to start processes of a new
 * build and to stop old ones. Adapters: a local process supervisor (bare-metal hosts, the tests) and Kubernetes
 * (Deployments through the Kubernetes API).
 */
export interface Infrastructure {
  /** `local` or `kubernetes`, for the status and logs. */
  readonly kind: string;
  /**
   * The build that `target` names (a version installed where the adapter keeps builds, or a path), with the version,
   * build id and control protocol it reports about itself. NOT_FOUND when there is none; BAD_REQUEST when it is not
   * a Savassan build.
   */
  resolve(target: string): Promise<InstalledBuild>;
  /** Start one process; resolves once it is started (not yet joined: the caller waits for its etcd entry). */
  launch(spec: LaunchSpec): Promise<LaunchedProcess>;
  /**
   * Stop an old process for good once it has drained (the caller asked it to shut down first). Processes the
   * infrastructure would restart (a Deployment's pods) are scaled away instead.
   */
  retire(process: ControlProcess): Promise<void>;
}
