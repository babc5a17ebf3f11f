/**
 * Whether a process with this pid exists (EPERM means it does, owned by someone else): tells an agent's leftovers
 * (cgroups, network namespaces named after its pid) from those of an agent still running.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
