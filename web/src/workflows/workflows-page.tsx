// Workflows: every deployed workflow with its latest version, its node count and the phases of its recent executions.
import type { ExecutionView, WorkflowSummary } from './wf-api';
import { executionsPath, phaseClass } from './wf-api';
import { href, useApi } from '../hooks';

export function WorkflowsPage() {
  const workflows = useApi<{ workflows: WorkflowSummary[] }>('/v1/workflows', 10_000);
  const executions = useApi<{ executions: ExecutionView[] }>(executionsPath(undefined, 100), 5_000);
  const recent = new Map<string, ExecutionView[]>();
  for (const execution of executions.data?.executions ?? []) {
    const name = execution.spec.launch_plan.name;
    const list = recent.get(name) ?? [];
    if (list.length < 8) list.push(execution);
    recent.set(name, list);
  }
  const list = workflows.data?.workflows ?? [];
  return (
    <section aria-labelledby="workflows-title">
      <div className="title-row">
        <h1 id="workflows-title">Workflows</h1>
        <a className="button" href={href('workflows', 'new')}>
          New workflow
        </a>
      </div>
      {workflows.error !== null && (
        <p className="error" role="alert">
          Could not list the workflows: {workflows.error}
        </p>
      )}
      {executions.error !== null && (
        <p className="warning" role="status">
          Recent executions are not available: {executions.error}
        </p>
      )}
      {workflows.data === null && workflows.error === null && <p role="status">Loading…</p>}
      {workflows.data !== null && list.length === 0 && (
        <div className="empty">
          <p>
            No workflows yet. <a href={href('workflows', 'new')}>Build one</a>, or deploy a spec:
          </p>
          <pre>
            <code>savassan workflow deploy pipeline.json --name pipeline</code>
          </pre>
        </div>
      )}
      {list.length > 0 && (
        <table className="workflows">
          <caption className="visually-hidden">Workflows, with their recent executions</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Version</th>
              <th scope="col">Nodes</th>
              <th scope="col">Updated</th>
              <th scope="col">Recent executions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((wf) => (
              <tr key={wf.name} data-workflow={wf.name}>
                <th scope="row">
                  <a href={href('workflows', wf.name)}>{wf.name}</a>
                  {wf.description ? <span className="muted block">{wf.description}</span> : null}
                </th>
                <td>v{wf.latestVersion}</td>
                <td>{wf.nodeCount}</td>
                <td>{new Date(wf.updatedAt).toLocaleString()}</td>
                <td>
                  <span className="recent">
                    {(recent.get(wf.name) ?? []).map((execution) => (
                      <a
                        key={execution.id.name}
                        href={href('executions', execution.id.project, execution.id.domain, execution.id.name)}
                        className={phaseClass(execution.closure.phase)}
                        title={`${execution.id.name}: ${execution.closure.phase}`}
                      >
                        <span className="visually-hidden">
                          {execution.id.name} {execution.closure.phase}
                        </span>
                      </a>
                    ))}
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
